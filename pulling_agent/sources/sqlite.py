"""The embedded default queue: one SQLite file, one replica.

URL: `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`.

Design notes:

- One connection, guarded by a lock, serves every thread of the process
  (SQLite serialises writers anyway; the agent claims and acks one batch at a
  time, so the lock is never contended for long). Other *processes* on the same
  file are safe too: a claim is one autocommit `UPDATE ... RETURNING`, and a
  write statement takes SQLite's write lock before it reads, so two claimers
  can never pick the same document; every other write runs in `BEGIN
  IMMEDIATE`, which does the same for several statements. The busy timeout
  makes the second writer wait instead of failing.
- The end of a batch (`settle`) is one transaction whatever the batch size:
  two statements store the results and mark the documents done (a `VALUES`
  list of the outcomes, not a statement per document), then the failed
  attempts, the release of the untouched rest and, when the worker asks for
  it, the claim of the next batch: the pages both write are written once.
- WAL journal: readers (`stats`, the backlog gauge) never block the writer.
- `synchronous=NORMAL`: in WAL mode this is still crash-safe for the process
  (a `kill -9` loses nothing committed) and never corrupts the file; only a
  power loss or kernel crash can lose the last transactions. Those would be
  acks *together with their results* (one transaction), so the documents go
  back to `in_progress` with a lease that expires and are processed again:
  results stay exactly-once. FULL would fsync on every ack and cost most of
  the throughput.
- Leases use the wall clock (`time.time()`), shared by every process on the
  host.
- Ownership rule (the same in the PostgreSQL source): `ack`, `fail` and
  `release` act only on documents that are `in_progress` *and* owned by the
  caller. An expired lease makes a document claimable; the moment another
  agent claims it, the owner changes and the old owner's calls are refused.
  Until then the old owner's late ack is still the only one and is accepted,
  which saves redoing work. Results are therefore stored at most once per
  document (the results table's primary key would reject a second one).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pulling_agent.defaults import SOURCE_URL
from pulling_agent.sources._common import (
    SettlingSource,
    chunks,
    documents,
    full_counts,
)
from pulling_agent.sources.base import (
    BatchEnd,
    Document,
    DocumentStatus,
    NextClaim,
    Outcome,
    Settled,
    SourceError,
    check_claim_args,
)
from pulling_agent.sources.sqlite_file import (
    APPLICATION_ID,
    WalSpace,
    check_path,
    check_queue_file,
    connect,
    open_read_only,
    permanent,
    sqlite_error,
)
from pulling_agent.text import clip_error

SCHEMA_VERSION = 1

# `PRAGMA user_version` records SCHEMA_VERSION once the schema exists.
_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS documents (
        id               INTEGER PRIMARY KEY,
        payload          TEXT    NOT NULL,
        status           TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'in_progress', 'done', 'failed')),
        owner            TEXT,
        lease_expires_at REAL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        created_at       REAL    NOT NULL,
        updated_at       REAL    NOT NULL
    )
    """,
    # Claim (pending in id order, expired leases), backlog and counts all read
    # this one index: a single index keeps every status change cheap.
    "CREATE INDEX IF NOT EXISTS documents_status_lease ON documents (status, lease_expires_at)",
    """
    CREATE TABLE IF NOT EXISTS results (
        document_id INTEGER PRIMARY KEY,
        result      TEXT NOT NULL,
        owner       TEXT NOT NULL,
        created_at  REAL NOT NULL
    )
    """,
)

# Expired leases first (they have waited longest), then pending documents in
# id order. Each half walks the index and stops at the limit, so a claim costs
# O(limit) however many documents are done.
_CLAIMABLE = """
SELECT id FROM (
    SELECT id FROM documents
    WHERE status = 'in_progress' AND lease_expires_at < :now LIMIT :limit)
UNION ALL
SELECT id FROM (
    SELECT id FROM documents WHERE status = 'pending' LIMIT :limit)
LIMIT :limit
"""

_CLAIM_RETURNING = f"""
UPDATE documents
SET status = 'in_progress', owner = :owner, lease_expires_at = :expires, updated_at = :now
WHERE id IN ({_CLAIMABLE})
RETURNING id, payload, attempts
"""

# The end of a batch (`settle`), in one IMMEDIATE transaction: two
# statements store the results of the documents still the owner's and mark
# them done, whatever the batch size (up to ACK_CHUNK documents a statement;
# `{values}` is `(?, ?), ...`, `{ids}` is `?, ...`).
_STORE_RESULTS = """
INSERT INTO results (document_id, result, owner, created_at)
SELECT d.id, o.column2, d.owner, ?
FROM (VALUES {values}) AS o CROSS JOIN documents AS d ON d.id = o.column1
WHERE d.owner = ? AND d.status = 'in_progress'
"""

