"""The whole transition table of the state machine."""

from __future__ import annotations

import itertools

import pytest

from pulling_agent.state import TRANSITIONS, InvalidTransition, State, StateMachine

ALLOWED = {
    (State.STARTING, State.RUNNING),
    (State.STARTING, State.PAUSED),
    (State.STARTING, State.STOPPING),
    (State.RUNNING, State.PAUSED),
    (State.RUNNING, State.STOPPING),
    (State.PAUSED, State.RUNNING),
    (State.PAUSED, State.STOPPING),
    (State.STOPPING, State.STOPPED),
}


def machine_in(state: State) -> StateMachine:
    """A machine brought to `state` through allowed transitions only."""
    machine = StateMachine()
    path = {
        State.STARTING: [],
        State.RUNNING: [State.RUNNING],
        State.PAUSED: [State.PAUSED],
        State.STOPPING: [State.STOPPING],
        State.STOPPED: [State.STOPPING, State.STOPPED],
    }[state]
    for step in path:
        machine.transition(step)
    assert machine.state is state
    return machine


def test_table_is_exactly_the_documented_one() -> None:
    assert set(TRANSITIONS) == ALLOWED


@pytest.mark.parametrize(("current", "target"), list(itertools.product(State, State)))
def test_every_pair(current: State, target: State) -> None:
    machine = machine_in(current)
    if (current, target) in ALLOWED:
        assert machine.transition(target) is current
        assert machine.state is target
    else:
        with pytest.raises(InvalidTransition) as info:
            machine.transition(target)
        assert machine.state is current
        assert current.name in str(info.value)


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        (State.PAUSED, State.PAUSED, "Cannot pause from PAUSED state"),
        (State.STOPPING, State.PAUSED, "Cannot pause from STOPPING state"),
        (State.RUNNING, State.RUNNING, "Cannot resume from RUNNING state"),
        (State.STOPPED, State.RUNNING, "Cannot resume from STOPPED state"),
        (State.STOPPED, State.STOPPING, "Cannot stop from STOPPED state"),
    ],
)
def test_refusal_names_both_states(current: State, target: State, message: str) -> None:
    with pytest.raises(InvalidTransition, match=f"^{message}$"):
        machine_in(current).transition(target)
