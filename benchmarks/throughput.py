"""Throughput with the `noop` processor: SQLite against a bare loop, PostgreSQL with 1-4 agents.

The agent starts paused (its control file says `pause`), so start-up
(interpreter, imports, opening the queue) is outside the measurement: the
clock starts at the SIGUSR2 that resumes it and stops at the last ack, read
from the queue itself (`results.created_at` of the last result). The bench
waits for the agent's `documents=` liveness counter to reach the total
before it reads the queue, so nothing polls the database while the agent
works. The bare loop (`bare_loop.py`) runs in its own fresh interpreter too.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    DEFAULT_INTERVALS,
    Figures,
    Unavailable,
    Workspace,
    cpu_seconds,
    liveness_int,
    say,
    status_kb,
    watching,
)

from pulling_agent.demo import demo_documents
from pulling_agent.sources.sqlite import SQLiteSource
from testkit.agentproc import AgentProcess

SQLITE_DOCS = 50_000
PG_DOCS = 20_000
BATCH_SIZE = 10  # the CLI's default
RUNS = 3  # best of: the machine is shared and wall-clock figures are noisy
RATIO_TARGET = 0.9
RSS_TARGET_MB = 80.0
PG_AGENTS = (1, 2, 4)

BARE_LOOP = Path(__file__).with_name("bare_loop.py")


def agent_args(batch_size: int) -> tuple[str, ...]:
    # The CLI's default intervals: the liveness file (whose `documents=` tells
    # the bench that the queue is drained) is rewritten every 5 s, which only
    # delays the bench, not the measured end (the last ack, from the queue).
    return ("--processor", "noop", "--batch-size", str(batch_size), *DEFAULT_INTERVALS)


def bare_loop(url: str, batch_size: int, timeout: float = 300) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, str(BARE_LOOP), url, str(batch_size)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bare loop failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return dict(json.loads(proc.stdout))


def resume_and_drain(agents: list[AgentProcess], total: int, timeout: float = 300) -> float:
    """Resume paused agents together; the wall-clock time of the resume.

    Returns once their `documents=` counters add up to `total`.
    """
    for agent in agents:
        with watching(agent) as watcher:
            watcher.wait("paused")
    started = time.time()
    for agent in agents:
        agent.signal(signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while sum(liveness_int(a, "documents") for a in agents) < total:
        if time.monotonic() > deadline:
            done = sum(liveness_int(a, "documents") for a in agents)
            raise TimeoutError(f"{done} of {total} documents done after {timeout:.0f}s")
        for agent in agents:
            if not agent.running():
                raise RuntimeError(f"agent exited: {agent.log_tail(5)}")
        time.sleep(0.2)
    return started


# ------------------------------------------------------------------ SQLite
def sqlite_template(ws: Workspace, count: int) -> Path:
    path = ws.path("sqlite-template") / "queue.db"
    source = SQLiteSource(f"sqlite:///{path}")
    try:
        source.add(demo_documents(count))
    finally:
        source.close()  # the last connection checkpoints the WAL into the file
    return path


def sqlite_last_ack(path: Path) -> tuple[int, float]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        count, last = conn.execute("SELECT count(*), max(created_at) FROM results").fetchone()
    return int(count), float(last)


def sqlite_agent_run(ws: Workspace, template: Path, count: int, batch: int) -> dict[str, Any]:
    workdir = ws.path("sqlite-queue")
    queue = workdir / "queue.db"
    shutil.copyfile(template, queue)
    agent = ws.agent(
        "sqlite-agent", agent_args(batch), source=f"sqlite:///{queue}", control="pause"
    )
    agent.start("paused")
    cpu_before = cpu_seconds(agent.pid)
    started = resume_and_drain([agent], count)
    cpu = cpu_seconds(agent.pid) - cpu_before
    acked, last = sqlite_last_ack(queue)
    result = {
        "documents": acked,
        "seconds": last - started,
        "cpu_seconds": cpu,
        "rss_kb": status_kb(agent.pid, "VmRSS"),
        "hwm_kb": status_kb(agent.pid, "VmHWM"),
        "pid": agent.pid,
    }
    agent.stop()
    return result


def sqlite_bare_run(ws: Workspace, template: Path, batch: int) -> dict[str, float]:
    queue = ws.path("sqlite-bare") / "queue.db"
    shutil.copyfile(template, queue)
    return bare_loop(f"sqlite:///{queue}", batch)


def bench_sqlite(figures: Figures, ws: Workspace) -> None:
    say(f"throughput: seeding {SQLITE_DOCS} demo documents into a SQLite template queue")
    template = sqlite_template(ws, SQLITE_DOCS)
    agent_runs: list[dict[str, Any]] = []
    bare_runs: list[dict[str, float]] = []
    for run in range(1, RUNS + 1):  # interleaved, so that a load spike hits both sides
        agent_runs.append(sqlite_agent_run(ws, template, SQLITE_DOCS, BATCH_SIZE))
        a = agent_runs[-1]
        say(
            f"throughput run {run}: agent {a['documents']} docs in {a['seconds']:.2f} s "
            f"= {a['documents'] / a['seconds']:.0f} docs/s, {a['cpu_seconds']:.2f} CPU-s "
            f"(rss {a['rss_kb'] / 1024:.1f} MB)"
        )
        bare_runs.append(sqlite_bare_run(ws, template, BATCH_SIZE))
        b = bare_runs[-1]
        say(
            f"throughput run {run}: bare loop {b['documents']:.0f} docs in {b['seconds']:.2f} s "
            f"= {b['documents'] / b['seconds']:.0f} docs/s, {b['cpu_seconds']:.2f} CPU-s"
        )
    for r in agent_runs + bare_runs:
        if r["documents"] != SQLITE_DOCS:
            raise RuntimeError(f"a run acked {r['documents']} of {SQLITE_DOCS} documents")
    agent_rate = max(r["documents"] / r["seconds"] for r in agent_runs)
    bare_rate = max(r["documents"] / r["seconds"] for r in bare_runs)
    common = (
        f"SQLite, noop processor, {SQLITE_DOCS} docs, batch size {BATCH_SIZE}, "
        f"best of {RUNS} runs each (interleaved; shared machine)"
    )
    figures.emit(
        "throughput_docs_per_s",
        agent_rate,
        "docs/s",
        bare_rate,
        note=f"{common}; from the resuming SIGUSR2 to the last ack; baseline: the bare loop",
        digits=0,
    )
    figures.emit(
        "throughput_ratio_vs_bare",
        agent_rate / bare_rate,
        "ratio",
        1.0,
        target=f">= {RATIO_TARGET}",
        note=f"{common}; bare loop: SQLiteSource claim(batch) -> ack all, same batch size",
        digits=3,
    )
    agent_cpu = min(r["cpu_seconds"] for r in agent_runs)
    bare_cpu = min(r["cpu_seconds"] for r in bare_runs)
    figures.emit(
        "throughput_cpu_ratio_vs_bare",
        bare_cpu / agent_cpu,
        "ratio",
        1.0,
        note=(
            f"{common}; documents per CPU-second (every thread of the agent, utime+stime) "
            f"over the bare loop's: {agent_cpu:.2f} vs {bare_cpu:.2f} CPU-s; less sensitive "
            "to other load than the wall clock"
        ),
        digits=3,
    )
    last = agent_runs[-1]
    figures.emit(
        "rss_mb",
        last["rss_kb"] / 1024,
        "MB",
        RSS_TARGET_MB,
        target=f"< {RSS_TARGET_MB:g}",
        note=(
            f"VmRSS of the agent after it acked {SQLITE_DOCS} documents (peak VmHWM "
            f"{max(r['hwm_kb'] for r in agent_runs) / 1024:.1f} MB); baseline = the design limit"
        ),
    )


# ------------------------------------------------------------------ PostgreSQL
def pg_seed(url: str, count: int) -> None:
    from pulling_agent.sources.postgres import PostgresSource

    source = PostgresSource(url)
    try:
        source.add(demo_documents(count))
    finally:
        source.close()


def pg_last_ack(url: str) -> tuple[int, float]:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM max(created_at)) FROM pulling_agent.results"
        ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def pg_agents_run(ws: Workspace, url: str, agents_count: int, count: int) -> float:
    agents = [
        ws.agent(f"pg-agent-{i}", agent_args(BATCH_SIZE), source=url, control="pause")
        for i in range(agents_count)
    ]
    for agent in agents:
        agent.start(wait_state=None)
    started = resume_and_drain(agents, count)
    acked, last = pg_last_ack(url)
    for agent in agents:
        agent.stop()
    if acked != count:
        raise RuntimeError(f"{agents_count} agents acked {acked} of {count} documents")
    return acked / (last - started)


def bench_postgres(figures: Figures, ws: Workspace) -> None:
    from testkit.postgres_server import Template, find_bindir, why_missing

    reason = why_missing()
    if reason is not None:
        raise Unavailable(reason)
    bindir = find_bindir()
    assert bindir is not None
    say(f"postgres: starting a throw-away server from {bindir}")
    template = Template(bindir)
    server = template.server()
    try:
        server.start()
        bare_rates: list[float] = []
        rates: dict[int, list[float]] = {n: [] for n in PG_AGENTS}
        for run in range(1, RUNS + 1):  # interleaved, as for SQLite
            bare_url = server.create_database("bare")
            pg_seed(bare_url, PG_DOCS)
            bare = bare_loop(bare_url, BATCH_SIZE)
            bare_rates.append(bare["documents"] / bare["seconds"])
            say(f"postgres run {run}: bare loop {bare_rates[-1]:.0f} docs/s")
            for n in PG_AGENTS:
                url = server.create_database(f"agents{n}")
                pg_seed(url, PG_DOCS)
                rates[n].append(pg_agents_run(ws, url, n, PG_DOCS))
                say(f"postgres run {run}: {n} agent(s) {rates[n][-1]:.0f} docs/s")
        best = {n: max(values) for n, values in rates.items()}
        for n in PG_AGENTS:
            note = (
                f"{n} agent process(es) on one PostgreSQL {bindir.parent.name} queue on this "
                f"machine (fsync off), noop, {PG_DOCS} docs, batch size {BATCH_SIZE}, best of "
                f"{RUNS} runs; "
            )
            if n == 1:
                note += "baseline: a bare claim/ack loop over PostgresSource (best of runs)"
                baseline = max(bare_rates)
            else:
                note += f"baseline: {PG_AGENTS[0]} agent (ratio = scaling)"
                baseline = best[PG_AGENTS[0]]
            figures.emit(
                f"throughput_pg_{n}_agents_docs_per_s",
                best[n],
                "docs/s",
                baseline,
                note=note,
                digits=0,
            )
    finally:
        server.remove()
        template.remove()
