"""What only the SQLite source does, on real files in tmp_path.

The contract it shares with PostgreSQL (claim, leases, ownership, retries,
release, counts, backlog, threads and processes that never double-claim) is
tested against both in `tests/integration/test_source_contract.py`; here:
URLs, the file's settings and schema, the claim path for SQLite libraries
without RETURNING, a locked database, a closed source, and how many
statements a batch takes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pulling_agent.plugins import load_source
from pulling_agent.sources import sqlite as sqlite_source
from pulling_agent.sources.base import DocumentStatus, Failure, Outcome, SourceError
from pulling_agent.sources.sqlite import SQLiteSource, path_from_url


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def source(db: Path) -> SQLiteSource:
    return SQLiteSource(f"sqlite:///{db}")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///pulling-agent.db", "pulling-agent.db"),
        ("sqlite:///data/queue.db", "data/queue.db"),
        ("sqlite:////var/lib/agent/queue.db", "/var/lib/agent/queue.db"),
        ("sqlite:////tmp/with%20space.db", "/tmp/with space.db"),
    ],
)
def test_path_from_url(url: str, path: str) -> None:
    assert path_from_url(url) == Path(path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/queue.db", "names a host"),
        ("sqlite:///queue.db?mode=ro", "query parameters"),
        ("sqlite://", "names no file"),
        ("sqlite:///:memory:", "names no file"),
        ("postgresql:///queue", "not a SQLite URL"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        path_from_url(url)


def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = load_source("sqlite:///relative.db")
    try:
        assert isinstance(source, SQLiteSource)
        assert source.describe() == "sqlite:///relative.db"
        assert (tmp_path / "relative.db").exists()
    finally:
        source.close()


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        SQLiteSource(f"sqlite:///{tmp_path / 'nowhere' / 'queue.db'}")


def test_file_uses_wal_and_the_schema_version(source: SQLiteSource, db: Path) -> None:
    assert source.describe() == f"sqlite:///{db}"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_source.SCHEMA_VERSION,)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"documents", "results", "documents_status_lease"} <= tables


def test_schema_creation_is_idempotent(source: SQLiteSource, db: Path) -> None:
    source.add(["kept"])
    source.close()
    for _ in range(2):
        again = SQLiteSource(f"sqlite:///{db}")
        assert again.counts()[DocumentStatus.PENDING] == 1
        again.close()


def test_sources_opening_together_all_succeed(db: Path) -> None:
    opened: list[SQLiteSource] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(SQLiteSource(f"sqlite:///{db}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(opened) == 6
    for source in opened:
        source.close()


def test_newer_schema_is_refused(source: SQLiteSource, db: Path) -> None:
    source.close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SourceError, match="schema version 99 is newer"):
        SQLiteSource(f"sqlite:///{db}")


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(SourceError, match=r"bogus\.db"):
        SQLiteSource(f"sqlite:///{bogus}")


def test_claim_without_returning_gives_the_same_documents(source: SQLiteSource) -> None:
    """The claim path for SQLite < 3.35 (no RETURNING), forced here."""
    source.add(f"doc-{n}" for n in range(6))
    first = source.claim("a", 2, 0.01)
    time.sleep(0.05)  # past the lease
    source._use_returning = False
    docs = source.claim("b", 4, 300)  # expired first, then pending in id order
    assert [d.id for d in docs] == [1, 2, 3, 4]
    assert [d.payload for d in docs] == ["doc-0", "doc-1", "doc-2", "doc-3"]
    assert source.ack("a", [Outcome(d.id, "late") for d in first]) == 0
    assert source.ack("b", [Outcome(d.id, "ok") for d in docs]) == 4


def test_a_locked_database_becomes_source_error(db: Path) -> None:
    source = SQLiteSource(f"sqlite:///{db}", busy_timeout=0.1)
    source.add(["x"])
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with pytest.raises(SourceError, match="claim failed: database is locked"):
            source.claim("a", 1, 60)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Nothing stuck: the failed transaction was rolled back, the next one works.
    assert [d.payload for d in source.claim("a", 1, 60)] == ["x"]
    source.close()


def test_readers_do_not_wait_for_the_writer(source: SQLiteSource, db: Path) -> None:
    source.add(["x", "y"])
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert source.backlog() == 2  # WAL: a reader is never blocked
        assert source.counts()[DocumentStatus.PENDING] == 2
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        source.close()


def test_closed_source_raises_source_error(source: SQLiteSource) -> None:
    source.close()
    source.close()
    with pytest.raises(SourceError, match="closed"):
        source.claim("a", 1, 60)
    with pytest.raises(SourceError, match="closed"):
        source.counts()


@pytest.mark.skipif(not sqlite_source.HAS_RETURNING, reason="claims in one statement need 3.35+")
def test_a_batch_takes_the_same_statements_whatever_its_size(source: SQLiteSource) -> None:
    """A claim is one autocommit statement; a settle is one transaction whose
    statements do not grow with the batch (SQLite's own statement trace)."""
    source.add(f"doc-{n}" for n in range(300))
    traced: list[str] = []
    assert source._conn is not None
    source._conn.set_trace_callback(traced.append)
    per_batch = []
    for batch in (10, 100):
        traced.clear()
        docs = source.claim("a", batch, 60)
        assert len(traced) == 1 and traced[0].lstrip().startswith("UPDATE"), traced
        settled = source.settle(
            "a",
            [Outcome(d.id, "ok") for d in docs[:-2]],
            [],
            [d.id for d in docs[-2:]],
            max_attempts=3,
        )
        assert (settled.acked, settled.released) == (batch - 2, 2)
        per_batch.append([line.split()[0] for line in traced])
    assert (
        per_batch[0] == per_batch[1] == ["UPDATE", "BEGIN", "INSERT", "UPDATE", "UPDATE", "COMMIT"]
    )


def test_settle_keeps_nul_characters_in_results(source: SQLiteSource, db: Path) -> None:
    source.add(["x", "y"])
    docs = source.claim("a", 2, 60)
    source.settle("a", [Outcome(docs[0].id, "re\x00sult")], [Failure(docs[1].id, "e")], [], 1)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT result FROM results").fetchall() == [("re\x00sult",)]
