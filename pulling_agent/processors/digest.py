"""The default processor: a digest and counts of each document.

It does real, cheap work on every document, the demo documents included:

- the payload is parsed as JSON; a payload that is not JSON is plain text;
- the text measured is a JSON object's `body` (a string), a JSON string
  itself, or else the whole payload;
- the result (stored with the ack) is a JSON object:
  `{"sha256": ..., "format": "json"|"text", "title": ..., "words": n,
  "lines": n, "characters": n}` (`title` only when the document has one).

Invalid documents raise `ProcessingError`, so they are retried and then parked
as `failed` with the message kept:

- a JSON object with `"poison": true` (a deliberately bad document for tests
  and drills);
- a JSON object whose `body` or `title` is present but not a string.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pulling_agent.processors.base import ProcessingError, Processor
from pulling_agent.sources.base import Document


def _parse(payload: str) -> tuple[str, Any]:
    """("json", value) when the payload is JSON, else ("text", None)."""
    try:
        return "json", json.loads(payload)
    except ValueError:  # JSONDecodeError, and numbers too large to convert
        return "text", None


def digest(payload: str) -> dict[str, Any]:
    """The result for one payload; raises ProcessingError for an invalid one."""
    kind, value = _parse(payload)
    title: str | None = None
    text = payload
    if isinstance(value, dict):
        if value.get("poison") is True:
            raise ProcessingError("poison document: the payload asks to be rejected")
        body = value.get("body", payload)
        if not isinstance(body, str):
            raise ProcessingError(f"field 'body' must be a string, not {type(body).__name__}")
        raw_title = value.get("title")
        if raw_title is not None and not isinstance(raw_title, str):
            raise ProcessingError(f"field 'title' must be a string, not {type(raw_title).__name__}")
        text, title = body, raw_title
    elif isinstance(value, str):
        text = value
    result: dict[str, Any] = {
        "sha256": hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest(),
        "format": kind,
        "words": len(text.split()),
        "lines": len(text.splitlines()),
        "characters": len(text),
    }
    if title is not None:
        result["title"] = title
    return result


class DigestProcessor(Processor):
    """sha256 plus word, line and character counts; see the module docstring."""

    interruptible = True

    def process(self, document: Document) -> str:
        return json.dumps(digest(document.payload), sort_keys=True, separators=(",", ":"))
