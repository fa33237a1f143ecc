"""Demo documents for `pulling-agent seed`: small, realistic, deterministic.

Each document is a JSON object with `title`, `author`, `body` (a few
sentences), `tags` and `index`. The same `seed` and index always give the same
document, so a test or a benchmark can be repeated exactly.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

_FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "Leslie",
)
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Lamport",
)
_SUBJECTS = (
    "The nightly import",
    "Our billing queue",
    "The search indexer",
    "A retry storm",
    "The archive job",
    "Invoice reconciliation",
    "The thumbnail worker",
    "Customer onboarding",
    "The audit trail",
    "A schema migration",
)
_VERBS = (
    "slowed down after",
    "recovered quickly from",
    "was paused during",
    "kept running through",
    "doubled its throughput after",
    "needed a restart after",
    "was rescheduled for",
    "logged warnings during",
)
_EVENTS = (
    "the database failover",
    "the maintenance window",
    "the holiday peak",
    "a node drain",
    "the certificate rotation",
    "a network partition",
    "the quarterly close",
    "the storage upgrade",
)
_DETAILS = (
    "Operators paused it with the control file and resumed it an hour later.",
    "No document was lost and none was processed twice.",
    "The backlog peaked at a few thousand documents before draining.",
    "Leases expired on the killed replica and its documents returned to the queue.",
    "A poison document was parked as failed after three attempts.",
    "The on-call engineer confirmed the liveness file kept updating.",
    "Metrics showed the batch duration returning to normal within minutes.",
    "The team added an alert for agents paused longer than expected.",
)
_TAGS = ("ops", "queue", "incident", "maintenance", "billing", "search", "storage", "security")


def demo_document(index: int, seed: int = 0) -> str:
    """The demo document number `index` (JSON text) for `seed`."""
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - demo text, not secrets
    subject = rng.choice(_SUBJECTS)
    event = rng.choice(_EVENTS)
    sentences = [f"{subject} {rng.choice(_VERBS)} {event}."]
    sentences += rng.sample(_DETAILS, k=rng.randint(2, 4))
    document = {
        "index": index,
        "title": f"{subject} and {event}",
        "author": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "body": " ".join(sentences),
        "tags": sorted(rng.sample(_TAGS, k=rng.randint(1, 3))),
    }
    return json.dumps(document, sort_keys=True)


def demo_documents(count: int, seed: int = 0, start: int = 0) -> Iterator[str]:
    """`count` demo documents, numbered from `start`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    for index in range(start, start + count):
        yield demo_document(index, seed)
