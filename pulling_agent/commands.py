"""What goes on the one queue to the controller: operators' commands and the worker's reports.

- A `Command` is an operator's request (pause, resume, stop), as a control
  channel observed it: which channel, why, who asked, when.
- A `Report` is the agent's own worker telling the controller what happened
  (a batch finished, the source failed or came back, the worker ended).

Channels and the worker only build these and put them on the `CommandQueue`;
the controller is its only consumer, and answers each command with a
`CommandResult`. `CommandQueue.put` is safe to call from a signal handler (it
wraps `queue.SimpleQueue`, whose `put` is reentrant).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pulling_agent.timestamps import utc_now


class Action(StrEnum):
    """What an operator's command asks for."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # graceful: finish the batch within the grace deadline
    STOP_NOW = "stop_now"  # release the batch in flight and exit


class ChannelName(StrEnum):
    """The control channels, as commands, logs, the liveness file and metrics name them."""

    SIGNAL = "signal"
    FILE = "file"  # the control directory (a ConfigMap volume in a pod)
    CONFIGMAP = "configmap"  # the ConfigMap watch through the Kubernetes API


#: Channels that state a desired state (rather than override it, like a signal).
DECLARATIVE_CHANNELS = frozenset({ChannelName.FILE, ChannelName.CONFIGMAP})


@dataclass(frozen=True, slots=True)
class Command:
    """One operator request for the controller, with where it came from, who asked and why.

    `channel` is one of `ChannelName` for the built-in channels; an embedding
    application may name its own.
    """

    action: Action
    channel: str
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime = field(default_factory=utc_now)

    def log_fields(self) -> dict[str, str]:
        """The `extra` of a log line about this command (see `pulling_agent.logs`)."""
        return {
            "channel": str(self.channel),  # a ChannelName prints as its value
            "reason": self.reason,
            "requested_by": self.requested_by,
        }


class CommandResult(StrEnum):
    """How the controller answered a command (the metric's `result` label)."""

    APPLIED = "applied"
    NOOP = "noop"  # already so: a repeat of the desired state
    REFUSED = "refused"  # not allowed from the current state ("Cannot pause from STOPPING state")


class ReportKind(StrEnum):
    """What the worker reports."""

    BATCH_DONE = "batch_done"  # only while a pause waits for the batch boundary
    SOURCE_ERROR = "source_error"
    SOURCE_OK = "source_ok"
    WORKER_EXITED = "worker_exited"


@dataclass(frozen=True, slots=True)
class Report:
    """The worker's report; `error` says what failed (SOURCE_ERROR, WORKER_EXITED)."""

    kind: ReportKind
    error: str = ""


class CommandQueue:
    """The single queue between the channels (and the worker) and the controller."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command | Report] = queue.SimpleQueue()

    def put(self, item: Command | Report) -> None:
        self._queue.put(item)

    def get(self, timeout: float | None) -> Command | Report | None:
        """The next item, or None when `timeout` seconds pass without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return self._queue.empty()
