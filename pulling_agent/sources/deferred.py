"""A source whose server was unreachable at start: built on first use.

An agent that starts while its database is down must not crash-loop: it
starts, reports the outage (readiness off, `error=` in the liveness file),
and keeps trying. This wrapper retries building the real source on each call
until it succeeds, raising `SourceError` meanwhile, which the worker retries
with back-off like any other outage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from pulling_agent.sources.base import Document, DocumentStatus, Outcome, Source


class DeferredSource(Source):
    def __init__(self, factory: Callable[[], Source], description: str) -> None:
        self._factory = factory
        self._description = description
        self._lock = threading.Lock()
        self._source: Source | None = None

    def _get(self) -> Source:
        with self._lock:
            if self._source is None:
                self._source = self._factory()  # raises SourceError while down
            return self._source

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Document]:
        return self._get().claim(owner, limit, lease_seconds)

    def ack(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        return self._get().ack(owner, outcomes)

    def fail(self, owner: str, document_id: int, error: str, max_attempts: int) -> bool:
        return self._get().fail(owner, document_id, error, max_attempts)

    def release(self, owner: str, document_ids: Sequence[int]) -> int:
        return self._get().release(owner, document_ids)

    def backlog(self) -> int:
        return self._get().backlog()

    def counts(self) -> dict[DocumentStatus, int]:
        return self._get().counts()

    def add(self, payloads: Iterable[str]) -> int:
        return self._get().add(payloads)

    def add_if_idle(self, payloads: Iterable[str]) -> int:
        return self._get().add_if_idle(payloads)

    def describe(self) -> str:
        return self._source.describe() if self._source else self._description

    def close(self) -> None:
        with self._lock:
            if self._source is not None:
                self._source.close()
