"""Stopping, killing and pausing mid-batch: nothing acknowledged or released is lost."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

import pytest

from testkit.agentproc import AgentProcess
from tests.conftest import AgentFactory

pytestmark = pytest.mark.integration


def slow(seconds: float, batch: int, interruptible: bool) -> list[str]:
    return [
        "--processor",
        "slow",
        "--processor-option",
        f"seconds={seconds}",
        "--processor-option",
        f"interruptible={'true' if interruptible else 'false'}",
        "--batch-size",
        str(batch),
    ]


def wait_batch_in_flight(agent: AgentProcess) -> None:
    agent.wait_for(lambda: agent.stats()["in_progress"] > 0, "a batch in flight", interval=0.01)


def released_counts(agent: AgentProcess) -> list[int]:
    pattern = re.compile(r"Released (\d+) (untouched documents|documents of the batch)")
    return [int(m.group(1)) for msg in agent.messages() if (m := pattern.search(msg))]


def test_sigterm_mid_batch_finishes_it_then_restart_loses_nothing(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    url = seeded_queue(60)
    agent = agent_factory(source=url, args=slow(0.05, 10, interruptible=False))
    agent.start(wait_state="running")
    wait_batch_in_flight(agent)
    agent.signal(signal.SIGTERM)
    agent.wait_state("stopping")
    assert agent.wait_exit() == 0
    after_stop = agent.stats()
    assert after_stop["in_progress"] == 0
    assert after_stop["done"] % 10 == 0 and after_stop["done"] > 0  # the batch was finished
    assert after_stop["pending"] + after_stop["done"] == 60
    assert agent.state() == "stopped"
    assert not agent.ready()
    agent.start(wait_state="running")
    agent.wait_for(lambda: agent.stats()["done"] == 60, "every document done")
    assert agent.stop() == 0
    assert agent.stats() == {"pending": 0, "in_progress": 0, "done": 60, "failed": 0}


def test_grace_deadline_releases_the_rest_of_a_long_batch(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    url = seeded_queue(40)
    agent = agent_factory(
        source=url, args=[*slow(0.5, 20, interruptible=False), "--stop-grace-seconds", "1"]
    )
    agent.start(wait_state="running")
    wait_batch_in_flight(agent)
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit() == 0
    stats = agent.stats()
    assert stats["in_progress"] == 0, stats
    assert stats["pending"] > 0 and stats["pending"] + stats["done"] == 40
    assert released_counts(agent), "the rest of the batch was released"


def test_second_sigterm_stops_at_once_and_releases(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    url = seeded_queue(20)
    agent = agent_factory(source=url, args=slow(5, 20, interruptible=False))
    agent.start(wait_state="running")
    wait_batch_in_flight(agent)
    agent.signal(signal.SIGTERM)
    agent.wait_state("stopping")
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=30) == 0
    assert agent.stats() == {"pending": 20, "in_progress": 0, "done": 0, "failed": 0}
    assert "Second stop request: stopping now" in agent.messages()


def test_kill_9_mid_batch_several_times_then_a_clean_run(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    total = 300
    url = seeded_queue(total)
    args = [*slow(0.01, 25, interruptible=False), "--lease-seconds", "1"]
    agent = agent_factory(source=url, args=args)
    for _ in range(4):
        agent.start(wait_state="running")
        wait_batch_in_flight(agent)
        agent.kill()
        assert agent.stats()["in_progress"] > 0  # a lease left behind
    agent.start(wait_state="running")
    agent.wait_for(lambda: agent.stats()["done"] == total, "every document done", timeout=120)
    assert agent.stop() == 0
    assert agent.stats() == {"pending": 0, "in_progress": 0, "done": total, "failed": 0}


def test_pause_during_long_batch_waits_for_the_batch_boundary(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    agent = agent_factory(source=seeded_queue(100), args=slow(0.2, 5, interruptible=False))
    agent.start(wait_state="running")
    wait_batch_in_flight(agent)
    agent.signal(signal.SIGUSR1)
    agent.wait_for(lambda: agent.liveness().get("desired_state") == "paused", "pause pending")
    agent.wait_state("paused")
    stats = agent.stats()
    assert stats["in_progress"] == 0
    assert stats["done"] % 5 == 0 and stats["done"] > 0  # whole batches only
    assert released_counts(agent) == []
    assert "Pause pending: finishing the current batch" in agent.messages()
    assert agent.stop() == 0


def test_pause_at_document_boundary_releases_the_untouched_rest(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    agent = agent_factory(source=seeded_queue(100), args=slow(0.2, 20, interruptible=True))
    agent.start(wait_state="running")
    wait_batch_in_flight(agent)
    agent.signal(signal.SIGUSR1)
    agent.wait_state("paused")
    stats = agent.stats()
    assert stats["in_progress"] == 0
    released = released_counts(agent)
    assert released and released[0] > 0
    assert stats["pending"] + stats["done"] == 100
    assert agent.stop() == 0


def test_poison_documents_are_parked_and_never_block_the_queue(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    url = seeded_queue(30)
    agent = agent_factory(
        source=url,
        args=[
            "--processor",
            "slow",
            "--processor-option",
            "seconds=0",
            "--processor-option",
            "fail_every=7",
            "--max-attempts",
            "1",
        ],
    )
    agent.start(wait_state="running")
    agent.wait_for(
        lambda: agent.stats()["pending"] == 0 and agent.stats()["in_progress"] == 0, "queue drained"
    )
    stats = agent.stats()
    assert stats["failed"] == 30 // 7 and stats["done"] == 30 - 30 // 7
    agent.wait_for(lambda: agent.liveness().get("errors") == str(30 // 7), "errors= counted")
    assert agent.stop() == 0
