"""Run the real agent as a subprocess and read what it shows: for tests and benchmarks.

`AgentProcess` starts `pulling-agent run` from the virtualenv with its own
control, health and queue paths under one directory, and offers bounded
polling on its health files (no timed assertions: every wait has a generous
limit and fails with the agent's recent log).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
AGENT = str(VENV_BIN / "pulling-agent")


def cli(
    *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `pulling-agent ARGS...` and return the completed process."""
    proc = subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pulling-agent {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


#: `run` options of an agent that keeps the CPU and Python's GIL busy: 5 ms of
#: pure-Python work a document (the built-in `slow` processor with `cpu=true`).
CPU_BOUND_ARGS = (
    "--processor",
    "slow",
    "--processor-option",
    "seconds=0.005",
    "--processor-option",
    "cpu=true",
)


def send_signals(pid: int, signals: Sequence[int], gap: float) -> None:
    """`kill` each of `signals` to `pid` in turn, at least `gap` seconds apart.

    The gap is slept, as between two shell commands: a busy wait would hold
    one of the machine's CPUs that the agent needs to take the first signal.
    """
    for number, sig in enumerate(signals):
        if number:
            time.sleep(gap)
        os.kill(pid, sig)


def write_kubelet_style(control_dir: Path, files: dict[str, str]) -> None:
    """Update `control_dir` the way the kubelet updates a ConfigMap volume.

    The data lives in a timestamped directory; `..data` is a symlink to it,
    swapped atomically by renaming a new symlink over it; each key is a
    symlink `key -> ..data/key` created once.
    """
    control_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    payload = control_dir / stamp
    payload.mkdir()
    for key, value in files.items():
        (payload / key).write_text(value)
    tmp_link = control_dir / "..data_tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(stamp)
    old = (control_dir / "..data").resolve() if (control_dir / "..data").is_symlink() else None
    tmp_link.replace(control_dir / "..data")
    for key in files:
        link = control_dir / key
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(f"..data/{key}")
    if old is not None and old.is_dir() and old.name != stamp:
        for child in old.iterdir():
            child.unlink()
        old.rmdir()


class AgentProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        source: str | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.control_dir = workdir / "control"
        self.health_dir = workdir / "health"
        self.log_path = workdir / "agent.log"
        self.source = source or f"sqlite:///{workdir / 'queue.db'}"
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    # ------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        return [
            AGENT,
            "run",
            "--source",
            self.source,
            "--control-dir",
            str(self.control_dir),
            "--health-dir",
            str(self.health_dir),
            "--metrics-port",
            "0",
            "--log-format",
            "json",
            "--poll-interval",
            "0.5",
            "--heartbeat-interval",
            "1",
            *self.args,
        ]

    def start(self, wait_state: str | None = "any") -> AgentProcess:
        (self.health_dir / "liveness").unlink(missing_ok=True)
        self._log_handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log_handle, stderr=subprocess.STDOUT, env=self.env
        )
        if wait_state == "any":
            self.wait_for(lambda: self.state() is not None, "the agent to write its liveness file")
        elif wait_state is not None:
            self.wait_state(wait_state)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"agent did not exit within {timeout}s\n{self.log_tail()}"
            ) from None
        if self._log_handle:
            self._log_handle.close()
            self._log_handle = None
        return code

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log_handle:
            self._log_handle.close()
            self._log_handle = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --------------------------------------------------------------- reads
    def liveness_lines(self) -> list[str]:
        try:
            return (self.health_dir / "liveness").read_text().splitlines()
        except FileNotFoundError:
            return []

    def state(self) -> str | None:
        lines = self.liveness_lines()
        return lines[0] if lines else None

    def liveness(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for line in self.liveness_lines()[2:]:
            key, _, value = line.partition("=")
            fields[key] = value
        return fields

    def ready(self) -> bool:
        return (self.health_dir / "readiness").exists()

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"message": line})
        return entries

    def messages(self) -> list[str]:
        return [str(entry.get("message", "")) for entry in self.logs()]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stats(self) -> dict[str, int]:
        out = cli("stats", "--source", self.source, "--output", "json").stdout
        return dict(json.loads(out))

    # ------------------------------------------------------------- waiting
    def wait_for(
        self,
        predicate: Callable[[], object],
        what: str,
        timeout: float = 60,
        interval: float = 0.02,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                if predicate():
                    return
                raise AssertionError(
                    f"agent exited ({self.proc.returncode}) while waiting for {what}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}")

    def wait_state(self, state: str, timeout: float = 60) -> None:
        self.wait_for(lambda: self.state() == state, f"state {state!r}", timeout)

    def write_control(self, text: str) -> None:
        self.control_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.control_dir / ".state.tmp"
        tmp.write_text(text)
        tmp.replace(self.control_dir / "state")
