"""What listeners are told: a consistent picture of the agent at one moment."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from pulling_agent.state import Desired, State


@dataclass(frozen=True, slots=True)
class Counters:
    """Totals since start; the liveness file's `batches=`, `documents=`, `errors=`."""

    batches: int = 0
    documents: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: State
    desired: Desired
    counters: Counters
    pid: int
    paused_since: datetime | None = None
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime | None = None
    command_source: str = ""
    error: str = ""
    #: What the declarative channels (control file, ConfigMap) last asked for;
    #: a signal changes `desired` but not this. Their mismatch is worth an alert.
    declared: Desired = Desired.RUNNING

    @property
    def ready(self) -> bool:
        """Ready for traffic: running and the source reachable."""
        return self.state is State.RUNNING and not self.error


class Stats:
    """Thread-safe totals, updated by the worker and read by the controller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters = Counters()

    def add(self, batches: int = 0, documents: int = 0, errors: int = 0) -> None:
        with self._lock:
            c = self._counters
            self._counters = Counters(
                c.batches + batches, c.documents + documents, c.errors + errors
            )

    @property
    def counters(self) -> Counters:
        with self._lock:
            return self._counters
