"""Log set-up: JSON lines for machines, plain text for people.

`auto` (the default) writes JSON lines unless stderr is a terminal. Fields a
record carries in `extra` (a command's channel, reason and requester:
`Command.log_fields`) are kept: as JSON keys, or as `key=value` after the
message in text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pulling_agent.timestamps import precise

#: `extra` keys that log lines may carry, in the order text output shows them.
EXTRA_KEYS = ("channel", "reason", "requested_by")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": precise(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EXTRA_KEYS:
            value = getattr(record, key, "")
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            # str() first: an enum (a ChannelName) shows its value, not its repr.
            f"{key}={str(getattr(record, key))!r}"
            for key in EXTRA_KEYS
            if getattr(record, key, "")
        ]
        return f"{line} ({', '.join(extras)})" if extras else line


def setup_logging(log_format: str = "auto", level: str = "INFO") -> None:
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO.
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The pool warns on every failed reconnect; the worker already reports outages.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
