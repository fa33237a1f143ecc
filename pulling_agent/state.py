"""The agent's lifecycle states and the one table of allowed transitions."""

from __future__ import annotations

import logging
from enum import StrEnum

log = logging.getLogger(__name__)


class State(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Desired(StrEnum):
    """What the operators want; the state follows it at the next safe point."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


#: (from, to) -> the verb that names the transition in log lines.
TRANSITIONS: dict[tuple[State, State], str] = {
    (State.STARTING, State.RUNNING): "start",
    (State.STARTING, State.PAUSED): "pause",
    (State.STARTING, State.STOPPING): "stop",
    (State.RUNNING, State.PAUSED): "pause",
    (State.RUNNING, State.STOPPING): "stop",
    (State.PAUSED, State.RUNNING): "resume",
    (State.PAUSED, State.STOPPING): "stop",
    (State.STOPPING, State.STOPPED): "stop",
}

_VERB_FOR_TARGET = {
    State.RUNNING: "resume",
    State.PAUSED: "pause",
    State.STOPPING: "stop",
    State.STOPPED: "stop",
    State.STARTING: "start",
}


class InvalidTransition(Exception):
    """A transition that the table does not allow."""

    def __init__(self, current: State, target: State) -> None:
        verb = _VERB_FOR_TARGET[target]
        super().__init__(f"Cannot {verb} from {current.name} state")
        self.current = current
        self.target = target


def can_transition(current: State, target: State) -> bool:
    return (current, target) in TRANSITIONS


class StateMachine:
    """Holds the current state; refuses what `TRANSITIONS` does not allow.

    Not thread-safe on its own: the controller is its only writer.
    """

    def __init__(self) -> None:
        self._state = State.STARTING

    @property
    def state(self) -> State:
        return self._state

    def transition(self, target: State) -> State:
        """Move to `target` and return the previous state.

        Raises `InvalidTransition` (message: "Cannot pause from PAUSED state")
        when the table does not allow it.
        """
        if not can_transition(self._state, target):
            raise InvalidTransition(self._state, target)
        previous, self._state = self._state, target
        return previous

    def try_transition(self, target: State) -> bool:
        """Like `transition`, but logs a refusal instead of raising."""
        try:
            self.transition(target)
        except InvalidTransition as exc:
            log.warning("%s", exc)
            return False
        return True
