"""What the built-in sources share: limits and small helpers.

(The error text a failed document keeps is cut by `pulling_agent.text.clip_error`,
which the worker uses too.)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from pulling_agent.sources.base import (
    BatchEnd,
    Document,
    DocumentStatus,
    Failure,
    NextClaim,
    Outcome,
    Settled,
    Source,
    SourceError,
)

T = TypeVar("T")

# How many ids one statement carries. SQLite allows 32766 variables since 3.32;
# a smaller chunk keeps each statement's plan cheap on either backend.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def full_counts(rows: Iterable[tuple[str, int]]) -> dict[DocumentStatus, int]:
    """Counts by status with every status present (zero included)."""
    counts = dict.fromkeys(DocumentStatus, 0)
    for status, count in rows:
        try:
            counts[DocumentStatus(status)] = int(count)
        except ValueError as exc:
            raise SourceError(f"unknown document status {status!r} in the queue") from exc
    return counts


def documents(rows: list[Any]) -> list[Document]:
    """Claimed rows (id, payload, attempts) as documents, in id order (an
    UPDATE ... RETURNING has no order)."""
    rows.sort()  # by id, which is unique: the rest of a row is never compared
    return [Document(*row) for row in rows]


class SettlingSource(Source):
    """A source whose one call at the end of a batch does the work.

    `ack`, `fail` and `release` are `settle` with one part; a subclass
    implements `_settle`, which gets the batch's end with one entry per
    document (at least one) and a checked `max_attempts`.
    """

    def ack(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        return self.settle(owner, outcomes, (), (), 1).acked

    def fail(self, owner: str, document_id: int, error: str, max_attempts: int) -> bool:
        settled = self.settle(owner, (), (Failure(document_id, error),), (), max_attempts)
        return bool(settled.parked)

    def release(self, owner: str, document_ids: Sequence[int]) -> int:
        return self.settle(owner, (), (), document_ids, 1).released

    @abstractmethod
    def _settle(
        self, owner: str, end: BatchEnd, max_attempts: int, then_claim: NextClaim | None
    ) -> Settled:
        """The whole end of a batch and the next claim at once (see `Source._settle`)."""
