"""SQLite throughput: the agent against a raw `sqlite3` loop on the same queue file.

Three rounds; in each, at batch 10 and 100, the agent (`pulling-agent run
--processor noop`, started paused, resumed by SIGUSR2) and `raw_sqlite.py`
each drain their own copy of one seeded queue file, in an order that
alternates from round to round. The clock starts at the go and stops at the
last ack, read from the queue (`results.created_at`). One worker: the
SQLite source is the single-replica queue.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
from pathlib import Path

from crews import HERE, AgentCrew, Crew, Run, ScriptCrew, Series
from harness import Figures, Workspace, say

from pulling_agent.demo import demo_documents
from pulling_agent.sources.sqlite import SQLiteSource

SQLITE_DOCS = 100_000
BATCHES = (10, 100)
# The batch size of the figures `make bench` printed before issue 15 (the
# default then; the CLI and the chart now default to 25, see the README).
REFERENCE_BATCH = 10
ROUNDS = 3
RATIO_TARGET = 0.9
RSS_TARGET_MB = 80.0


def sqlite_template(ws: Workspace, count: int) -> Path:
    path = ws.path("sqlite-template") / "queue.db"
    source = SQLiteSource(f"sqlite:///{path}")
    try:
        source.add(demo_documents(count))
    finally:
        source.close()  # the last connection checkpoints the WAL into the file
    return path


def last_ack(path: Path) -> tuple[int, float]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        count, last = conn.execute("SELECT count(*), max(created_at) FROM results").fetchone()
    return int(count), float(last)


def one_run(ws: Workspace, template: Path, contender: str, batch: int) -> Run:
    queue = ws.path(f"sqlite-{contender}-b{batch}") / "queue.db"
    shutil.copyfile(template, queue)
    crew: Crew
    if contender == "agent":
        crew = AgentCrew(ws, f"sqlite:///{queue}", 1, batch, SQLITE_DOCS)
    else:
        crew = ScriptCrew(ws, [(str(HERE / "raw_sqlite.py"), str(queue), str(batch), "raw")])
    try:
        started = crew.go()
        cpu = crew.wait()
    finally:
        crew.close()
    done, last = last_ack(queue)
    shutil.rmtree(queue.parent)
    if done != SQLITE_DOCS:
        raise RuntimeError(f"SQLite {contender}: {done} of {SQLITE_DOCS} documents acked")
    rss = crew.rss_kb if isinstance(crew, AgentCrew) else (0, 0)
    return Run(done, last - started, cpu, 0.0, 0, 0.0, rss)


def bench_sqlite(figures: Figures, ws: Workspace) -> None:
    say(f"throughput: seeding {SQLITE_DOCS} demo documents into a SQLite template queue")
    template = sqlite_template(ws, SQLITE_DOCS)
    series: dict[tuple[str, int], Series] = {}
    for round_no in range(ROUNDS):
        for batch in BATCHES:
            order = ("agent", "raw") if round_no % 2 == 0 else ("raw", "agent")
            for contender in order:
                run = one_run(ws, template, contender, batch)
                series.setdefault((contender, batch), Series()).runs.append(run)
                say(
                    f"sqlite round {round_no + 1}: {contender} b{batch}: {run.rate:.0f} docs/s, "
                    f"{1000 * run.worker_cpu / run.documents:.3f} CPU-s per 1,000 documents"
                )
    common = (
        f"SQLite, noop, {SQLITE_DOCS} docs, one worker, {ROUNDS} interleaved runs each "
        "(median; shared machine); baseline: the raw sqlite3 loop (raw_sqlite.py)"
    )
    for (contender, batch), s in sorted(series.items()):
        raw = series[("raw", batch)]
        figures.emit(
            f"sqlite_{contender}_w1_b{batch}_docs_per_s",
            s.median,
            "docs/s",
            raw.median,
            target=f">= {RATIO_TARGET} (ratio)" if contender == "agent" else "",
            note=(
                f"{common}, batch {batch}; best {s.best:.0f} docs/s; worker CPU "
                f"{s.per_1k('worker_cpu'):.3f} s per 1,000 documents"
            ),
            digits=0,
        )
    # The names `make bench` printed before issue 15, at the CLI's default batch.
    agent, raw = series[("agent", REFERENCE_BATCH)], series[("raw", REFERENCE_BATCH)]
    note = f"{common}, batch {REFERENCE_BATCH}"
    figures.emit(
        "throughput_docs_per_s",
        agent.median,
        "docs/s",
        raw.median,
        note=f"{note}; from the resuming SIGUSR2 to the last ack",
        digits=0,
    )
    figures.emit(
        "throughput_ratio_vs_bare",
        agent.median / raw.median,
        "ratio",
        1.0,
        target=f">= {RATIO_TARGET}",
        note=f"{note}; medians",
        digits=3,
    )
    agent_cpu, raw_cpu = agent.per_1k("worker_cpu"), raw.per_1k("worker_cpu")
    figures.emit(
        "throughput_cpu_ratio_vs_bare",
        raw_cpu / agent_cpu,
        "ratio",
        1.0,
        note=(
            f"{note}; documents per CPU-second (every thread of the agent, utime+stime) "
            f"over the raw loop's: {agent_cpu:.3f} vs {raw_cpu:.3f} CPU-s per 1,000 "
            "documents; less sensitive to other load than the wall clock"
        ),
        digits=3,
    )
    rss = [r.rss_kb for s in (series[("agent", b)] for b in BATCHES) for r in s.runs]
    figures.emit(
        "rss_mb",
        statistics.median(kb for kb, _ in rss) / 1024,
        "MB",
        RSS_TARGET_MB,
        target=f"< {RSS_TARGET_MB:g}",
        note=(
            f"VmRSS of the agent after it acked {SQLITE_DOCS} documents, median of its runs "
            f"(peak VmHWM {max(hwm for _, hwm in rss) / 1024:.1f} MB); baseline = the design limit"
        ),
    )


FIGURES = (
    *(f"sqlite_{c}_w1_b{b}_docs_per_s" for c in ("agent", "raw") for b in BATCHES),
    "throughput_docs_per_s",
    "throughput_ratio_vs_bare",
    "throughput_cpu_ratio_vs_bare",
    "rss_mb",
)
