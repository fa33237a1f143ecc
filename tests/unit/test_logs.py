"""The two log formats: a command's channel, reason and requester after the message."""

from __future__ import annotations

import json
import logging

from pulling_agent.commands import Action, ChannelName, Command
from pulling_agent.logs import JsonFormatter, TextFormatter


def record_for(command: Command, extra: dict[str, object] | None = None) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "Pausing agent", None, None)
    for key, value in (extra or command.log_fields()).items():
        setattr(record, key, value)
    return record


def test_text_shows_the_channel_by_its_value() -> None:
    command = Command(Action.PAUSE, channel=ChannelName.SIGNAL, reason="SIGUSR1")
    line = TextFormatter().format(record_for(command))
    assert line.endswith("Pausing agent (channel='signal', reason='SIGUSR1')"), line
    # Even an enum passed in `extra` by hand prints as its value.
    line = TextFormatter().format(record_for(command, {"channel": ChannelName.FILE}))
    assert line.endswith("(channel='file')"), line


def test_json_keeps_the_fields_as_keys() -> None:
    command = Command(Action.PAUSE, channel=ChannelName.CONFIGMAP, requested_by="alice")
    entry = json.loads(JsonFormatter().format(record_for(command)))
    assert (entry["channel"], entry["requested_by"]) == ("configmap", "alice")
    assert "reason" not in entry  # empty fields are left out
