"""A disk that fills up under the queue or the health files: real small tmpfs
file systems (root only), a real agent, space freed while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from testkit.agentproc import cli
from tests.conftest import AgentFactory
from tests.integration.conftest import Tmpfs, fill

pytestmark = pytest.mark.integration

DOCUMENTS = 1500


def test_the_queue_drains_once_space_returns(agent_factory: AgentFactory, tmpfs: Tmpfs) -> None:
    """2 MB for the queue: 1,500 documents, the disk full mid-run, space freed.

    Without help SQLite checkpoints its write-ahead log only once it holds
    4 MB, which never happens here, and never shrinks it: the log kept the
    disk full and the queue stuck after space came back.
    """
    disk = tmpfs("2m")
    url = f"sqlite:///{disk / 'queue.db'}"
    cli("seed", "--count", str(DOCUMENTS), "--source", url)
    filler = fill(disk, leave=128 * 1024)
    agent = agent_factory(source=url, args=["--batch-size", "10"])
    agent.start(wait_state="running")
    agent.wait_for(
        lambda: "full" in agent.liveness().get("error", ""),
        "the agent to report the full disk",
        timeout=120,
    )
    assert not agent.ready()  # not ready while its queue cannot be written
    done_when_full = agent.stats()["done"]
    assert done_when_full < DOCUMENTS
    filler.unlink()
    agent.wait_for(lambda: agent.stats()["done"] == DOCUMENTS, "every document done", timeout=180)
    assert agent.stats() == {"pending": 0, "in_progress": 0, "done": DOCUMENTS, "failed": 0}
    agent.wait_for(agent.ready, "ready again")
    assert agent.stop() == 0


def test_a_full_health_directory_warns_once_and_says_when_it_is_back(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str], tmpfs: Tmpfs
) -> None:
    disk = tmpfs("1m")
    agent = agent_factory(source=seeded_queue(100_000), args=["--processor", "slow"])
    agent.health_dir = disk / "health"
    agent.start(wait_state="running")
    filler = fill(disk)
    time.sleep(4)  # four heartbeats (--heartbeat-interval 1) that cannot be written
    warning = (
        f"Cannot update health files in {agent.health_dir}: No space left on device; "
        "retrying on every heartbeat"
    )
    messages = agent.messages()
    assert messages.count(warning) == 1, [m for m in messages if "health" in m]
    assert not any("Traceback" in str(entry) for entry in agent.logs())
    filler.unlink()
    recovered = f"Updating health files in {agent.health_dir} again"
    agent.wait_for(lambda: recovered in agent.messages(), "the recovery line")
    before = agent.liveness_lines()[1]
    agent.wait_for(lambda: agent.liveness_lines()[1] != before, "the heartbeat again")
    assert agent.messages().count(warning) == 1
    assert agent.stop() == 0
