"""The workers of one timed drain, and what a run and a series of runs measured.

A `Crew` is the worker processes of one run, started and ready before the
clock starts: `AgentCrew` (real `pulling-agent run` processes, started
paused, resumed together by SIGUSR2) or `ScriptCrew` (scripts speaking the
`drain_worker` protocol: the raw loops and the Python peers). `go()` starts
the clock, `wait()` returns once the queue is drained with the workers' CPU
seconds since the go.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import Workspace, cpu_seconds, liveness_int, status_kb, watching

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 300.0


@dataclass
class Run:
    documents: int
    seconds: float
    worker_cpu: float
    server_cpu: float
    statements: int
    load: float
    rss_kb: tuple[int, int] = (0, 0)  # an agent's VmRSS and VmHWM at the end

    @property
    def rate(self) -> float:
        return self.documents / self.seconds


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def best(self) -> float:
        return max(r.rate for r in self.runs)

    def per_1k(self, attr: str) -> float:
        return statistics.median(1000 * getattr(r, attr) / r.documents for r in self.runs)

    @property
    def cpu_per_1k(self) -> float:
        """Workers' and server's CPU-seconds per 1,000 documents (medians)."""
        return self.per_1k("worker_cpu") + self.per_1k("server_cpu")

    @property
    def statements_per_doc(self) -> float:
        return statistics.median(r.statements / r.documents for r in self.runs)


# ------------------------------------------------------------------ crews
class Crew(Protocol):
    """The workers of one run, ready to go."""

    def go(self) -> float: ...  # the wall-clock time of the go
    def wait(self) -> float: ...  # blocks until drained; the workers' CPU seconds
    def close(self) -> None: ...


class AgentCrew:
    def __init__(self, ws: Workspace, url: str, workers: int, batch: int, total: int) -> None:
        self.total = total
        # --heartbeat-interval 0.25: the liveness file's `documents=` tells the
        # bench that the queue is drained; a quarter second (four small file
        # writes a second) keeps that wait short. The clock's end is read
        # from the queue, not from this file.
        args = ("--processor", "noop", "--batch-size", str(batch), "--heartbeat-interval", "0.25")
        self.agents = [
            ws.agent(f"agent-w{workers}-b{batch}-{i}", args, source=url, control="pause")
            for i in range(workers)
        ]
        for agent in self.agents:
            agent.start(wait_state=None)
        for agent in self.agents:
            with watching(agent) as watcher:
                watcher.wait("paused")
        self._cpu = 0.0
        self.rss_kb = (0, 0)

    def go(self) -> float:
        self._cpu = sum(cpu_seconds(a.pid) for a in self.agents)
        started = time.time()
        for agent in self.agents:
            agent.signal(signal.SIGUSR2)
        return started

    def wait(self) -> float:
        deadline = time.monotonic() + RUN_TIMEOUT
        while sum(liveness_int(a, "documents") for a in self.agents) < self.total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"agents did not drain {self.total} documents in time")
            for agent in self.agents:
                if not agent.running():
                    raise RuntimeError(f"agent exited: {agent.log_tail(5)}")
            time.sleep(0.05)
        cpu = sum(cpu_seconds(a.pid) for a in self.agents) - self._cpu
        first = self.agents[0].pid
        self.rss_kb = (status_kb(first, "VmRSS"), status_kb(first, "VmHWM"))
        return cpu

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()


class ScriptCrew:
    """Worker scripts speaking the `drain_worker` protocol."""

    def __init__(self, ws: Workspace, argvs: Sequence[Sequence[str]]) -> None:
        self.dir = ws.path("workers")
        self.procs: list[subprocess.Popen[str]] = []
        for n, argv in enumerate(argvs):
            log = (self.dir / f"worker-{n}.log").open("w")
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, *argv],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=HERE,
                )
            )
            log.close()
        for n, proc in enumerate(self.procs):
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"worker {argvs[n][0]} did not start: {self._log(n)}")

    def _log(self, n: int) -> str:
        return (self.dir / f"worker-{n}.log").read_text(errors="replace")[-600:]

    def go(self) -> float:
        started = time.time()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return started

    def wait(self) -> float:
        cpu = 0.0
        for n, proc in enumerate(self.procs):
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"worker exited {proc.returncode}: {self._log(n)}")
            cpu += float(json.loads(out.strip().splitlines()[-1])["cpu_seconds"])
        return cpu

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
