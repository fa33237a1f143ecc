"""Queues that are not queues: refused at once by name, never retried for ever,
never changed by a read-only command; and agents that seed a new queue together."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.agentproc import AGENT, AgentProcess, cli
from testkit.postgres_server import PostgresServer
from tests.conftest import AgentFactory
from tests.integration.conftest import Tmpfs

pytestmark = pytest.mark.integration


def run_once(tmp_path: Path, source: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """`pulling-agent run` that must end by itself (a permanent error)."""
    args = [
        AGENT,
        "run",
        "--source",
        source,
        "--health-dir",
        str(tmp_path / "health"),
        "--control-dir",
        str(tmp_path / "control"),
        "--metrics-port",
        "0",
    ]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the agent kept retrying {source}") from None


def foreign_sqlite(path: Path, user_version: int = 0) -> None:
    """Another application's SQLite file (rollback journal, its own tables)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, body BLOB)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
        conn.execute(f"PRAGMA user_version = {user_version}")
    conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def broken_sqlite_sources(tmp_path: Path, tmpfs: Tmpfs) -> dict[str, tuple[str, str]]:
    """name -> (URL, what the error line must say)."""
    (tmp_path / "random.db").write_bytes(os.urandom(8192))
    (tmp_path / "a-directory.db").mkdir()
    foreign_sqlite(tmp_path / "foreign.db")
    foreign_sqlite(tmp_path / "future.db", user_version=42)
    read_only = tmpfs("1m,ro")
    return {
        "random bytes": (f"sqlite:///{tmp_path / 'random.db'}", "file is not a database"),
        "a directory": (f"sqlite:///{tmp_path / 'a-directory.db'}", "is a directory"),
        "a foreign schema": (
            f"sqlite:///{tmp_path / 'foreign.db'}",
            "is not a pulling-agent queue (it holds tables documents, users)",
        ),
        "an unknown user_version": (
            f"sqlite:///{tmp_path / 'future.db'}",
            "schema version 42 is unknown to this agent",
        ),
        "no file at all": ("sqlite://", "names no file"),
        "a missing directory": (
            f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'q.db'}",
            "does not exist",
        ),
        "a read-only directory": (f"sqlite:///{read_only / 'q.db'}", "unable to open"),
    }


CASES = [
    "random bytes",
    "a directory",
    "a foreign schema",
    "an unknown user_version",
    "no file at all",
    "a missing directory",
    "a read-only directory",
]


@pytest.mark.parametrize("case", CASES)
def test_a_permanently_broken_sqlite_source_ends_the_agent_at_once(
    tmp_path: Path, tmpfs: Tmpfs, case: str
) -> None:
    url, expected = broken_sqlite_sources(tmp_path, tmpfs)[case]
    proc = run_once(tmp_path, url)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: source sqlite://"), lines[0]
    assert expected in lines[0]
    liveness = (tmp_path / "health" / "liveness").read_text().splitlines()
    assert liveness[0] == "stopped"
    assert not (tmp_path / "health" / "readiness").exists()


def test_a_foreign_file_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    foreign_sqlite(path)
    before = digest(path)
    for command in (["run"], ["seed", "--count", "5"], ["stats"]):
        args = [*command, "--source", f"sqlite:///{path}"]
        if command == ["run"]:
            args += ["--health-dir", str(tmp_path / "h"), "--metrics-port", "0"]
        proc = cli(*args, check=False, timeout=30)
        assert proc.returncode == 1, (command, proc.stderr)
        assert f"SQLite file {path} is not a pulling-agent queue" in proc.stderr
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("foreign")) == [
        "foreign.db"
    ]  # no -wal, no -shm
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_stats_never_creates_a_queue(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    proc = cli("stats", "--source", f"sqlite:///{path}", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: source sqlite:///{path}: no SQLite queue at {path} "
        "(`pulling-agent seed` or `run` creates one)"
    ]
    assert not path.exists()
    path.touch()  # an empty file is not a queue either, and stays empty
    proc = cli("stats", "--source", f"sqlite:///{path}", check=False)
    assert proc.returncode == 1 and "no SQLite queue" in proc.stderr
    assert path.stat().st_size == 0


def test_stats_reads_a_queue_without_changing_it(
    tmp_path: Path, seeded_queue: Callable[[int], str]
) -> None:
    url = seeded_queue(7)
    path = Path(url.removeprefix("sqlite:///"))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    before = digest(path)
    out = cli("stats", "--source", url, "-o", "json").stdout
    assert '"pending": 7' in out
    assert digest(path) == before


def test_status_writes_nothing(tmp_path: Path) -> None:
    health = tmp_path / "health"
    proc = cli("status", "--health-dir", str(health), check=False)
    assert proc.returncode == 1
    assert not health.exists()


@pytest.mark.postgres
def test_postgres_refusals_that_will_not_go_away_end_the_agent(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url()
    for bad, expected in (
        (url.rsplit("/", 1)[0] + "/no_such_db", 'database "no_such_db" does not exist'),
        (url.replace("postgres@", "no_such_role@"), 'role "no_such_role" does not exist'),
    ):
        proc = run_once(tmp_path, bad)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], proc.stderr


@pytest.mark.postgres
def test_stats_on_a_database_without_the_queue_creates_nothing(
    postgres_database_url: str,
) -> None:
    import psycopg

    proc = cli("stats", "--source", postgres_database_url, check=False)
    assert proc.returncode == 1
    assert "no pulling-agent queue in database" in proc.stderr
    with psycopg.connect(postgres_database_url) as conn:
        schema = conn.execute("SELECT to_regnamespace('pulling_agent')").fetchone()
    assert schema == (None,)


def start_together(agents: list[AgentProcess]) -> None:
    for agent in agents:
        agent.start(wait_state=None)
    for agent in agents:
        agent.wait_state("running")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_agents_starting_together_on_a_new_queue_seed_it_once(
    agent_factory: AgentFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'new.db'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
    count = 3000
    agents = [
        agent_factory(f"agent-{n}", source=url, args=["--seed", str(count), "--processor", "slow"])
        for n in range(3)
    ]
    start_together(agents)
    stats = agents[0].stats()
    assert sum(stats.values()) == count, stats
    seeded = [m for agent in agents for m in agent.messages() if m.startswith("Seeded")]
    assert seeded == [f"Seeded {count} demo documents"]
    for agent in agents:
        assert agent.stop() == 0
