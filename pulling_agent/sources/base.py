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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
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


class SourceError(Exception):
    """The source cannot be reached or used; the message names why."""


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

    @abstractmethod
    def backlog(self) -> int:
        """Documents waiting to be processed (pending, or leased but expired)."""

    @abstractmethod
    def counts(self) -> dict[DocumentStatus, int]:
        """Documents by status; every status is present, zero included."""

    @abstractmethod
    def add(self, payloads: Iterable[str]) -> int:
        """Enqueue new documents; returns how many were added."""

    @abstractmethod
    def describe(self) -> str:
        """A short, password-free description for logs (`sqlite:///x.db`)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call more than once."""
