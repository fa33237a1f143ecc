"""Many agents on one PostgreSQL queue (issue 4), as real processes.

Four `pulling-agent run` processes share one queue on a real PostgreSQL
server started by the fixture. Every check is on the database itself: the
results table holds one row per document (its primary key), so "none
processed twice" is the results' count equal to the total with every
document `done`. All waits poll with generous limits; nothing is timed.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from testkit.agentproc import AgentProcess, cli
from testkit.postgres_server import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TOTAL = 20_000
AGENTS = 4
LEASE = "5"  # seconds: short, so that a killed agent's batch returns soon
FAST = ["--processor", "slow", "--processor-option", "seconds=0.001", "--batch-size", "50"]


def query(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return list(conn.execute(sql, params).fetchall())


def status_counts(url: str) -> dict[str, int]:
    rows = query(url, "SELECT status, count(*) FROM pulling_agent.documents GROUP BY status")
    counts = {"pending": 0, "in_progress": 0, "done": 0, "failed": 0}
    counts.update({str(status): int(str(n)) for status, n in rows})
    return counts


def results_by_owner(url: str) -> dict[str, int]:
    rows = query(url, "SELECT owner, count(*) FROM pulling_agent.results GROUP BY owner")
    return {str(owner): int(str(n)) for owner, n in rows}


def owner_prefix(agent: AgentProcess) -> str:
    """The agent's owner string starts with host:pid: (see runtime.make_owner)."""
    return f"{socket.gethostname()}:{agent.pid}:"


