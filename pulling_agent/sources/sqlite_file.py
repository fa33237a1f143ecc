"""The SQLite source's file, apart from the queue's SQL: is it ours, can it be
used, and does it fit on its disk.

- `sqlite_error`: a sqlite3 error as a `SourceError`, transient (busy,
  locked, disk full, I/O: trying again may work) or permanent (not a
  database, corrupt, cannot open, read-only: it will not go away by itself).
- `check_queue_file`: before anything is written, tell a new file, a queue
  and another application's file apart; the last is refused by name and
  never changed (no tables created, no journal mode switched).
- `connect`: the queue's connection; `open_read_only`: one that cannot
  write, for `stats`.
- `WalSpace`: keeps the write-ahead log from filling a small disk.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from pulling_agent.sources.base import SourceError

log = logging.getLogger(__name__)

#: `PRAGMA application_id` of a pulling-agent queue ("PuLA"); 0 in files made
#: before it was set, which are recognised by their tables.
APPLICATION_ID = 0x50754C41
#: The tables, and the columns of `documents`, that make a file a queue.
QUEUE_TABLES = frozenset({"documents", "results"})
QUEUE_COLUMNS = frozenset({"id", "payload", "status", "owner", "lease_expires_at", "attempts"})

# Primary result codes (sqlite3.h) that no retry will cure.
_PERMANENT = frozenset(
    {
        1,  # SQLITE_ERROR: no such table, no such column (not our file)
        3,  # SQLITE_PERM
        8,  # SQLITE_READONLY (but see _TRANSIENT_READONLY)
        11,  # SQLITE_CORRUPT
        14,  # SQLITE_CANTOPEN
        20,  # SQLITE_MISMATCH
        22,  # SQLITE_NOLFS
        23,  # SQLITE_AUTH
        24,  # SQLITE_FORMAT
        26,  # SQLITE_NOTADB
    }
)
# Extended codes of SQLITE_READONLY that mean "not now" (WAL recovery, a lock).
_TRANSIENT_READONLY = frozenset({264, 520})  # SQLITE_READONLY_RECOVERY, _CANTLOCK
SQLITE_FULL = 13


def error_code(exc: sqlite3.Error) -> int:
    """The extended result code of `exc` (0 when sqlite3 did not give one)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0)


def is_transient(exc: sqlite3.Error) -> bool:
    code = error_code(exc)
    return code in _TRANSIENT_READONLY or (code & 0xFF) not in _PERMANENT


def sqlite_error(context: str, exc: sqlite3.Error) -> SourceError:
    """`exc` as a SourceError: "<context>: <sqlite's message>", classified."""
    return SourceError(f"{context}: {exc}", transient=is_transient(exc))


def permanent(message: str) -> SourceError:
    return SourceError(message, transient=False)


def no_queue(path: Path) -> SourceError:
    return permanent(f"no SQLite queue at {path} (`pulling-agent seed` or `run` creates one)")


def check_path(path: Path, *, create: bool) -> None:
    """Refuse a path that can never hold a queue (or, `create` False, holds none)."""
    if path.is_dir():
        raise permanent(f"SQLite queue {path} is a directory, not a file")
    if not path.parent.is_dir():
        raise permanent(f"SQLite queue {path}: directory {path.parent} does not exist")
    if not path.exists():
        if not create:
            raise no_queue(path)
        if not os.access(path.parent, os.W_OK):
            raise permanent(
                f"SQLite queue {path}: unable to open: cannot create it in {path.parent} "
                "(not writable)"
            )


def check_queue_file(
    conn: sqlite3.Connection, path: Path, schema_version: int, *, must_exist: bool
) -> bool:
    """True when `path` holds a queue, False when it is new (empty); refuses
    anything else with a permanent `SourceError` naming it. Reads only."""
    # One read transaction: one snapshot, even while another agent creates the schema.
    conn.execute("BEGIN")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        application = int(conn.execute("PRAGMA application_id").fetchone()[0])
        tables = sorted(
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        )
        columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(documents)")}
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # it only read
    if application not in (0, APPLICATION_ID):
        raise permanent(
            f"SQLite file {path} belongs to another application (application_id "
            f"{application:#x}); refusing to change it"
        )
    if version == 0 and not tables:
        if must_exist:
            raise no_queue(path)
        return False
    ours = set(tables) >= QUEUE_TABLES and columns >= QUEUE_COLUMNS
    shown = ", ".join(tables[:6]) + (", ..." if len(tables) > 6 else "")
    if version > schema_version:
        if ours:
            raise permanent(
                f"SQLite queue {path}: schema version {version} is newer than this agent's "
                f"({schema_version}); upgrade pulling-agent"
            )
        raise permanent(
            f"SQLite file {path}: schema version {version} is unknown to this agent (it knows "
            f"{schema_version}) and its tables ({shown}) are not a queue's; refusing to change it"
        )
    if version == 0 or not ours:
        raise permanent(
            f"SQLite file {path} is not a pulling-agent queue (it holds tables {shown}); "
            "refusing to change it"
        )
    return True


