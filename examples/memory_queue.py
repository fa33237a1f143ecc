"""An in-memory queue for pulling-agent: one process, gone at exit (demos, tests).

A complete third-party source: register it by URL scheme in your package's
pyproject.toml,

    [project.entry-points."pulling_agent.sources"]
    memory = "memory_queue:MemorySource"

and run `pulling-agent run --source memory:// --seed 100`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pulling_agent import Document, DocumentStatus, Outcome, Source


class MemorySource(Source):
    def __init__(self, url: str) -> None:  # memory://
        self._lock = threading.Lock()  # the agent calls from several threads
        self._docs: dict[int, dict[str, Any]] = {}
        self._results: dict[int, str] = {}

    def _mine(self, owner: str, doc_id: int) -> dict[str, Any] | None:
        doc = self._docs.get(doc_id)
        ok = doc is not None and doc["status"] == "in_progress" and doc["owner"] == owner
        return doc if ok else None

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Document]:
        now = time.time()
        with self._lock:
            ids = [
                i
                for i, d in self._docs.items()
                if d["status"] == "pending" or (d["status"] == "in_progress" and d["expires"] < now)
            ][:limit]
            for i in ids:
                self._docs[i].update(status="in_progress", owner=owner, expires=now + lease_seconds)
            return [Document(i, self._docs[i]["payload"], self._docs[i]["attempts"]) for i in ids]

    def ack(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        with self._lock:
            acked = [o for o in outcomes if self._mine(owner, o.document_id)]
            for o in acked:
                self._docs[o.document_id]["status"] = "done"
                self._results[o.document_id] = o.result
            return len(acked)

    def fail(self, owner: str, document_id: int, error: str, max_attempts: int) -> bool:
        with self._lock:
            doc = self._mine(owner, document_id)
            if doc is None:
                return False
            doc["attempts"] += 1
            doc["error"] = error
            doc["status"] = "failed" if doc["attempts"] >= max_attempts else "pending"
            return bool(doc["status"] == "failed")

    def release(self, owner: str, document_ids: Sequence[int]) -> int:
        with self._lock:
            docs = [d for i in set(document_ids) if (d := self._mine(owner, i))]
            for doc in docs:
                doc["status"] = "pending"
            return len(docs)

    def backlog(self) -> int:
        now = time.time()
        with self._lock:
            return sum(
                d["status"] == "pending" or (d["status"] == "in_progress" and d["expires"] < now)
                for d in self._docs.values()
            )

    def counts(self) -> dict[DocumentStatus, int]:
        with self._lock:
            counts = dict.fromkeys(DocumentStatus, 0)
            for doc in self._docs.values():
                counts[DocumentStatus(doc["status"])] += 1
            return counts

    def add(self, payloads: Iterable[str]) -> int:
        with self._lock:
            start = len(self._docs) + 1
            for n, payload in enumerate(payloads, start):
                self._docs[n] = {
                    "payload": payload,
                    "status": "pending",
                    "owner": None,
                    "expires": 0.0,
                    "attempts": 0,
                    "error": None,
                }
            return len(self._docs) - start + 1

    def describe(self) -> str:
        return "memory://"
