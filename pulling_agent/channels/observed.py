"""The last control request observed from the declarative channels.

The control file and the ConfigMap watch see the same requests, the watch
sooner than the kubelet's copy in the mounted file. Both record here what
they observed — the action with its reason, requester and time — so that the
file's late copy of a request the watch already applied is not applied again
(it would undo, say, an operator's SIGUSR2 sent in between), while a new
request with the same word (a second pause, with its own time) still is.
Signals do not record: they are one-off overrides.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pulling_agent.commands import Action, Command
from pulling_agent.text import one_line
from pulling_agent.timestamps import parse_requested_at


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """A request as a declarative channel states it (whitespace folded).

    `word` is the state as written (`resume` and `running` ask the same, but a
    change from one to the other is a new request).
    """

    action: Action
    word: str
    reason: str = ""
    requested_by: str = ""
    requested_at: str = ""

    @classmethod
    def of(
        cls,
        action: Action,
        word: str,
        reason: str = "",
        requested_by: str = "",
        requested_at: str = "",
    ) -> ControlRequest:
        return cls(
            action,
            one_line(word).lower(),
            one_line(reason),
            one_line(requested_by),
            one_line(requested_at),
        )

    def command(self, channel: str) -> Command:
        """The command for the controller (an invalid or missing time: now)."""
        return Command(
            self.action,
            channel=channel,
            reason=self.reason,
            requested_by=self.requested_by,
            requested_at=parse_requested_at(self.requested_at),
        )


class ObservedRequest:
    """The last `ControlRequest` the file or the ConfigMap channel observed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._request: ControlRequest | None = None

    @property
    def action(self) -> Action | None:
        with self._lock:
            return self._request.action if self._request else None

    def observe(self, request: ControlRequest) -> bool:
        """Record `request`; True when it differs from the last one observed."""
        with self._lock:
            changed = request != self._request
            self._request = request
            return changed
