"""Free text as the agent keeps and shows it: on one line, and bounded.

Reasons, requesters, error messages from libraries and servers all arrive
with newlines and runs of spaces; the liveness file, log lines, metric
labels and one-line error messages need them folded. Every module folds
with `one_line` and cuts with `clip`, so they all agree.
"""

from __future__ import annotations

#: Longest error text kept with a failed document (the worker reports it, a
#: source stores it): enough for a traceback's last lines, small enough that a
#: poison document cannot bloat the queue.
MAX_ERROR_CHARS = 4000

_ELLIPSIS = "..."
_TRUNCATED = " ...[truncated]"


def clip(text: str, limit: int, marker: str = _ELLIPSIS) -> str:
    """`text` cut to at most `limit` characters, ending with `marker` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(marker), 0)] + marker


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with every run of whitespace (newlines included) folded to one
    space and the ends trimmed; cut to `limit` characters when given."""
    folded = " ".join(text.split())
    return folded if limit is None else clip(folded, limit)


def clip_error(error: str) -> str:
    """Error text as a failed document keeps it: at most `MAX_ERROR_CHARS`."""
    return clip(error, MAX_ERROR_CHARS, _TRUNCATED)