_ACK_DOCUMENTS = """
UPDATE documents SET status = 'done', lease_expires_at = NULL, updated_at = ?
WHERE id IN ({ids}) AND owner = ? AND status = 'in_progress'
"""

# Two variables a document: within SQLite's oldest limit (999) per statement.
ACK_CHUNK = 400

_FAIL = """
UPDATE documents
SET attempts = attempts + 1,
    last_error = :error,
    status = CASE WHEN attempts + 1 >= :max_attempts THEN 'failed' ELSE 'pending' END,
    owner = CASE WHEN attempts + 1 >= :max_attempts THEN owner END,
    lease_expires_at = NULL,
    updated_at = :now
WHERE id = :id AND owner = :owner AND status = 'in_progress'
"""

_RELEASE = """
UPDATE documents SET status = 'pending', owner = NULL, lease_expires_at = NULL, updated_at = ?
WHERE id IN ({ids}) AND owner = ? AND status = 'in_progress'
"""

_BACKLOG = """
SELECT (SELECT count(*) FROM documents WHERE status = 'pending')
     + (SELECT count(*) FROM documents WHERE status = 'in_progress' AND lease_expires_at < ?)
"""

_HAS_WORK = "SELECT EXISTS (SELECT 1 FROM documents WHERE status IN ('pending', 'in_progress'))"


def _insert(conn: sqlite3.Connection, payloads: Iterable[str]) -> int:
    now = time.time()
    cursor = conn.executemany(
        "INSERT INTO documents (payload, created_at, updated_at) VALUES (?, ?, ?)",
        ((payload, now, now) for payload in payloads),
    )
    return max(cursor.rowcount, 0)


# RETURNING arrived in SQLite 3.35; older libraries claim in two statements
# (still atomic: both run under the write lock of one IMMEDIATE transaction).
HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)


