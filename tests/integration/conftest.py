"""Fixtures of the integration tier.

PostgreSQL (see `testkit/postgres_server.py`): a real server started from the
machine's binaries; tests that need it skip with a one-line reason where the
binaries are absent.

- `postgres_server`: one server for the session (do not stop it).
- `postgres_url`: that server's URL (database `postgres`).
- `postgres_database_url`: a new, empty database on it for one test.
- `make_postgres_server`: a factory of private servers, for tests that stop
  and restart their server; each is removed after the test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.postgres_server import PostgresServer, Template, find_bindir, why_missing


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[Template]:
    reason = why_missing()
    if reason is not None:
        pytest.skip(reason)
    bindir = find_bindir()
    assert bindir is not None
    template = Template(bindir)
    yield template
    template.remove()


@pytest.fixture(scope="session")
def postgres_server(postgres_template: Template) -> Iterator[PostgresServer]:
    server = postgres_template.server()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url()


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def make_postgres_server(
    postgres_template: Template,
) -> Iterator[Callable[[], PostgresServer]]:
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        server = postgres_template.server()
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.remove()


Tmpfs = Callable[[str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    """Mount small tmpfs file systems (`tmpfs("2m")`, `tmpfs("1m,ro")`): a real
    disk that fills up, or a read-only one. Needs root; always unmounted after."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        path = tmp_path / f"tmpfs-{len(mounted)}"
        path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={options}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        # Lazy: an agent killed a moment ago may still hold a file open.
        subprocess.run(["umount", "--lazy", str(path)], check=False, capture_output=True)


def fill(directory: Path, leave: int = 0, name: str = "filler") -> Path:
    """Write a file in `directory` until its file system has `leave` bytes free (or none)."""
    path = directory / name
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as handle:
        try:
            while True:
                stats = os.statvfs(directory)
                if stats.f_bavail * stats.f_frsize <= leave:
                    break
                handle.write(chunk)
        except OSError:
            pass  # full
    return path
