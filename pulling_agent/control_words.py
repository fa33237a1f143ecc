"""The words of the control file and the ConfigMap's `state` key.

`pause`, `resume` and `running` (any case, surrounding whitespace ignored) are
the whole vocabulary; `resume` and `running` mean the same. Anything else is a
`ControlWordError` whose message names the problem, and never a state change.
"""

from __future__ import annotations

from pulling_agent.commands import Action

#: Larger content is refused unread: no real control word is this long.
MAX_CONTROL_BYTES = 4096

WORDS: dict[str, Action] = {
    "pause": Action.PAUSE,
    "paused": Action.PAUSE,
    "resume": Action.RESUME,
    "running": Action.RESUME,
}

#: The words operators are told about, in error messages.
DOCUMENTED_WORDS = ("pause", "resume", "running")


def one_line(text: str) -> str:
    """Free text of a control request (reason, requester) as every channel,
    the health files and the CLIs hold it: whitespace folded to single spaces."""
    return " ".join(text.split())


class ControlWordError(ValueError):
    """Content that is not a control word; the message names what is wrong."""


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_control_text(text: str) -> Action:
    """Turn the text of a control file (or ConfigMap value) into an action."""
    word = text.strip().lower()
    if not word:
        raise ControlWordError("control state is empty")
    try:
        return WORDS[word]
    except KeyError:
        expected = ", ".join(DOCUMENTED_WORDS)
        raise ControlWordError(
            f"unknown control state {_shorten(word)!r} (expected one of: {expected})"
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
