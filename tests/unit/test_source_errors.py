"""Transient or permanent: which source errors the agent retries and which end it at start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from pulling_agent.sources.postgres_errors import refusal_is_permanent
from pulling_agent.sources.sqlite_file import is_transient


def sqlite_failure(code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError("simulated")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (5, True),  # SQLITE_BUSY
        (6, True),  # SQLITE_LOCKED
        (13, True),  # SQLITE_FULL
        (10, True),  # SQLITE_IOERR
        (3850, True),  # SQLITE_IOERR_LOCK (an extended code)
        (264, True),  # SQLITE_READONLY_RECOVERY
        (26, False),  # SQLITE_NOTADB
        (11, False),  # SQLITE_CORRUPT
        (14, False),  # SQLITE_CANTOPEN
        (8, False),  # SQLITE_READONLY
        (1, False),  # SQLITE_ERROR: no such table
    ],
)
def test_sqlite_codes(code: int, transient: bool) -> None:
    assert is_transient(sqlite_failure(code)) is transient


def test_a_real_not_a_database_error_is_permanent(tmp_path: Path) -> None:
    path = tmp_path / "noise.db"
    path.write_bytes(b"noise" * 1000)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert not is_transient(caught.value)


@pytest.mark.parametrize(
    ("message", "permanent"),
    [
        ('FATAL:  database "queue" does not exist', True),
        ('FATAL:  role "agent" does not exist', True),
        ('FATAL:  password authentication failed for user "agent"', True),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.7", user "agent"', True),
        ("connection refused", False),
        ("FATAL:  the database system is starting up", False),
        ("FATAL:  sorry, too many clients already", False),
        ("server closed the connection unexpectedly", False),
    ],
)
def test_postgres_connection_refusals(message: str, permanent: bool) -> None:
    assert refusal_is_permanent(psycopg.OperationalError(message)) is permanent
