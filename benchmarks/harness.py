"""What every benchmark shares: figure lines, percentiles, agents, /proc readings.

Figures go to stdout, one JSON object a line (`Figures.emit`); progress and
explanations go to stderr (`say`). Agents are real `pulling-agent run`
processes (`testkit.agentproc.AgentProcess`) in a private directory, always
killed at the end. State changes are observed through inotify on the health
directory, so waiting for `paused` costs no polling and adds well under a
millisecond to a measured latency.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from inotify_simple import INotify, flags

from testkit.agentproc import AgentProcess, write_kubelet_style

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


class Unavailable(Exception):
    """A figure cannot be measured on this machine (not an agent failure)."""


class Figures:
    """Writes figure lines and remembers which names were written.

    A line: name, value, unit, baseline, ratio (value / baseline), and
    optionally target (the design's number) and note (how it was measured);
    load_1m is the machine's 1-minute load average when it was written.
    """

    def __init__(self) -> None:
        self.written: set[str] = set()
        self.errors: list[str] = []

    def emit(
        self,
        name: str,
        value: float,
        unit: str,
        baseline: float | None,
        *,
        target: str = "",
        note: str = "",
        digits: int = 1,
    ) -> None:
        ratio = None
        if baseline not in (None, 0) and baseline is not None:
            ratio = round(value / baseline, 3)
        line: dict[str, Any] = {
            "name": name,
            "value": round(value, digits) if digits else round(value),
            "unit": unit,
            "baseline": (round(baseline, digits) if digits else round(baseline))
            if baseline is not None
            else None,
            "ratio": ratio,
        }
        if target:
            line["target"] = target
        if note:
            line["note"] = note
        # How busy the (shared) machine was when the figure was taken.
        line["load_1m"] = round(os.getloadavg()[0], 2)
        self._write(line)

    def skip(self, name: str, reason: str) -> None:
        self._write({"name": name, "skipped": one_line(reason)})

    def pass_through(self, line: dict[str, Any]) -> None:
        """A figure line measured by another program."""
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        self.written.add(str(line["name"]))
        print(json.dumps(line), flush=True)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe_ms(values_s: Sequence[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"n={len(ms)} min={min(ms):.1f} p50={percentile(ms, 50):.1f} "
        f"p90={percentile(ms, 90):.1f} p99={percentile(ms, 99):.1f} max={max(ms):.1f} ms"
    )


def emit_latency_percentiles(
    figures: Figures,
    stem: str,
    values_s: Sequence[float],
    baseline_ms: dict[int, float],
    *,
    target_ms: float,
    note: str,
) -> None:
    """`<stem>_p50_ms` and `<stem>_p99_ms` of latencies in seconds; `target_ms` is for p50."""
    for pct in (50, 99):
        figures.emit(
            f"{stem}_p{pct}_ms",
            percentile(values_s, pct) * 1000,
            "ms",
            baseline_ms[pct],
            target=f"< {target_ms:g} ms (p50)" if pct == 50 else "",
            note=note,
            digits=2,
        )


# ------------------------------------------------------------------ /proc
def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


# ------------------------------------------------------------------ agents
class Workspace:
    """A private directory for one benchmark run's agents and queues."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pa-bench-"))
        self.keep = keep
        self._agents: list[AgentProcess] = []
        self._count = 0

    def path(self, name: str) -> Path:
        self._count += 1
        path = self.root / f"{self._count:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def agent(
        self,
        name: str,
        args: Sequence[str],
        *,
        source: str | None = None,
        control: str | None = "running",
    ) -> AgentProcess:
        """An agent (not started) in its own directory.

        `control`: the word its control directory holds at start, written
        kubelet-style (None: no control directory at all).
        """
        workdir = self.path(name)
        agent = AgentProcess(workdir, source=source, args=list(args))
        if control is not None:
            write_kubelet_style(agent.control_dir, {"state": f"{control}\n"})
        self._agents.append(agent)
        return agent

    def close(self) -> None:
        for agent in self._agents:
            with contextlib.suppress(Exception):
                if agent.running():
                    agent.signal(signal.SIGTERM)
                    try:
                        agent.proc.wait(timeout=10)  # type: ignore[union-attr]
                    except Exception:
                        agent.kill()
                agent.kill()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            say(f"kept {self.root}")

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Agent options shared by every benchmark: the CLI's own defaults for the
# intervals (AgentProcess shortens them for tests), no metrics port (several
# agents run at once), JSON logs to the agent's log file.
DEFAULT_INTERVALS = ("--poll-interval", "2", "--heartbeat-interval", "5")


