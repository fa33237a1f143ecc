"""procrastinate, the other Python peer, draining a queue of no-op jobs.

    python benchmarks/peer_procrastinate.py seed URL COUNT
    python benchmarks/peer_procrastinate.py work URL CONCURRENCY

`seed` applies procrastinate's schema and defers COUNT jobs with its bulk
`batch_defer_async` (one statement per call). `work` is one worker as its
documentation runs one: an `App` on its psycopg connector, one async no-op
task, `run_worker_async(wait=False, concurrency=CONCURRENCY)`, which returns
once the queue is empty. procrastinate fetches one job per statement: it has
no batch size (CONCURRENCY jobs run at once in the worker's event loop).
Speaks the `drain_worker` protocol. Needs the `bench` extra.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from drain_worker import ready_then_wait, report
from procrastinate import App, PsycopgConnector

TASK = "noop"


def make_app(url: str) -> tuple[App, list[int]]:
    app = App(connector=PsycopgConnector(conninfo=url))
    done = [0]

    @app.task(name=TASK)
    async def noop() -> None:
        done[0] += 1

    return app, done


async def seed(url: str, count: int) -> None:
    app, _ = make_app(url)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks[TASK]
        for start in range(0, count, 10_000):
            await task.batch_defer_async(*({} for _ in range(min(10_000, count - start))))


async def work(url: str, concurrency: int) -> None:
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app, done = make_app(url)
    async with app.open_async():
        cpu = await asyncio.get_running_loop().run_in_executor(None, ready_then_wait)
        await app.run_worker_async(
            wait=False, concurrency=concurrency, install_signal_handlers=False
        )
    report(done[0], cpu)


def main(argv: list[str]) -> None:
    command, url, number = argv
    asyncio.run(seed(url, int(number)) if command == "seed" else work(url, int(number)))


if __name__ == "__main__":
    main(sys.argv[1:])
