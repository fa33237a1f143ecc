"""The control vocabulary: the one table, the shell script's copy of it, and
parsing control file content (the words, and everything that is not one)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pulling_agent import defaults
from pulling_agent.cli import exits
from pulling_agent.cli.options import WAIT_TIMEOUT
from pulling_agent.commands import Action
from pulling_agent.health import LIVENESS
from pulling_agent.replica_status import STATUS_SUFFIX
from pulling_agent.vocabulary import (
    MAX_CONTROL_BYTES,
    VERBS,
    WORDS,
    ControlWordError,
    parse_control_bytes,
    parse_control_text,
)

SCRIPT = Path(__file__).resolve().parents[2] / "control" / "control-agent.sh"
BEGIN, END = "# BEGIN control vocabulary", "# END control vocabulary"


def script_table() -> dict[str, str]:
    """The script's vocabulary block, evaluated by bash: {"WORD[pause]": "pause", ...}."""
    text = SCRIPT.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "vocabulary markers"
    block = text[text.index(BEGIN) : text.index(END)]
    dump = """
for name in WORD SIGNAL EXPECTED DOING DONE; do
    declare -n table=$name
    for key in "${!table[@]}"; do printf '%s[%s]=%s\\n' "$name" "$key" "${table[$key]}"; done
done
printf 'DEFAULT_CONFIGMAP=%s\\nLIVENESS_FILE=%s\\n' "$DEFAULT_CONFIGMAP" "$LIVENESS_FILE"
printf 'STATUS_SUFFIX=%s\\nDEFAULT_TIMEOUT=%s\\n' "$STATUS_SUFFIX" "$DEFAULT_TIMEOUT"
printf 'EXIT_FAILURE=%s\\nEXIT_USAGE=%s\\n' "$EXIT_FAILURE" "$EXIT_USAGE"
printf 'EXIT_UNVERIFIED=%s\\n' "$EXIT_UNVERIFIED"
"""
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block + dump],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def test_the_control_script_speaks_the_packages_vocabulary() -> None:
    expected = {
        "DEFAULT_CONFIGMAP": defaults.CONFIGMAP,
        "LIVENESS_FILE": str(defaults.HEALTH_DIR / LIVENESS),
        "STATUS_SUFFIX": STATUS_SUFFIX,
        "DEFAULT_TIMEOUT": f"{WAIT_TIMEOUT:g}",
        "EXIT_FAILURE": str(exits.FAILURE),
        "EXIT_USAGE": str(exits.USAGE),
        "EXIT_UNVERIFIED": str(exits.UNVERIFIED),
    }
    for verb in VERBS.values():
        command = verb.word  # the script's command is the verb's word
        expected |= {
            f"WORD[{command}]": verb.word,
            f"SIGNAL[{command}]": verb.kill_name,
            f"EXPECTED[{command}]": verb.state.value,
            f"DOING[{command}]": verb.doing,
            f"DONE[{command}]": verb.done,
        }
    assert script_table() == expected


def test_every_verb_word_is_a_control_word_for_its_action() -> None:
    for action, verb in VERBS.items():
        assert verb.action is action
        assert parse_control_text(verb.word) is action
    assert set(WORDS) == {"pause", "resume", "running"}


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


def test_the_state_names_are_not_control_words() -> None:
    """`paused` is a state an agent reports, not a word to write (only
    `running`, the chart's default, doubles as one)."""
    with pytest.raises(
        ControlWordError,
        match=r"unknown control state 'paused' \(expected one of: pause, resume, running\)",
    ):
        parse_control_text("paused")