def wait_until(predicate: Callable[[], bool], what: str, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {limit} s for {what}")
        time.sleep(0.1)


def assert_all_done_exactly_once(url: str) -> None:
    assert status_counts(url) == {"pending": 0, "in_progress": 0, "done": TOTAL, "failed": 0}
    ((results, distinct, missing),) = query(
        url,
        "SELECT count(*), count(DISTINCT document_id),"
        " (SELECT count(*) FROM pulling_agent.documents d"
        "  WHERE NOT EXISTS (SELECT 1 FROM pulling_agent.results r WHERE r.document_id = d.id))"
        " FROM pulling_agent.results",
    )
    assert (results, distinct, missing) == (TOTAL, TOTAL, 0)


class Fleet:
    """Four agents, each with its own control, health and log directory."""

    def __init__(self, root: Path, url: str, args: list[str]) -> None:
        self.url = url
        for n in range(AGENTS):
            (root / f"agent-{n}").mkdir()
        self.agents = [
            AgentProcess(
                root / f"agent-{n}",
                source=url,
                args=["--lease-seconds", LEASE, "--stop-grace-seconds", "10", *args],
            )
            for n in range(AGENTS)
        ]

    def start(self) -> None:
        for agent in self.agents:
            agent.start(wait_state=None)
        for agent in self.agents:
            agent.wait_state("running")

    def seed(self) -> None:
        out = cli("seed", "--count", str(TOTAL), "--source", self.url).stdout
        assert str(TOTAL) in out

    def wait_all_done(self, limit: float = 300.0) -> None:
        wait_until(lambda: status_counts(self.url)["done"] == TOTAL, f"{TOTAL} done", limit)

    def stop(self) -> None:
        """SIGTERM to the agents still running; each must exit cleanly."""
        running = [agent for agent in self.agents if agent.running()]
        for agent in running:
            agent.signal(signal.SIGTERM)
        for agent in running:
            assert agent.wait_exit(timeout=120) == 0, agent.log_tail()

    def kill_all(self) -> None:
        for agent in self.agents:
            agent.kill()


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[Callable[[str, list[str]], Fleet]]:
    fleets: list[Fleet] = []

    def make(url: str, args: list[str]) -> Fleet:
        fleet = Fleet(tmp_path, url, args)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.kill_all()


def test_four_agents_process_every_document_once(
    postgres_database_url: str, fleet_factory: Callable[[str, list[str]], Fleet]
) -> None:
    url = postgres_database_url
    fleet = fleet_factory(url, ["--processor", "digest", "--batch-size", "100"])
    fleet.start()  # all four are claiming before the documents arrive
    fleet.seed()
    fleet.wait_all_done()
    fleet.stop()
    assert_all_done_exactly_once(url)
    owners = results_by_owner(url)
    assert len(owners) == AGENTS, f"every agent took a share: {owners}"
    # Each agent acknowledged exactly what it stored: no double work anywhere.
    acked = sum(int(agent.liveness()["documents"]) for agent in fleet.agents)
    assert acked == TOTAL
    ((sample,),) = query(url, "SELECT result FROM pulling_agent.results LIMIT 1")
    assert '"sha256"' in str(sample)


def test_an_agent_killed_mid_batch_loses_nothing(
    postgres_database_url: str, fleet_factory: Callable[[str, list[str]], Fleet]
) -> None:
    url = postgres_database_url
    fleet = fleet_factory(url, FAST)
    fleet.start()
    fleet.seed()
    victim = fleet.agents[0]
    prefix = owner_prefix(victim)

    def victim_holds_a_batch() -> bool:
        rows = query(
            url,
            "SELECT count(*) FROM pulling_agent.documents"
            " WHERE status = 'in_progress' AND starts_with(owner, %s)",
            prefix,
        )
        return int(str(rows[0][0])) > 0

    wait_until(victim_holds_a_batch, "the victim to hold a batch")
    victim.signal(signal.SIGKILL)
    assert victim.wait_exit() == -signal.SIGKILL
    held = {
        int(str(row[0]))
        for row in query(
            url,
            "SELECT id FROM pulling_agent.documents"
            " WHERE status = 'in_progress' AND starts_with(owner, %s)",
            prefix,
        )
    }
    fleet.wait_all_done()
    fleet.stop()
    assert_all_done_exactly_once(url)
    if held:  # the victim's batch went to the others once its lease expired
        owners = query(
            url,
            "SELECT DISTINCT owner FROM pulling_agent.results WHERE document_id = ANY(%s)",
            sorted(held),
        )
        assert all(not str(owner).startswith(prefix) for (owner,) in owners)


def test_database_outage_then_every_agent_recovers(
    make_postgres_server: Callable[[], PostgresServer],
    fleet_factory: Callable[[str, list[str]], Fleet],
) -> None:
    server = make_postgres_server()
    url = server.create_database()
    fleet = fleet_factory(url, FAST)
    fleet.start()
    fleet.seed()
    wait_until(lambda: status_counts(url)["done"] >= TOTAL // 5, "a fifth done")

    server.stop(mode="immediate")
    stopped_at = time.monotonic()
    for agent in fleet.agents:
        agent.wait_for(
            lambda agent=agent: bool(agent.liveness().get("error")) and not agent.ready(),
            "error= in liveness and readiness off",
        )
    # A pause given while the database is down must still hold when it returns.
    # (The agent may have a batch to acknowledge first: the pause then takes
    # effect at that batch's end, once the database is back.)
    paused = fleet.agents[-1]
    paused.write_control("pause")
    time.sleep(max(0.0, 10 - (time.monotonic() - stopped_at)))  # the outage lasts 10 s
    server.start()
    paused.wait_state("paused", timeout=120)

    # The three others recover by themselves and finish the whole queue,
    # the paused agent's share included.
    fleet.wait_all_done()
    for agent in fleet.agents[:-1]:
        agent.wait_for(lambda agent=agent: not agent.liveness().get("error"), "error= cleared")
        assert agent.state() == "running"
    assert paused.state() == "paused"
    paused.write_control("resume")
    paused.wait_state("running")
    fleet.stop()
    assert_all_done_exactly_once(url)


def test_all_four_paused_through_their_control_files(
    postgres_database_url: str, fleet_factory: Callable[[str, list[str]], Fleet]
) -> None:
    url = postgres_database_url
    batch = 5
    fleet = fleet_factory(
        url,
        ["--processor", "slow", "--processor-option", "seconds=0.2", "--batch-size", str(batch)],
    )
    fleet.start()
    fleet.seed()
    wait_until(lambda: status_counts(url)["done"] >= 2 * batch * AGENTS, "every agent busy")

    # What each agent holds and has stored just before the pause.
    held_before = {
        str(owner): int(str(n))
        for owner, n in query(
            url,
            "SELECT owner, count(*) FROM pulling_agent.documents"
            " WHERE status = 'in_progress' GROUP BY owner",
        )
    }
    stored_before = results_by_owner(url)
    for agent in fleet.agents:
        agent.write_control("pause")
    for agent in fleet.agents:
        agent.wait_state("paused")

    # Stopped within one batch each: at most what it held, plus one batch it
    # may have claimed just before it saw the pause.
    stored_after = results_by_owner(url)
    for owner, count in stored_after.items():
        extra = count - stored_before.get(owner, 0) - held_before.get(owner, 0)
        assert extra <= batch, f"{owner} went on for {extra} documents after the pause"
    counts = status_counts(url)
    assert counts["in_progress"] == 0, "a paused agent holds nothing"
    backlog = counts["pending"]
    assert backlog > 0

    # The backlog stays constant while paused: several heartbeats and polls.
    for _ in range(3):
        for agent in fleet.agents:
            heartbeat = agent.liveness_lines()[1]
            agent.wait_for(
                lambda agent=agent, beat=heartbeat: agent.liveness_lines()[1:2] != [beat],
                "a heartbeat while paused",
            )
            assert agent.state() == "paused"
        assert status_counts(url) == counts
        assert results_by_owner(url) == stored_after

    for agent in fleet.agents:
        agent.write_control("resume")
    for agent in fleet.agents:
        agent.wait_state("running")
    wait_until(lambda: status_counts(url)["pending"] < backlog, "processing to resume")
    fleet.stop()
    final = status_counts(url)
    assert final["in_progress"] == 0 and final["failed"] == 0
    assert final["pending"] + final["done"] == TOTAL
    assert sum(results_by_owner(url).values()) == final["done"]
