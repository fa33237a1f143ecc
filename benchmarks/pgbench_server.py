"""The throw-away PostgreSQL server of the drain benchmark, and what it counts.

One server (`testkit/postgres_server.py`, the machine's binaries) with
`pg_stat_statements` loaded, restarted between the two passes with the
settings of each: `fast` (fsync, synchronous_commit and full_page_writes
off: what is left is CPU and round trips) and `durable` (PostgreSQL's own
defaults: every commit waits for its WAL flush).

- Statements are counted by `pg_stat_statements` (every top-level statement
  a client sends, BEGIN and COMMIT included), reset for a run's database
  just before the go and summed right after the drain.
- Server CPU is the postmaster's own and its children's utime + stime from
  /proc, the exited backends' included (the postmaster reaps them, so their
  time moves to its cutime and cstime).
- Each run gets its own database, a copy (`CREATE DATABASE ... TEMPLATE`) of
  a template seeded once per pass, so that seeding stays out of the budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from harness import CLOCK_TICKS, Unavailable, say

PASSES: dict[str, dict[str, str]] = {
    "fast": {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    "durable": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
}


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # After "pid (comm) ": field 3 is the state, 4 the parent, 14-17 the times.
    return text[text.rindex(")") + 2 :].split()


class BenchServer:
    """The benchmark's PostgreSQL server; see the module docstring."""

    def __init__(self) -> None:
        from testkit.postgres_server import Template, find_bindir, why_missing

        reason = why_missing()
        if reason is not None:
            raise Unavailable(reason)
        bindir = find_bindir()
        assert bindir is not None
        self.version = bindir.parent.name
        say(f"postgres: a throw-away PostgreSQL {self.version} server from {bindir}")
        self._template = Template(bindir)
        self.server = self._template.server()
        self.pass_name = ""
        self._runs = 0

    def start(self, pass_name: str) -> None:
        if self.server.running():
            self.server.stop()
        settings = {
            **PASSES[pass_name],
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.track": "top",
            "pg_stat_statements.track_utility": "on",
        }
        self.server.start(settings=settings)
        self.pass_name = pass_name
        with self.admin() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def close(self) -> None:
        self.server.remove()
        self._template.remove()

    # -- databases ---------------------------------------------------------------

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.server.url(), autocommit=True) as conn:
            yield conn

    def url(self, dbname: str) -> str:
        return self.server.url(dbname)

    def create(self, name: str, template: str | None = None) -> str:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def copy(self, template: str) -> tuple[str, str]:
        """A fresh copy of `template` for one run: (dbname, url)."""
        self._runs += 1
        name = f"run_{self._runs}"
        return name, self.create(name, template)

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- what a run costs --------------------------------------------------------

    def reset_statements(self, dbname: str) -> None:
        with self.admin() as conn:
            conn.execute(
                "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = %s",
                (dbname,),
            )

    def statements(self, dbname: str) -> int:
        """Statements run in `dbname` since its reset (every client's)."""
        with self.admin() as conn:
            row = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                (dbname,),
            ).fetchone()
        return int(row[0]) if row else 0

    def cpu_seconds(self) -> float:
        """CPU time of the whole server so far (see the module docstring)."""
        pid = int((self.server.data / "postmaster.pid").read_text().split()[0])
        fields = _stat_fields(pid)
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                child = _stat_fields(int(entry.name))
            except (OSError, ValueError):
                continue  # exited meanwhile
            if child[1] == str(pid):
                ticks += int(child[11]) + int(child[12])
        return ticks / CLOCK_TICKS