def path_from_url(url: str) -> Path:
    """The database file named by a `sqlite:///...` URL."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] != "sqlite":
        raise permanent(f"not a SQLite URL: {url!r} (expected sqlite:///path.db)")
    if parts.netloc:
        raise permanent(
            f"SQLite URL {url!r} names a host {parts.netloc!r}; use sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    if parts.query or parts.fragment:
        raise permanent(f"SQLite URL {url!r}: query parameters are not supported")
    raw = unquote(parts.path)
    # urlsplit keeps the slash that separates the (empty) host from the path:
    # "sqlite:///x.db" -> "/x.db" (relative), "sqlite:////abs.db" -> "//abs.db".
    path = raw[1:] if raw.startswith("/") else raw
    if not path or path == ":memory:":
        raise permanent(
            f"SQLite URL {url!r} names no file; the queue must be a file ({SOURCE_URL})"
        )
    return Path(path)


def _in_chunks(ids: Sequence[int]) -> Iterator[tuple[Sequence[int], str]]:
    """`ids` in slices of at most CHUNK, each with its `?, ?, ...` placeholders."""
    for part in chunks(ids):
        yield part, ",".join("?" * len(part))


class SQLiteSource(SettlingSource):
    """A lease-based queue in one SQLite file. See the module docstring."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0, read_only: bool = False) -> None:
        """`read_only`: never create, migrate or change the file (for `stats`)."""
        self._path = path_from_url(url)
        self._busy_timeout = busy_timeout
        self._read_only = read_only
        self._space = WalSpace(self._path, active=not read_only)
        self._lock = threading.Lock()
        self._use_returning = HAS_RETURNING
        self._conn: sqlite3.Connection | None = self._open()

    # -- connection and schema ------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._read_only:
            return open_read_only(self._path, SCHEMA_VERSION, self._busy_timeout)
        check_path(self._path, create=True)
        conn = connect(self._path, self._busy_timeout)
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                self._prepare(conn)
                return conn
            except sqlite3.OperationalError as exc:
                # Switching a new file to WAL, or reading it while another
                # process does, can be refused at once instead of going
                # through the busy handler: try again for a while.
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                conn.close()
                raise sqlite_error(f"SQLite queue {self._path}: cannot prepare", exc) from exc
            except sqlite3.Error as exc:
                conn.close()
                raise sqlite_error(f"SQLite queue {self._path}: cannot prepare", exc) from exc
            except SourceError:
                conn.close()
                raise

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        # Before anything is written: another application's file stays as it is.
        check_queue_file(conn, self._path, SCHEMA_VERSION, must_exist=False)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SourceError(
                f"SQLite queue {self._path}: cannot use WAL journal (got {mode!r}); "
                "is the file on a network filesystem?"
            )
        conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
        self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:  # a newer one: check_queue_file refused it
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have won the race.
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _connection(self, action: str) -> Iterator[sqlite3.Connection]:
        """The shared connection, for one read; sqlite3 errors become SourceError."""
        with self._lock:
            if self._conn is None:
                raise SourceError(f"SQLite queue {self._path}: {action}: source is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._space.after_error(self._conn, exc)
                raise sqlite_error(f"SQLite queue {self._path}: {action} failed", exc) from exc
            self._space.after_use(self._conn)

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE write transaction, committed on success."""
        with self._connection(action) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- the Source contract ---------------------------------------------------

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Document]:
        check_claim_args(limit, lease_seconds)
        if limit == 0:
            return []
        if self._use_returning:
            # One autocommit write statement: SQLite takes the write lock
            # before the statement reads, as BEGIN IMMEDIATE would.
            with self._connection("claim") as conn:
                return self._claim(conn, owner, NextClaim(limit, lease_seconds))
        with self._transaction("claim") as conn:
            return self._claim(conn, owner, NextClaim(limit, lease_seconds))

    def _claim(self, conn: sqlite3.Connection, owner: str, claim: NextClaim) -> list[Document]:
        """Lease documents to `owner`: alone, or inside a transaction without RETURNING."""
        now = time.time()
        expires = now + claim.lease_seconds
        params = {"owner": owner, "now": now, "expires": expires, "limit": claim.limit}
        if self._use_returning:
            rows = conn.execute(_CLAIM_RETURNING, params).fetchall()
        else:
            ids = [row[0] for row in conn.execute(_CLAIMABLE, params)]
            rows = []
            for part, marks in _in_chunks(ids):
                conn.execute(
                    "UPDATE documents SET status = 'in_progress', owner = ?,"
                    f" lease_expires_at = ?, updated_at = ? WHERE id IN ({marks})",
                    (owner, expires, now, *part),
                )
                rows += conn.execute(
                    f"SELECT id, payload, attempts FROM documents WHERE id IN ({marks})",
                    tuple(part),
                ).fetchall()
        return documents(rows)

    def _settle(
        self, owner: str, end: BatchEnd, max_attempts: int, then_claim: NextClaim | None
    ) -> Settled:
        outcomes, failures, release = end
        now = time.time()
        parked: list[int] = []
        retried: list[int] = []
        with self._transaction("settle") as conn:
            acked = self._ack(conn, owner, outcomes, now) if outcomes else 0
            for failure in failures:
                params = {
                    "error": clip_error(failure.error),
                    "max_attempts": max_attempts,
                    "now": now,
                    "id": failure.document_id,
                    "owner": owner,
                }
                if conn.execute(_FAIL, params).rowcount == 1:
                    status = conn.execute(
                        "SELECT status FROM documents WHERE id = ?", (failure.document_id,)
                    ).fetchone()[0]
                    failed = status == DocumentStatus.FAILED
                    (parked if failed else retried).append(failure.document_id)
            released = sum(
                conn.execute(_RELEASE.format(ids=marks), (now, *part, owner)).rowcount
                for part, marks in _in_chunks(release)
            )
            # The next batch in the same transaction: the pages the settle
            # wrote are written once for both.
            claimed = tuple(self._claim(conn, owner, then_claim)) if then_claim else ()
        return Settled(acked, tuple(parked), tuple(retried), released, claimed)

    @staticmethod
    def _ack(conn: sqlite3.Connection, owner: str, outcomes: Sequence[Outcome], now: float) -> int:
        """Store the results of the documents still `owner`'s, then mark them done."""
        acked = 0
        for part in chunks(outcomes, ACK_CHUNK):
            values = ", ".join(["(?, ?)"] * len(part))
            pairs = [item for o in part for item in (o.document_id, o.result)]
            store = _STORE_RESULTS.format(values=values)
            acked += conn.execute(store, (now, *pairs, owner)).rowcount
            ids = ",".join("?" * len(part))
            done = (now, *(o.document_id for o in part), owner)
            conn.execute(_ACK_DOCUMENTS.format(ids=ids), done)
        return acked

    def backlog(self) -> int:
        with self._connection("backlog") as conn:
            return int(conn.execute(_BACKLOG, (time.time(),)).fetchone()[0])

    def counts(self) -> dict[DocumentStatus, int]:
        with self._connection("counts") as conn:
            rows = conn.execute("SELECT status, count(*) FROM documents GROUP BY status")
            return full_counts(rows.fetchall())

    def add(self, payloads: Iterable[str]) -> int:
        with self._transaction("add") as conn:
            return _insert(conn, payloads)

    def add_if_idle(self, payloads: Iterable[str]) -> int:
        # The check and the insert under one write lock: agents that start
        # together on a new file with --seed add the documents once.
        with self._transaction("seed") as conn:
            if conn.execute(_HAS_WORK).fetchone()[0]:
                return 0
            return _insert(conn, payloads)

    def describe(self) -> str:
        return f"sqlite:///{self._path}"

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- beyond the contract ---------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path
