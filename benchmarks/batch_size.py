"""What the batch size trades: throughput against pause latency.

    .venv/bin/python benchmarks/run.py --only batchsize   (not in the default run)

For each batch size:

- throughput with `noop` (so that what is measured is the per-batch cost of
  claiming and settling): one agent on PostgreSQL (the drain group's server,
  fast pass) and one on SQLite, one run each; the time a batch costs beyond
  its documents is batch / docs per second;
- pause latency with `slow` documents of DOC_SECONDS: at the batch boundary
  (`interruptible=false`: the pause waits for the batch to end, about half a
  batch on average) and at the document boundary (`interruptible=true`: about
  half a document, whatever the batch size).

The README's choice of the default batch size rests on these figures.
"""

from __future__ import annotations

import random
import shutil

import drain
import throughput
from crews import AgentCrew
from drain import seed_templates
from harness import Figures, Workspace, describe_ms, percentile, say
from latency import midbatch_latencies
from pgbench_server import BenchServer

BATCHES = (1, 10, 25, 50, 100)
DOC_SECONDS = 0.005
PAUSES = 8  # per batch size and mode
SQLITE_DOCS = 20_000

FIGURES = tuple(
    f"batchsize_b{b}_{what}"
    for b in BATCHES
    for what in (
        "pg_docs_per_s",
        "sqlite_docs_per_s",
        "pause_batch_boundary_p50_ms",
        "pause_document_boundary_p50_ms",
    )
)


def bench_batch_size(figures: Figures, ws: Workspace, rng: random.Random) -> None:
    agent = next(c for c in drain.CONTENDERS if c.name == "agent")
    server = BenchServer()
    try:
        server.start("fast")
        seed_templates(server, [agent], "fast")
        pg = {b: drain.one_run(server, ws, agent, 1, b, drain.DOCS["fast"]) for b in BATCHES}
    finally:
        server.close()
    template = throughput.sqlite_template(ws, SQLITE_DOCS)
    sqlite: dict[int, float] = {}
    for batch in BATCHES:
        queue = ws.path(f"batchsize-sqlite-b{batch}") / "queue.db"
        shutil.copyfile(template, queue)
        crew = AgentCrew(ws, f"sqlite:///{queue}", 1, batch, SQLITE_DOCS)
        try:
            started = crew.go()
            crew.wait()
        finally:
            crew.close()
        done, last = throughput.last_ack(queue)
        sqlite[batch] = done / (last - started)
    for batch in BATCHES:
        pauses = {
            mode: midbatch_latencies(
                ws, mode == "document", rng, batch=batch, doc_seconds=DOC_SECONDS, runs=PAUSES
            )
            for mode in ("batch", "document")
        }
        say(
            f"batch size {batch}: PostgreSQL {pg[batch].rate:.0f} docs/s "
            f"({1000 * batch / pg[batch].rate:.2f} ms a batch), SQLite {sqlite[batch]:.0f} "
            f"docs/s ({1000 * batch / sqlite[batch]:.2f} ms a batch); pause at the batch "
            f"boundary {describe_ms(pauses['batch'])}; at the document boundary "
            f"{describe_ms(pauses['document'])}"
        )
        note = (
            f"one agent, noop, batch {batch}, one run; PostgreSQL: fast pass, "
            f"{drain.DOCS['fast']} docs; SQLite: {SQLITE_DOCS} docs; baseline: the same at "
            f"batch {BATCHES[0]}"
        )
        for name, rate, first in (
            ("pg", pg[batch].rate, pg[BATCHES[0]].rate),
            ("sqlite", sqlite[batch], sqlite[BATCHES[0]]),
        ):
            figures.emit(
                f"batchsize_b{batch}_{name}_docs_per_s", rate, "docs/s", first, note=note, digits=0
            )
        for mode, values in pauses.items():
            figures.emit(
                f"batchsize_b{batch}_pause_{mode}_boundary_p50_ms",
                percentile(values, 50) * 1000,
                "ms",
                batch * DOC_SECONDS * 1000,
                note=(
                    f"SIGUSR1 at {PAUSES} points spread over a batch of {batch} slow documents x "
                    f"{DOC_SECONDS * 1000:g} ms ({mode} boundary); baseline: the whole batch"
                ),
                digits=1,
            )
