"""The command queue under concurrent producers."""

from __future__ import annotations

import threading
from collections import Counter

from pulling_agent.commands import Action, Command, CommandQueue

PRODUCERS = 8
PER_PRODUCER = 2_000


def test_concurrent_producers_lose_nothing_and_keep_order_per_producer() -> None:
    queue = CommandQueue()
    start = threading.Barrier(PRODUCERS)

    def produce(n: int) -> None:
        start.wait()
        for i in range(PER_PRODUCER):
            queue.put(
                Command(Action.PAUSE if i % 2 else Action.RESUME, channel=f"p{n}", reason=str(i))
            )

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    received: list[Command] = []
    while len(received) < PRODUCERS * PER_PRODUCER:
        command = queue.get(timeout=10)
        assert command is not None, f"queue ran dry after {len(received)} commands"
        received.append(command)
    for thread in threads:
        thread.join()
    assert queue.get(timeout=0.01) is None
    assert Counter(c.channel for c in received) == {f"p{n}": PER_PRODUCER for n in range(PRODUCERS)}
    for n in range(PRODUCERS):
        reasons = [int(c.reason) for c in received if c.channel == f"p{n}"]
        assert reasons == list(range(PER_PRODUCER))


def test_get_times_out_with_none() -> None:
    assert CommandQueue().get(timeout=0.01) is None