class StateWatcher:
    """Tells the moment an agent's liveness file shows a state.

    inotify on the health directory (the agent renames a temporary file over
    `liveness`, which is an IN_MOVED_TO): no polling, so the agent being
    measured shares the CPU with nothing.
    """

    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent
        agent.health_dir.mkdir(parents=True, exist_ok=True)
        self._inotify = INotify()
        self._inotify.add_watch(agent.health_dir, flags.MOVED_TO | flags.CLOSE_WRITE)

    def wait(self, state: str, timeout: float = 30.0) -> float:
        """`time.perf_counter()` when line 1 of the liveness file is `state`."""
        deadline = time.perf_counter() + timeout
        while True:
            self._inotify.read(timeout=0)  # drain: the read below sees every earlier write
            if self.agent.state() == state:
                return time.perf_counter()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(
                    f"agent did not reach {state!r} within {timeout:.0f}s "
                    f"(liveness says {self.agent.state()!r}); log: "
                    f"{one_line(self.agent.log_tail(5), 600)}"
                )
            if not self.agent.running():
                raise RuntimeError(
                    f"agent exited ({self.agent.proc.returncode if self.agent.proc else '?'}) "
                    f"while waiting for {state!r}: {one_line(self.agent.log_tail(5), 600)}"
                )
            self._inotify.read(timeout=max(1, int(min(remaining, 1.0) * 1000)))

    def close(self) -> None:
        self._inotify.close()


@contextlib.contextmanager
def watching(agent: AgentProcess) -> Iterator[StateWatcher]:
    watcher = StateWatcher(agent)
    try:
        yield watcher
    finally:
        watcher.close()


def liveness_written_at(agent: AgentProcess) -> float | None:
    """The write time on line 2 of the liveness file (epoch seconds, ms precision)."""
    lines = agent.liveness_lines()
    try:
        return datetime.fromisoformat(lines[1]).timestamp()
    except (IndexError, ValueError):
        return None


class LatencyLog:
    """Latencies of one series, and how much of each the agent itself took.

    `agent_part` is from the command to the write time the agent put on line
    2 of the liveness file (wall clock, ms precision); the rest is the
    bench's own observation. It tells, for a slow run, whether the agent or
    the (shared) machine was slow.
    """

    def __init__(self) -> None:
        self.values: list[float] = []
        self.agent_parts: list[float | None] = []

    def add(self, agent: AgentProcess, wall_start: float, perf_start: float, seen: float) -> None:
        self.values.append(seen - perf_start)
        written = liveness_written_at(agent)
        self.agent_parts.append(None if written is None else written - wall_start)

    def slow_runs(self, floor: float = 0.010, factor: float = 5.0) -> str:
        """The runs slower than `factor` x the median (and `floor`), explained."""
        limit = max(floor, factor * percentile(self.values, 50))
        parts = [
            f"{value * 1000:.1f} ms (the agent wrote its liveness file after "
            + (f"{part * 1000:.0f} ms)" if part is not None else "? ms)")
            for value, part in zip(self.values, self.agent_parts, strict=True)
            if value > limit
        ]
        return "; ".join(parts)


def liveness_int(agent: AgentProcess, key: str) -> int:
    try:
        return int(agent.liveness().get(key, "0") or 0)
    except ValueError:
        return 0
