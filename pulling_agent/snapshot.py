"""What listeners are told: a consistent picture of the agent at one moment.

The controller tells each `Listener` (the health files, the metrics) about
every change and every heartbeat (`publish`), and how it answered each
operator command (`command_handled`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from pulling_agent.commands import Command, CommandResult
from pulling_agent.lag import Lag, LagWindow
from pulling_agent.state import Desired, State


@dataclass(frozen=True, slots=True)
class Counters:
    """Totals since start; the liveness file's `batches=`, `documents=`, `errors=`."""

    batches: int = 0
    documents: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The liveness file's fields (same names) and the metrics' values.

    `reason`, `requested_by`, `requested_at` and `channel` describe the
    operator request behind the desired state (empty before the first one);
    `error` is the source's current failure ("" while it answers).
    """

    state: State
    #: Where the agent is heading: what the last command asked for, whatever
    #: its channel (a signal included), or stopped.
    desired: Desired
    counters: Counters
    pid: int
    paused_since: datetime | None = None
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime | None = None
    channel: str = ""
    error: str = ""
    #: What the declarative channels (control file, ConfigMap) last asked for;
    #: a signal changes `desired` but not this. Their mismatch is worth an alert.
    declared: Desired = Desired.RUNNING
    #: The backlog, this agent's rate and the time to drain (pulling_agent/lag.py).
    lag: Lag = field(default_factory=Lag)
    #: When the agent entered `state` (None before it left STARTING).
    since: datetime | None = None

    @property
    def ready(self) -> bool:
        """Ready for traffic: running and the source reachable."""
        return self.state is State.RUNNING and not self.error


class Stats:
    """Thread-safe totals and the lag window, updated by the worker and read by the controller."""

    def __init__(self, lag_window: LagWindow | None = None) -> None:
        self._lock = threading.Lock()
        self._counters = Counters()
        self._lag = lag_window or LagWindow()

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

    def observe_backlog(self, backlog: int) -> None:
        self._lag.backlog_observed(backlog)

    def lag(self) -> Lag:
        """The lag now (records the documents total for the rate)."""
        return self._lag.lag(self.counters.documents)


class Listener:
    """Told about every change (and every heartbeat). Default: ignore."""

    def describe(self) -> str:
        """What it updates, for log lines ("health files in /tmp/health")."""
        return type(self).__name__

    def publish(self, snapshot: Snapshot) -> None:
        """The agent's picture changed, or a heartbeat is due."""

    def command_handled(self, command: Command, result: CommandResult) -> None:
        """The controller answered an operator command."""
