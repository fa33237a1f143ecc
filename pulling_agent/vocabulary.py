"""The control vocabulary: one table of what pause and resume are called, everywhere.

For each verb: the `Action` of its command, the word that the CLIs and the
control script write to the control file and the ConfigMap's `state` key, the
signal that asks for it, the state an agent reports once it is done (line 1
of the liveness file), and the words the CLIs print while and after doing it.
The CLIs, the signal channel and the word parser read `VERBS`;
`control/control-agent.sh` spells the same table in bash, and
`tests/unit/test_vocabulary.py` checks that it agrees.

The words a control file or the ConfigMap's `state` may hold are the verbs'
words plus `running` (what the chart writes, and the operator guide's other
way to resume): `pause`, `resume`, `running`, in any case, surrounding
whitespace ignored. Anything else is a `ControlWordError` whose message names
the problem, and never a state change.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from pulling_agent.commands import Action
from pulling_agent.state import State
from pulling_agent.text import one_line


@dataclass(frozen=True)
class Verb:
    action: Action
    word: str  # written to `state` by `pulling-agent pause|resume`, `ctl` and the script
    signal: signal.Signals
    state: State  # the state an agent reports when it is done
    doing: str  # "Pausing agent..."
    done: str  # "✓ Agent successfully paused"

    @property
    def kill_name(self) -> str:
        """The signal as `kill -USR1` names it."""
        return self.signal.name.removeprefix("SIG")


VERBS: dict[Action, Verb] = {
    Action.PAUSE: Verb(Action.PAUSE, "pause", signal.SIGUSR1, State.PAUSED, "Pausing", "paused"),
    Action.RESUME: Verb(
        Action.RESUME, "resume", signal.SIGUSR2, State.RUNNING, "Resuming", "resumed"
    ),
}

#: Every word `state` may hold, and the action it asks for.
WORDS: dict[str, Action] = {verb.word: action for action, verb in VERBS.items()} | {
    State.RUNNING.value: Action.RESUME
}

#: The control directory's files, which are also the ConfigMap's keys.
STATE_KEY = "state"
REASON_KEY = "reason"
REQUESTED_BY_KEY = "requested-by"
REQUESTED_AT_KEY = "requested-at"
META_KEYS = (REASON_KEY, REQUESTED_BY_KEY, REQUESTED_AT_KEY)

#: Larger content is refused unread: no real control word is this long.
MAX_CONTROL_BYTES = 4096


class ControlWordError(ValueError):
    """Content that is not a control word; the message names what is wrong."""


def parse_control_text(text: str) -> Action:
    """Turn the text of a control file (or ConfigMap value) into an action."""
    word = text.strip().lower()
    if not word:
        raise ControlWordError("control state is empty")
    try:
        return WORDS[word]
    except KeyError:
        expected = ", ".join(WORDS)
        raise ControlWordError(
            f"unknown control state {one_line(word, 40)!r} (expected one of: {expected})"
        ) from None


def parse_control_bytes(data: bytes) -> Action:
    """Like `parse_control_text`, for raw file content (size and encoding checked)."""
    if len(data) > MAX_CONTROL_BYTES:
        raise ControlWordError(
            f"control state is too large ({len(data)} bytes, at most {MAX_CONTROL_BYTES})"
        )
    if b"\x00" in data:
        raise ControlWordError("control state is binary (contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlWordError("control state is not valid UTF-8 text") from None
    return parse_control_text(text)
