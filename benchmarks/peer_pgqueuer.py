"""pgqueuer, the Python peer, draining a queue of no-op jobs.

    python benchmarks/peer_pgqueuer.py seed URL COUNT
    python benchmarks/peer_pgqueuer.py work URL BATCH

`seed` installs pgqueuer's schema and enqueues COUNT jobs with its bulk
enqueue (lists of entrypoints and payloads: one statement). `work` is one
worker the way pgqueuer's own documentation and benchmark tool run one: the
asyncpg driver (the faster of its two, by its own figures) on uvloop, a
`QueueManager` with one async no-op entrypoint, `run(batch_size=BATCH,
mode=drain)`, which exits once the queue is empty. Speaks the
`drain_worker` protocol. Needs the `bench` extra (`pip install -e
'.[bench]'`).
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import uvloop
from drain_worker import ready_then_wait, report
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "noop"


async def seed(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        for start in range(0, count, 10_000):
            size = min(10_000, count - start)
            await queries.enqueue([ENTRYPOINT] * size, [None] * size, [0] * size)
    finally:
        await conn.close()


async def work(url: str, batch: int) -> None:
    conn = await asyncpg.connect(url)
    done = 0
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        nonlocal done
        done += 1

    cpu = await asyncio.get_running_loop().run_in_executor(None, ready_then_wait)
    await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
    await conn.close()
    report(done, cpu)


def main(argv: list[str]) -> None:
    command, url, number = argv
    uvloop.run(seed(url, int(number)) if command == "seed" else work(url, int(number)))


if __name__ == "__main__":
    main(sys.argv[1:])
