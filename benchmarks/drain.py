"""Drain at the database's limit: the agent against raw SQL and the Python peers.

One throw-away PostgreSQL server (`pgbench_server.py`), two passes (`fast`:
fsync and synchronous_commit off; `durable`: the server's defaults). In each
pass, three rounds; in each round, for 1, 2 and 4 workers and batch 10 and
100, every contender drains its own fresh copy of a seeded queue, in an
order that rotates from round to round (so that a load spike on this shared
machine hits every contender alike):

- `agent`: `pulling-agent run --processor noop` processes, started paused
  (start-up is outside the clock) and resumed together by SIGUSR2;
- `raw`: `raw_postgres.py` processes, psycopg 3, two statements a batch;
- `pgqueuer`: `peer_pgqueuer.py` workers (asyncpg, uvloop, drain mode);
- `procrastinate`: `peer_procrastinate.py` workers (no batch size: run once
  per worker count, listed under batch 10).

A run's clock starts at the go (the SIGUSR2, or the line on the workers'
stdin) and stops at the last completion the database recorded (the agent's
and raw's `results.created_at`, pgqueuer's log, procrastinate's events).
Each run reports docs/s, CPU-seconds per 1,000 documents for the workers
and for the server, and statements per document (`pg_stat_statements`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from crews import HERE, RUN_TIMEOUT, AgentCrew, Crew, Run, ScriptCrew, Series
from harness import Figures, Unavailable, Workspace, say
from pgbench_server import PASSES, BenchServer

from pulling_agent.demo import demo_documents

WORKERS = (1, 2, 4)
BATCHES = (10, 100)
ROUNDS = 3
# The batch size of the figures `make bench` printed before issue 15 (the
# default then; the CLI and the chart now default to 25, see the README).
REFERENCE_BATCH = 10
# Documents per run, per pass: enough for a run of a second or more.
DOCS = {"fast": 20_000, "durable": 10_000}
SLOW_DOCS = {"fast": 4_000, "durable": 1_500}  # procrastinate is about 10x slower
# procrastinate has no batch size; this many jobs run at once in each of its
# workers (measured: 10 is a little faster than 1, it is CPU-bound either way).
PROCRASTINATE_CONCURRENCY = 10
RATIO_TARGET = 0.9


# ------------------------------------------------------------------ contenders
def _one(url: str, sql: str) -> tuple[int, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0.0)


def _script(name: str) -> str:
    return str(HERE / name)


@dataclass(frozen=True)
class Contender:
    name: str
    template: str
    slow: bool  # seeded with SLOW_DOCS
    batches: tuple[int, ...]
    crew: Callable[[Workspace, str, int, int, int], Crew]
    finished_sql: str  # (documents done, epoch of the last completion)


AGENT_FINISHED = "SELECT count(*), extract(epoch FROM max(created_at)) FROM pulling_agent.results"

CONTENDERS = (
    Contender("agent", "tpl_agent", False, BATCHES, AgentCrew, AGENT_FINISHED),
    Contender(
        "raw",
        "tpl_agent",
        False,
        BATCHES,
        lambda ws, url, w, b, _total: ScriptCrew(
            ws, [(_script("raw_postgres.py"), url, str(b), f"raw-{i}") for i in range(w)]
        ),
        AGENT_FINISHED,
    ),
    Contender(
        "pgqueuer",
        "tpl_pgqueuer",
        False,
        BATCHES,
        lambda ws, url, w, b, _total: ScriptCrew(
            ws, [(_script("peer_pgqueuer.py"), "work", url, str(b)) for _ in range(w)]
        ),
        "SELECT count(*), extract(epoch FROM max(created)) FROM pgqueuer_log"
        " WHERE status = 'successful'",
    ),
    Contender(
        "procrastinate",
        "tpl_procrastinate",
        True,
        (REFERENCE_BATCH,),
        lambda ws, url, w, _b, _total: ScriptCrew(
            ws,
            [
                (_script("peer_procrastinate.py"), "work", url, str(PROCRASTINATE_CONCURRENCY))
                for _ in range(w)
            ],
        ),
        "SELECT count(*), extract(epoch FROM max(at)) FROM procrastinate_events"
        " WHERE type = 'succeeded'",
    ),
)


def peers_missing() -> str | None:
    try:
        import pgqueuer  # noqa: F401
        import procrastinate  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed: pip install -e '.[bench]' (make bench does)"
    return None


def seed_templates(server: BenchServer, contenders: Sequence[Contender], pass_name: str) -> None:
    from pulling_agent.sources.postgres import PostgresSource

    for contender in contenders:
        count = (SLOW_DOCS if contender.slow else DOCS)[pass_name]
        url = server.create(contender.template)
        if contender.template == "tpl_agent":
            source = PostgresSource(url)
            try:
                source.add(demo_documents(count))
            finally:
                source.close()
        elif contender.name in ("pgqueuer", "procrastinate"):
            script = _script(f"peer_{contender.name}.py")
            subprocess.run(
                [sys.executable, script, "seed", url, str(count)],
                check=True,
                cwd=HERE,
                capture_output=True,
                timeout=RUN_TIMEOUT,
            )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def one_run(
    server: BenchServer, ws: Workspace, contender: Contender, workers: int, batch: int, total: int
) -> Run:
    dbname, url = server.copy(contender.template)
    crew = contender.crew(ws, url, workers, batch, total)
    try:
        server.reset_statements(dbname)
        server_cpu = server.cpu_seconds()
        started = crew.go()
        worker_cpu = crew.wait()
        server_cpu = server.cpu_seconds() - server_cpu
        statements = server.statements(dbname)
        load = os.getloadavg()[0]
    finally:
        crew.close()
    done, last = _one(url, contender.finished_sql)
    server.drop(dbname)
    if done != total:
        raise RuntimeError(f"{contender.name}: {done} of {total} documents done")
    return Run(done, last - started, worker_cpu, server_cpu, statements, load)


Key = tuple[str, str, int, int]  # pass, contender, workers, batch


def measure(
    server: BenchServer, ws: Workspace, contenders: Sequence[Contender]
) -> dict[Key, Series]:
    series: dict[Key, Series] = {}
    for pass_name in PASSES:
        server.start(pass_name)
        seed_templates(server, contenders, pass_name)
        for round_no in range(ROUNDS):
            for workers in WORKERS:
                for batch in BATCHES:
                    shift = round_no % len(contenders)
                    for contender in [*contenders[shift:], *contenders[:shift]]:
                        if batch not in contender.batches:
                            continue
                        total = (SLOW_DOCS if contender.slow else DOCS)[pass_name]
                        run = one_run(server, ws, contender, workers, batch, total)
                        key = (pass_name, contender.name, workers, batch)
                        series.setdefault(key, Series()).runs.append(run)
                        say(
                            f"{pass_name} round {round_no + 1}: {contender.name} w{workers} "
                            f"b{batch}: {run.rate:.0f} docs/s, {run.statements / total:.3f} "
                            f"statements/doc, load {run.load:.2f}"
                        )
    return series


# ------------------------------------------------------------------ report
def emit(figures: Figures, series: dict[Key, Series], version: str) -> None:
    for (pass_name, name, workers, batch), s in sorted(series.items()):
        raw = series.get((pass_name, "raw", workers, batch if name != "procrastinate" else 10))
        stem = f"pg_{pass_name}_{name}_w{workers}"
        if name != "procrastinate":
            stem += f"_b{batch}"
        figures.emit(
            f"{stem}_docs_per_s",
            s.median,
            "docs/s",
            raw.median if raw else None,
            target=f">= {RATIO_TARGET} (median ratio)" if name == "agent" else "",
            note=(
                f"PostgreSQL {version} ({pass_name} pass), noop, {len(s.runs)} interleaved runs: "
                f"median (value) and best {s.best:.0f} docs/s; baseline: the raw-SQL loop's "
                f"median at the same workers and batch; cpu per 1,000 documents: workers "
                f"{s.per_1k('worker_cpu'):.3f} s, server {s.per_1k('server_cpu'):.3f} s"
                + (
                    f" (documents per CPU-second, workers and server: {cpu:.2f} of raw's)"
                    if raw and (cpu := raw.cpu_per_1k / s.cpu_per_1k)
                    else ""
                )
                + f"; statements per document {s.statements_per_doc:.3f}"
            ),
            digits=0,
        )
    for workers in WORKERS:  # the names `make bench` printed before issue 15
        agent = series[("fast", "agent", workers, REFERENCE_BATCH)]
        raw = series[("fast", "raw", workers, REFERENCE_BATCH)]
        figures.emit(
            f"throughput_pg_{workers}_agents_docs_per_s",
            agent.best,
            "docs/s",
            raw.best,
            note=(
                f"{workers} agent process(es), PostgreSQL {version} fast pass, batch "
                f"{REFERENCE_BATCH}, best of {ROUNDS}; baseline: the raw-SQL loop's best"
            ),
            digits=0,
        )


def table(series: dict[Key, Series]) -> str:
    """The side-by-side table (markdown), for stderr and the README."""
    lines = [
        "| pass | workers | batch | contender | docs/s median | best | ratio to raw "
        "| worker CPU-s/1k | server CPU-s/1k | CPU ratio to raw | statements/doc | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (pass_name, name, workers, batch), s in sorted(
        series.items(), key=lambda kv: (kv[0][0] != "fast", kv[0][2], kv[0][3], kv[0][1])
    ):
        raw = series.get((pass_name, "raw", workers, batch))
        ratio = f"{s.median / raw.median:.2f}" if raw else "-"
        cpu_ratio = f"{raw.cpu_per_1k / s.cpu_per_1k:.2f}" if raw else "-"
        lines.append(
            f"| {pass_name} | {workers} | {batch if name != 'procrastinate' else '-'} | {name} "
            f"| {s.median:.0f} | {s.best:.0f} | {ratio} | {s.per_1k('worker_cpu'):.3f} "
            f"| {s.per_1k('server_cpu'):.3f} | {cpu_ratio} | {s.statements_per_doc:.3f} "
            f"| {statistics.median(r.load for r in s.runs):.2f} |"
        )
    return "\n".join(lines)


def bench_postgres(figures: Figures, ws: Workspace) -> None:
    contenders = list(CONTENDERS)
    reason = peers_missing()
    if reason is not None:
        say(f"postgres: peers left out: {reason}")
        contenders = [c for c in contenders if c.name in ("agent", "raw")]
    server = BenchServer()
    try:
        series = measure(server, ws, contenders)
    finally:
        server.close()
    emit(figures, series, server.version)
    say("postgres, side by side:\n" + table(series))
    if reason is not None:
        raise Unavailable(f"pgqueuer and procrastinate not measured: {reason}")


def figure_names() -> tuple[str, ...]:
    names = []
    for pass_name in PASSES:
        for contender in CONTENDERS:
            for workers in WORKERS:
                if contender.name == "procrastinate":
                    names.append(f"pg_{pass_name}_{contender.name}_w{workers}_docs_per_s")
                    continue
                names += [
                    f"pg_{pass_name}_{contender.name}_w{workers}_b{batch}_docs_per_s"
                    for batch in contender.batches
                ]
    return (*names, *(f"throughput_pg_{n}_agents_docs_per_s" for n in WORKERS))
