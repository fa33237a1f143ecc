"""How a drain worker script talks to the bench (`drain.py`): ready, go, report.

A worker process connects and prepares everything, prints `ready` on stdout,
then blocks until the bench writes a line on its stdin: the bench starts
every worker of a run at the same moment and times from there. When the
queue is empty the worker prints one JSON line (documents it handled, its
own CPU seconds from the go on, every thread counted) and exits.
"""

from __future__ import annotations

import json
import sys
import time


def ready_then_wait() -> float:
    """Say `ready`, wait for the go; the process CPU time at the go."""
    print("ready", flush=True)
    if not sys.stdin.readline():
        raise SystemExit("no go from the bench (stdin closed)")
    return time.process_time()


def report(documents: int, cpu_at_go: float, **extra: object) -> None:
    line = {"documents": documents, "cpu_seconds": time.process_time() - cpu_at_go, **extra}
    print(json.dumps(line), flush=True)
