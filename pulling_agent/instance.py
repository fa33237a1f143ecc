"""One agent per health directory, and telling that agent from a stranger.

A running agent holds an exclusive `flock` on `<health-dir>/agent.lock` for
its whole life and writes into it its pid and its process start time (field
22 of `/proc/<pid>/stat`, in clock ticks since boot). So:

- a second agent given the same health directory cannot take the lock and
  refuses to start, naming the first one's pid (`InstanceLock.acquire`);
- `pulling-agent pause|resume|status` find the agent through the lock, not
  through the pid in the liveness file (`running_agent`): the lock is free
  once the agent is gone, whatever became of its pid (reused by another
  process, or a zombie nobody reaped), and a pid whose start time differs
  from the recorded one is not the agent. A stranger is never signalled.

The lock is the kernel's: it goes with the process, even on `kill -9`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "agent.lock"
#: How long a starting agent retries the lock: a CLI's probe holds it for
#: microseconds, and must not make an agent refuse to start.
ACQUIRE_SECONDS = 1.0


@dataclass(frozen=True)
class Identity:
    """A process: its pid and start time ("" where /proc is not available)."""

    pid: int
    start: str

    def render(self) -> str:
        return f"pid={self.pid}\nstart={self.start}\n"

    @classmethod
    def parse(cls, text: str) -> Identity | None:
        fields = dict(line.partition("=")[::2] for line in text.splitlines())
        try:
            pid = int(fields.get("pid", ""))
        except ValueError:
            return None
        return cls(pid, fields.get("start", "").strip()) if pid > 0 else None


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (the state) on; [] when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return text[text.rindex(")") + 2 :].split()


def process_start(pid: int) -> str:
    """The start time of `pid` (clock ticks since boot), or "" if unknown."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def why_unresponsive(pid: int) -> str:
    """Why the process `pid` cannot act on a signal now ("" when it can, or
    when /proc cannot tell)."""
    fields = _stat_fields(pid)
    state = fields[0] if fields else ""
    if state in ("T", "t"):
        return (
            f"agent process {pid} is stopped (SIGSTOP, or a debugger); "
            f"send it SIGCONT first: kill -CONT {pid}"
        )
    if state in ("Z", "X"):
        return f"agent process {pid} has exited"
    return ""


def this_process() -> Identity:
    return Identity(os.getpid(), process_start(os.getpid()))


class AgentAlreadyRunning(Exception):
    """Another agent holds the health directory."""

    def __init__(self, health_dir: Path, holder: Identity | None) -> None:
        who = f"pid {holder.pid}" if holder else "a process that is still starting"
        super().__init__(
            f"health directory {health_dir} is in use by another agent ({who}); "
            "give each agent its own --health-dir"
        )
        self.holder = holder


class InstanceLock:
    """The agent's hold on its health directory (see the module docstring)."""

    def __init__(self, health_dir: Path) -> None:
        self.health_dir = health_dir
        self.path = health_dir / LOCK_NAME
        self._fd = -1

    def acquire(self) -> None:
        """Take the lock or raise `AgentAlreadyRunning`; OSError if the directory is unusable."""
        self.health_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + ACQUIRE_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_identity(fd)
                    os.close(fd)
                    raise AgentAlreadyRunning(self.health_dir, holder) from None
                time.sleep(0.02)
            except OSError:
                os.close(fd)
                raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, this_process().render().encode(), 0)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the lock
            self._fd = -1


def _read_identity(fd: int) -> Identity | None:
    try:
        return Identity.parse(os.pread(fd, 256, 0).decode("utf-8", errors="replace"))
    except OSError:
        return None


def running_agent(health_dir: Path) -> Identity | None:
    """The agent that holds `health_dir` now, verified; None when there is none.

    Raises `OSError` (PermissionError, ...) when the lock file exists but
    cannot be opened.
    """
    try:
        fd = os.open(health_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: an agent is alive
        else:
            return None  # free: no agent (the probe's lock goes with the close below)
        for _ in range(10):  # the holder writes its identity just after locking
            holder = _read_identity(fd)
            if holder is not None:
                break
            time.sleep(0.01)
        else:
            return None
    finally:
        os.close(fd)
    if holder.start and process_start(holder.pid) != holder.start:
        return None  # the lock outlived its writer (a child kept it): not an agent to signal
    return holder
