"""Commands: what every control channel turns an observation into.

Channels (signals, the control file, the ConfigMap watch, the agent's own
worker) only build a `Command` and put it on the one `CommandQueue`; the
controller is its only consumer. `CommandQueue.put` is safe to call from a
signal handler (it wraps `queue.SimpleQueue`, whose `put` is reentrant).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Action(StrEnum):
    """What a command asks for."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # graceful: finish the batch within the grace deadline
    STOP_NOW = "stop_now"  # a second stop signal: release the batch and exit
    # Internal reports from the agent's worker thread.
    BATCH_DONE = "batch_done"
    WORKER_EXITED = "worker_exited"
    SOURCE_ERROR = "source_error"
    SOURCE_OK = "source_ok"


#: Channels that state a desired state (rather than override it, like a signal).
DECLARATIVE_SOURCES = frozenset({"file", "configmap"})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Command:
    """One request for the controller, with who asked and why."""

    action: Action
    source: str  # channel name: signal, file, configmap, cli, agent
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime = field(default_factory=utc_now)


class CommandQueue:
    """The single queue between the channels and the controller."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def put(self, command: Command) -> None:
        self._queue.put(command)

    def get(self, timeout: float | None) -> Command | None:
        """The next command, or None when `timeout` seconds pass without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return self._queue.empty()