def connect(path: Path, busy_timeout: float, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the queue at `path`: autocommit (transactions are
    explicit, BEGIN IMMEDIATE), shared across threads under the source's
    lock; `read_only` opens it so that it can never write."""
    try:
        return sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro" if read_only else path,
            uri=read_only,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise sqlite_error(f"SQLite queue {path}: cannot open", exc) from exc


def open_read_only(path: Path, schema_version: int, busy_timeout: float) -> sqlite3.Connection:
    """A connection to the queue at `path` that can never write to it."""
    check_path(path, create=False)
    conn = connect(path, busy_timeout, read_only=True)
    try:
        check_queue_file(conn, path, schema_version, must_exist=True)
    except sqlite3.Error as exc:
        conn.close()
        raise sqlite_error(f"SQLite queue {path}: cannot read", exc) from exc
    except SourceError:
        conn.close()
        raise
    return conn


class WalSpace:
    """Keeps the write-ahead log from filling a small disk.

    By default SQLite checkpoints the WAL once it holds 1000 pages (4 MB) and
    never shrinks the file. On a small volume the WAL can fill the disk
    before that; then no commit succeeds and no checkpoint ever runs, and
    the queue stays stuck even after space returns. So:

    - while the free space on the queue's file system is short (looked at
      after a use of the connection, at most every CHECK_SECONDS), the WAL
      is checkpointed every SMALL_WAL_PAGES and cut back to that size when
      it restarts (`wal_autocheckpoint`, `journal_size_limit`), and a WAL
      that grew larger than that before is truncated;
    - after a disk-full error the WAL is truncated at once (a checkpoint
      moves its pages into the database, then cuts the file to zero bytes),
      which succeeds as soon as there is room for those pages: the agent's
      retries then go through without anyone's help.
    """

    CHECK_SECONDS = 0.25
    #: Free space under which the WAL is kept small.
    SHORT_BYTES = 64 * 1024 * 1024
    SMALL_WAL_PAGES = 64

    def __init__(self, path: Path, *, active: bool = True) -> None:
        self._path = path
        self._active = active  # a read-only connection changes nothing
        self._wal = Path(f"{path}-wal")
        self._next_check = 0.0
        self._short = False

    def free_bytes(self) -> int:
        stats = os.statvfs(self._path.parent)
        return stats.f_bavail * stats.f_frsize

    def after_use(self, conn: sqlite3.Connection) -> None:
        """After each use of the connection; looks at the disk now and then."""
        now = time.monotonic()
        if now < self._next_check or not self._active:
            return
        self._next_check = now + self.CHECK_SECONDS
        try:
            short = self.free_bytes() < self.SHORT_BYTES
            wal_bytes = self._wal.stat().st_size
        except OSError:
            return
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        small = self.SMALL_WAL_PAGES * page
        if short != self._short:
            self._short = short
            # SQLite's defaults when there is room: 1000 pages, no size limit.
            pages, limit = (self.SMALL_WAL_PAGES, small) if short else (1000, -1)
            conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            conn.execute(f"PRAGMA journal_size_limit = {limit}")
            log.info(
                "Queue file system %s: write-ahead log checkpointed every %d pages",
                "short of space" if short else "has room again",
                pages,
            )
        if short and wal_bytes > 2 * small:
            self.truncate(conn)

    def after_error(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> None:
        """After a failed statement or transaction (rolled back): make room if
        the disk was full."""
        full = error_code(exc) & 0xFF == SQLITE_FULL
        if full and self._active and not conn.in_transaction:
            self._next_check = 0.0  # and keep the WAL small from the next commit on
            self.truncate(conn)

    @staticmethod
    def truncate(conn: sqlite3.Connection) -> None:
        """Move the WAL into the database and cut the file to zero; best effort."""
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.debug("WAL checkpoint failed: %s", exc)
