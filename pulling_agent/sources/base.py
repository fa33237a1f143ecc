"""The `Source` contract: a queue of documents claimed under a lease.

A source hands out documents in batches. A claimed document belongs to its
claimant (the *owner*) until the lease expires; an expired lease returns the
document to the queue, so an agent killed mid-batch loses nothing. Only the
owner can acknowledge, fail or release a document: once another agent has
claimed it after the lease expired, the old owner's calls are refused, which
is what keeps results exactly-once. (Until someone else claims it, the old
owner's late call is still the only one and the built-in sources accept it.)

Every implementation must be safe to call from several threads of one
process (the agent's worker thread acks while its main thread may release on
an immediate stop).

The agent ends each batch with one `settle` call: the acks with their
results, the failed attempts and the release of the untouched rest, all at
once. The default implementation calls `ack`, `fail` and `release`; the
built-in sources override it to do it in one statement (PostgreSQL) or one
transaction (SQLite). Failed attempts are therefore recorded when the batch
ends, not when each document fails: an agent killed in the middle of a batch
loses the record of that batch's failed attempts (the documents themselves
come back when their lease expires, as the rest of the batch does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit


class DocumentStatus(StrEnum):
    """Where a document is in its life. `stats` reports these four keys."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Document:
    """One claimed document. `attempts` counts earlier failed attempts."""

    id: int
    payload: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of processing one document, stored with its ack."""

    document_id: int
    result: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt at one document, with its error text."""

    document_id: int
    error: str


@dataclass(frozen=True, slots=True)
class NextClaim:
    """The claim that `Source.settle` makes once the batch is settled."""

    limit: int
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class Settled:
    """What `Source.settle` did with the end of a batch, and the next batch."""

    acked: int = 0
    parked: tuple[int, ...] = ()  # failed for good: attempts reached max_attempts
    retried: tuple[int, ...] = ()  # back in the queue for another attempt
    released: int = 0
    claimed: tuple[Document, ...] = ()  # the next batch, when asked for


class SourceError(Exception):
    """The source cannot be reached or used; the message names why.

    `transient` (the default) means that trying again may succeed: a lock,
    a full disk, a server away. A permanent error (not a queue, a schema this
    agent does not know, wrong credentials, no such database) will not go
    away by itself: an agent that meets one at start exits instead of
    retrying for ever.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def redact_url(url: str) -> str:
    """A source URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


class Source(ABC):
    """A durable queue of documents with leases. See the module docstring."""

    @abstractmethod
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Document]:
        """Lease up to `limit` pending (or lease-expired) documents to `owner`."""

    @abstractmethod
    def ack(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        """Mark documents done and store their results, in one transaction.

        Only documents still leased to `owner` are acknowledged; returns how many.
        """

    @abstractmethod
    def fail(self, owner: str, document_id: int, error: str, max_attempts: int) -> bool:
        """Record a failed attempt. Returns True when the document is parked as
        `failed` (attempts reached `max_attempts`), False when it returns to the
        queue for another try (or the lease was no longer `owner`'s)."""

    @abstractmethod
    def release(self, owner: str, document_ids: Sequence[int]) -> int:
        """Return untouched documents to the queue without counting an attempt."""

    def settle(
        self,
        owner: str,
        outcomes: Sequence[Outcome],
        failures: Sequence[Failure],
        release: Sequence[int],
        max_attempts: int,
        then_claim: NextClaim | None = None,
    ) -> Settled:
        """End a batch: `ack(outcomes)`, `fail` each of `failures`, `release`;
        then, if asked, `claim` the next batch.

        The same ownership rules as those calls: documents no longer
        `owner`'s are left alone (the default `_settle` counts such a failure
        as retried, since `fail` cannot tell; the built-in sources count it in
        neither). The ids should not overlap; where they do, an outcome wins
        over a failure and a failure over a release. Safe to call again after
        a `SourceError`: what the first call did is not done twice (a claim
        whose answer was lost returns to the queue when its lease expires).
        A source that can do it all at once overrides `_settle`.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if then_claim is not None:
            check_claim_args(then_claim.limit, then_claim.lease_seconds)
            if then_claim.limit == 0:
                then_claim = None
        end = disjoint(outcomes, failures, release)
        if not any(end) and then_claim is None:
            return Settled()
        return self._settle(owner, end, max_attempts, then_claim)

    def _settle(
        self, owner: str, end: BatchEnd, max_attempts: int, then_claim: NextClaim | None
    ) -> Settled:
        """`settle` with one entry per document, a checked `max_attempts` and
        a claim of at least one document if any: here through `ack`, `fail`,
        `release` and `claim`."""
        acked = self.ack(owner, end.outcomes) if end.outcomes else 0
        parked: list[int] = []
        retried: list[int] = []
        for failure in end.failures:
            parks = self.fail(owner, failure.document_id, failure.error, max_attempts)
            (parked if parks else retried).append(failure.document_id)
        released = self.release(owner, end.release) if end.release else 0
        claimed: tuple[Document, ...] = ()
        if then_claim is not None:
            claimed = tuple(self.claim(owner, then_claim.limit, then_claim.lease_seconds))
        return Settled(acked, tuple(parked), tuple(retried), released, claimed)

    @abstractmethod
    def backlog(self) -> int:
        """Documents waiting to be processed (pending, or leased but expired)."""

    @abstractmethod
    def counts(self) -> dict[DocumentStatus, int]:
        """Documents by status; every status is present, zero included."""

    @abstractmethod
    def add(self, payloads: Iterable[str]) -> int:
        """Enqueue new documents; returns how many were added."""

    def add_if_idle(self, payloads: Iterable[str]) -> int:
        """Enqueue `payloads` only if no document is pending or in progress;
        returns how many were added (0: there was work already).

        The built-in sources check and add in one transaction, so that agents
        starting together with `--seed` on a new queue add the documents
        once; this default, for other sources, checks then adds.
        """
        counts = self.counts()
        if counts[DocumentStatus.PENDING] or counts[DocumentStatus.IN_PROGRESS]:
            return 0
        return self.add(payloads)

    @abstractmethod
    def describe(self) -> str:
        """A short, password-free description for logs (`sqlite:///x.db`)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call more than once."""


def check_claim_args(limit: int, lease_seconds: float) -> None:
    """Refuse a claim that could not mean anything (a caller's bug)."""
    if limit < 0:
        raise ValueError(f"claim limit must be >= 0, got {limit}")
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be > 0, got {lease_seconds}")


class BatchEnd(NamedTuple):
    """The end of a batch with one entry per document (see `disjoint`)."""

    outcomes: list[Outcome]
    failures: list[Failure]
    release: list[int]


def disjoint(
    outcomes: Sequence[Outcome], failures: Sequence[Failure], release: Sequence[int]
) -> BatchEnd:
    """One entry per document: the last outcome, else the last failure, else
    a release (see `Source.settle`)."""
    results = {outcome.document_id: outcome for outcome in outcomes}
    failed = {f.document_id: f for f in failures if f.document_id not in results}
    rest = sorted({i for i in release if i not in results and i not in failed})
    return BatchEnd(list(results.values()), list(failed.values()), rest)
