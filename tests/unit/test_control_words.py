"""Parsing control file content: the words, and everything that is not one."""

from __future__ import annotations

import pytest

from pulling_agent.commands import Action
from pulling_agent.control_words import (
    MAX_CONTROL_BYTES,
    ControlWordError,
    parse_control_bytes,
    parse_control_text,
)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("pause", Action.PAUSE),
        ("PAUSE\n", Action.PAUSE),
        ("  Pause \t\r\n", Action.PAUSE),
        ("resume", Action.RESUME),
        ("Running\n", Action.RESUME),
        ("RUNNING", Action.RESUME),
    ],
)
def test_words(text: str, action: Action) -> None:
    assert parse_control_text(text) is action
    assert parse_control_bytes(text.encode()) is action


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"   \n\t", "empty"),
        (b"stop", "unknown control state 'stop'"),
        (b"pause please", "unknown control state 'pause please'"),
        (b"pau\x00se", "binary"),
        (b"\xff\xfe\x00p", "binary"),
        (b"\xc3\x28", "not valid UTF-8"),
        (b"p" * (MAX_CONTROL_BYTES + 1), "too large"),
        (b"x" * 10_000_000, "too large"),
    ],
)
def test_garbage_is_refused_with_a_named_problem(data: bytes, problem: str) -> None:
    with pytest.raises(ControlWordError, match=problem):
        parse_control_bytes(data)


def test_long_unknown_word_is_shortened_in_message() -> None:
    with pytest.raises(ControlWordError) as info:
        parse_control_text("z" * 500)
    assert len(str(info.value)) < 120
