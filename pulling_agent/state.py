"""The agent's lifecycle states and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum


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


#: The allowed (from, to) transitions; nothing else is.
TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {
        (State.STARTING, State.RUNNING),
        (State.STARTING, State.PAUSED),
        (State.STARTING, State.STOPPING),
        (State.RUNNING, State.PAUSED),
        (State.RUNNING, State.STOPPING),
        (State.PAUSED, State.RUNNING),
        (State.PAUSED, State.STOPPING),
        (State.STOPPING, State.STOPPED),
    }
)

#: How refusals name the transition: "Cannot pause from PAUSED state".
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
