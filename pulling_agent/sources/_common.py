"""What the built-in sources share: limits and small helpers.

(The error text a failed document keeps is cut by `pulling_agent.text.clip_error`,
which the worker uses too.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from pulling_agent.sources.base import DocumentStatus, SourceError

T = TypeVar("T")

# How many ids one statement carries. SQLite allows 32766 variables since 3.32;
# a smaller chunk keeps each statement's plan cheap on either backend.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_claim_args(limit: int, lease_seconds: float) -> None:
    """Refuse a claim that could not mean anything (a caller's bug)."""
    if limit < 0:
        raise ValueError(f"claim limit must be >= 0, got {limit}")
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be > 0, got {lease_seconds}")


def check_max_attempts(max_attempts: int) -> None:
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")


def full_counts(rows: Iterable[tuple[str, int]]) -> dict[DocumentStatus, int]:
    """Counts by status with every status present (zero included)."""
    counts = dict.fromkeys(DocumentStatus, 0)
    for status, count in rows:
        try:
            counts[DocumentStatus(status)] = int(count)
        except ValueError as exc:
            raise SourceError(f"unknown document status {status!r} in the queue") from exc
    return counts
