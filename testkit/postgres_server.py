"""A real, throw-away PostgreSQL server started from the machine's binaries.

Used by the integration tests (through `tests/integration/conftest.py`) and
usable by benchmarks: `initdb` once into a template directory, then each
server is a copy of it, started with `pg_ctl` on a free port of 127.0.0.1,
its unix socket in its own temporary directory, trust authentication, user
`postgres`.

PostgreSQL refuses to run as root. When the tests run as root (CI does),
the server's directory is given to the unprivileged user `nobody` and every
server command runs as that user through `setpriv` (util-linux).

`find_bindir()` returns None, with `why_missing()` saying why, where the
binaries are absent, so that callers can skip with a one-line reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_NEEDED = ("initdb", "pg_ctl", "postgres")
_UNPRIVILEGED = "nobody"


def _candidate_bindirs() -> list[Path]:
    candidates: list[Path] = []
    if env := os.environ.get("PG_BINDIR"):
        candidates.append(Path(env))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    # Debian/Ubuntu install the server binaries here, off PATH; newest first.
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in debian]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    return candidates


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    for bindir in _candidate_bindirs():
        if all((bindir / name).is_file() for name in _NEEDED):
            return bindir
    return None


def why_missing() -> str | None:
    """None when a server can be started here, else the one-line reason."""
    if find_bindir() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
            "(pg_config --bindir, /usr/lib/postgresql/*/bin); install Debian's postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_UNPRIVILEGED)
        except KeyError:
            return f"running as root and no user {_UNPRIVILEGED!r} to run PostgreSQL as"
        if shutil.which("setpriv") is None:
            return "running as root and setpriv (util-linux) is missing"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Runner:
    """Runs server commands, as `nobody` when we are root."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root:
            entry = pwd.getpwnam(_UNPRIVILEGED)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()

    def own(self, path: Path) -> None:
        if not self.as_root:
            return
        for root, dirs, files in os.walk(path):
            os.chown(root, self.uid, self.gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)

    def command(self, argv: list[str]) -> list[str]:
        if not self.as_root:
            return argv
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--",
            *argv,
        ]

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "HOME": "/tmp",
        }
        return subprocess.run(
            self.command(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/",
            check=False,
        )


class Template:
    """An initdb'd data directory that servers are copied from."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.runner = _Runner()
        # Not under pytest's basetemp: that is private to root (0700), and the
        # server runs as `nobody`.
        self.root = Path(tempfile.mkdtemp(prefix="pa-pg-template-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.runner.own(self.root)
        result = self.runner.run(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        if result.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr}")

    def server(self) -> PostgresServer:
        return PostgresServer(self)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresServer:
    """One server: a copy of the template on its own port. Not started yet."""

    def __init__(self, template: Template) -> None:
        self.bindir = template.bindir
        self.runner = template.runner
        self.root = Path(tempfile.mkdtemp(prefix="pa-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        shutil.copytree(template.data, self.data, symlinks=True)
        self.socket_dir.mkdir()
        self.log.touch()
        self.runner.own(self.root)
        self.port = free_port()
        self.host = "127.0.0.1"
        self._counter = 0

    # -- life cycle ------------------------------------------------------------

    def start(self, timeout: float = 60, settings: dict[str, str] | None = None) -> None:
        """Start the server; `settings` override the test defaults below
        (`{"fsync": "on", "full_page_writes": "on"}` gives PostgreSQL's own)."""
        chosen = {
            # A test server: durability against an OS crash is not needed
            # (stopping it, even with -m immediate, loses nothing committed).
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **(settings or {}),
        }
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                f"-c listen_addresses={self.host}",
                *(f"-c {name}={value}" for name, value in chosen.items()),
            ]
        )
        result = self.runner.run(
            [
                str(self.bindir / "pg_ctl"),
                "--pgdata",
                str(self.data),
                "--log",
                str(self.log),
                "--options",
                options,
                "--wait",
                "--timeout",
                str(int(timeout)),
                "start",
            ],
            timeout=timeout + 30,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}): {result.stderr}\n{self.log_tail()}"
            )

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server (`fast`, or `immediate` to cut it off like a crash)."""
        result = self.runner.run(
            [
                str(self.bindir / "pg_ctl"),
                "--pgdata",
                str(self.data),
                "--mode",
                mode,
                "--wait",
                "--timeout",
                str(int(timeout)),
                "stop",
            ],
            timeout=timeout + 30,
        )
        if result.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop failed ({result.returncode}): {result.stderr}")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- databases ---------------------------------------------------------------

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@{self.host}:{self.port}/{dbname}"

    def create_database(self, prefix: str = "queue") -> str:
        """A new, empty database; returns its URL."""
        import psycopg  # the agent's own dependency

        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url(), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
