"""The `Source` contract, run against every built-in source.

The same tests run against SQLite (a file in tmp_path) and PostgreSQL (a new
database on the real server that the fixture starts): claim under a lease,
lease expiry, ownership of ack/fail/release, retries then `failed`, counts
and backlog, and concurrent claimers from threads and from processes that
never claim a document twice. Sources are built through the entry points
(`load_source`), the way the agent builds them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pulling_agent.plugins import load_source
from pulling_agent.sources.base import (
    Document,
    DocumentStatus,
    Failure,
    NextClaim,
    Outcome,
    Settled,
    Source,
)

SHORT_LEASE = 0.2  # seconds; tests wait for it to pass, they never time it
LONG_LEASE = 300.0


class Backend:
    """A queue URL plus a side door to read its tables as they are."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def open(self) -> Source:
        return load_source(self.url)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def results(self) -> dict[int, tuple[str, str]]:
        """document id -> (result, owner) for every stored result."""
        rows = self.query(f"SELECT document_id, result, owner FROM {self.prefix}results")
        return {int(doc): (result, owner) for doc, result, owner in rows}

    def result_rows(self) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.prefix}results")[0][0])

    def document(self, doc_id: int) -> dict[str, Any]:
        rows = self.query(
            f"SELECT status, owner, attempts, last_error FROM {self.prefix}documents "
            f"WHERE id = {self.mark}",
            doc_id,
        )
        status, owner, attempts, last_error = rows[0]
        return {"status": status, "owner": owner, "attempts": attempts, "last_error": last_error}

    prefix = ""
    mark = "?"


class SQLiteBackend(Backend):
    name = "sqlite"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        path = self.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            return list(conn.execute(sql, params).fetchall())


class PostgresBackend(Backend):
    name = "postgres"
    prefix = "pulling_agent."
    mark = "%s"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            return list(conn.execute(sql, params).fetchall())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SQLiteBackend(f"sqlite:///{tmp_path / 'queue.db'}")
    return PostgresBackend(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def source(backend: Backend) -> Iterator[Source]:
    src = backend.open()
    yield src
    src.close()


def seed(source: Source, count: int) -> list[int]:
    """Add `count` documents `doc-N`; returns their ids (claimed and released)."""
    assert source.add(f"doc-{n}" for n in range(count)) == count
    docs = source.claim("seeder", count, LONG_LEASE)
    assert source.release("seeder", [d.id for d in docs]) == count
    return [d.id for d in docs]


def wait_until(predicate: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll `predicate` until it holds; fail after a generous `limit`."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {limit} s for {what}")
        time.sleep(0.02)


def expire(source: Source, backlog: int) -> None:
    """Wait until leases have expired, so the backlog counts `backlog` documents."""
    time.sleep(SHORT_LEASE)
    wait_until(lambda: source.backlog() >= backlog, f"backlog {backlog}")


def outcomes(docs: list[Document], text: str = "ok") -> list[Outcome]:
    return [Outcome(d.id, f"{text}:{d.id}") for d in docs]


def counts(source: Source) -> dict[str, int]:
    return {str(status): n for status, n in source.counts().items()}


# --------------------------------------------------------------------- basics


def test_empty_queue_has_every_status_at_zero(source: Source) -> None:
    assert source.counts() == dict.fromkeys(DocumentStatus, 0)
    assert source.backlog() == 0
    assert source.claim("a", 10, LONG_LEASE) == []


def test_add_makes_pending_documents(source: Source) -> None:
    assert source.add(["one", "two", "trois é ✓"]) == 3
    assert source.add([]) == 0
    assert counts(source) == {"pending": 3, "in_progress": 0, "done": 0, "failed": 0}
    assert source.backlog() == 3
    docs = source.claim("a", 10, LONG_LEASE)
    assert [d.payload for d in docs] == ["one", "two", "trois é ✓"]
    assert [d.attempts for d in docs] == [0, 0, 0]


def test_claim_takes_up_to_limit_in_id_order(source: Source) -> None:
    ids = seed(source, 5)
    first = source.claim("a", 3, LONG_LEASE)
    assert [d.id for d in first] == ids[:3]
    assert counts(source) == {"pending": 2, "in_progress": 3, "done": 0, "failed": 0}
    assert source.backlog() == 2
    second = source.claim("b", 10, LONG_LEASE)
    assert [d.id for d in second] == ids[3:]
    assert source.claim("c", 10, LONG_LEASE) == []
    assert source.claim("c", 0, LONG_LEASE) == []
    assert source.backlog() == 0


def test_claim_refuses_nonsense_arguments(source: Source) -> None:
    with pytest.raises(ValueError, match="limit"):
        source.claim("a", -1, LONG_LEASE)
    with pytest.raises(ValueError, match="lease"):
        source.claim("a", 1, 0)


def test_describe_names_the_queue(backend: Backend, source: Source) -> None:
    assert source.describe().startswith(
        "sqlite:///" if backend.name == "sqlite" else "postgresql://"
    )


# ------------------------------------------------------------------------ ack


def test_ack_marks_done_and_stores_results_with_it(backend: Backend, source: Source) -> None:
    seed(source, 3)
    docs = source.claim("a", 3, LONG_LEASE)
    assert source.ack("a", outcomes(docs)) == 3
    assert counts(source) == {"pending": 0, "in_progress": 0, "done": 3, "failed": 0}
    assert backend.results() == {d.id: (f"ok:{d.id}", "a") for d in docs}
    assert source.ack("a", []) == 0


def test_ack_only_for_the_owner(backend: Backend, source: Source) -> None:
    seed(source, 2)
    docs = source.claim("a", 2, LONG_LEASE)
    assert source.ack("intruder", outcomes(docs)) == 0
    assert counts(source)["in_progress"] == 2
    assert backend.results() == {}
    assert source.ack("a", outcomes(docs[:1])) == 1
    assert backend.results() == {docs[0].id: (f"ok:{docs[0].id}", "a")}


def test_ack_twice_stores_one_result(backend: Backend, source: Source) -> None:
    seed(source, 1)
    docs = source.claim("a", 1, LONG_LEASE)
    assert source.ack("a", outcomes(docs, "first")) == 1
    assert source.ack("a", outcomes(docs, "second")) == 0
    assert backend.results() == {docs[0].id: (f"first:{docs[0].id}", "a")}


def test_ack_of_unclaimed_or_unknown_documents_does_nothing(
    backend: Backend, source: Source
) -> None:
    ids = seed(source, 1)
    assert source.ack("a", [Outcome(ids[0], "x"), Outcome(999_999, "y")]) == 0
    assert backend.results() == {}
    assert counts(source)["pending"] == 1


def test_ack_keeps_one_result_for_a_repeated_id(backend: Backend, source: Source) -> None:
    seed(source, 1)
    (doc,) = source.claim("a", 1, LONG_LEASE)
    assert source.ack("a", [Outcome(doc.id, "x"), Outcome(doc.id, "y")]) == 1
    assert backend.result_rows() == 1


# ----------------------------------------------------------------- lease expiry


def test_expired_lease_counts_as_backlog_and_is_reclaimed(backend: Backend, source: Source) -> None:
    ids = seed(source, 3)
    source.claim("a", 2, SHORT_LEASE)
    expire(source, 3)
    # Still in_progress (it is), but waiting to be processed again.
    assert counts(source) == {"pending": 1, "in_progress": 2, "done": 0, "failed": 0}
    assert source.backlog() == 3
    reclaimed = source.claim("b", 10, LONG_LEASE)
    assert sorted(d.id for d in reclaimed) == ids
    assert all(d.attempts == 0 for d in reclaimed), "an expired lease is not a failed attempt"
    assert {backend.document(i)["owner"] for i in ids} == {"b"}
    assert source.backlog() == 0


def test_old_owner_is_refused_once_another_reclaimed(backend: Backend, source: Source) -> None:
    seed(source, 2)
    old = source.claim("a", 2, SHORT_LEASE)
    expire(source, 2)
    new = source.claim("b", 2, LONG_LEASE)
    assert sorted(d.id for d in new) == sorted(d.id for d in old)
    assert source.ack("a", outcomes(old, "late")) == 0
    assert source.fail("a", old[0].id, "late failure", max_attempts=1) is False
    assert source.release("a", [d.id for d in old]) == 0
    assert backend.document(old[0].id)["attempts"] == 0
    assert counts(source)["in_progress"] == 2
    assert source.ack("b", outcomes(new, "new")) == 2
    assert backend.results() == {d.id: (f"new:{d.id}", "b") for d in new}


def test_late_ack_is_accepted_while_nobody_reclaimed(backend: Backend, source: Source) -> None:
    """The documented rule: expiry makes a document claimable, it does not
    take it away; until another agent claims it, the owner's ack is the only one."""
    seed(source, 1)
    docs = source.claim("a", 1, SHORT_LEASE)
    expire(source, 1)
    assert source.ack("a", outcomes(docs)) == 1
    assert source.claim("b", 1, LONG_LEASE) == []
    assert backend.results() == {docs[0].id: (f"ok:{docs[0].id}", "a")}


# ----------------------------------------------------------- fail and release


def test_fail_retries_then_parks_as_failed_with_the_error(backend: Backend, source: Source) -> None:
    seed(source, 2)
    doc_id = source.claim("a", 1, LONG_LEASE)[0].id
    for attempt in (1, 2):
        assert source.fail("a", doc_id, f"boom {attempt}", max_attempts=3) is False
        row = backend.document(doc_id)
        assert row == {"status": "pending", "owner": None, "attempts": attempt,
                       "last_error": f"boom {attempt}"}  # fmt: skip
        (again,) = source.claim("a", 1, LONG_LEASE)
        assert (again.id, again.attempts) == (doc_id, attempt)
    assert source.fail("a", doc_id, "boom 3", max_attempts=3) is True
    row = backend.document(doc_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 3, "boom 3")
    assert counts(source) == {"pending": 1, "in_progress": 0, "done": 0, "failed": 1}
    # A parked document never comes back; the queue goes on.
    assert [d.id for d in source.claim("a", 10, LONG_LEASE)] != [doc_id]
    assert source.backlog() == 0


def test_fail_with_one_attempt_parks_at_once(backend: Backend, source: Source) -> None:
    seed(source, 1)
    (doc,) = source.claim("a", 1, LONG_LEASE)
    assert source.fail("a", doc.id, "poison", max_attempts=1) is True
    assert backend.document(doc.id)["status"] == "failed"
    with pytest.raises(ValueError, match="max_attempts"):
        source.fail("a", doc.id, "x", max_attempts=0)


def test_fail_keeps_a_bounded_error_text(backend: Backend, source: Source) -> None:
    seed(source, 1)
    (doc,) = source.claim("a", 1, LONG_LEASE)
    assert source.fail("a", doc.id, "x" * 100_000, max_attempts=1) is True
    kept = backend.document(doc.id)["last_error"]
    assert kept.startswith("xxxx") and len(kept) <= 4000


def test_fail_of_someone_elses_document_is_refused(backend: Backend, source: Source) -> None:
    seed(source, 1)
    (doc,) = source.claim("a", 1, LONG_LEASE)
    assert source.fail("b", doc.id, "not mine", max_attempts=1) is False
    assert backend.document(doc.id) == {"status": "in_progress", "owner": "a", "attempts": 0,
                                        "last_error": None}  # fmt: skip


def test_release_returns_documents_untouched(backend: Backend, source: Source) -> None:
    ids = seed(source, 3)
    docs = source.claim("a", 3, LONG_LEASE)
    assert source.release("b", ids) == 0
    assert source.release("a", [docs[1].id, docs[2].id, docs[2].id]) == 2
    assert source.release("a", []) == 0
    assert counts(source) == {"pending": 2, "in_progress": 1, "done": 0, "failed": 0}
    row = backend.document(docs[1].id)
    assert (row["status"], row["owner"], row["attempts"]) == ("pending", None, 0)
    again = source.claim("c", 10, LONG_LEASE)
    assert [(d.id, d.attempts) for d in again] == [(docs[1].id, 0), (docs[2].id, 0)]


def test_done_documents_are_never_released_or_failed(backend: Backend, source: Source) -> None:
    seed(source, 1)
    docs = source.claim("a", 1, LONG_LEASE)
    source.ack("a", outcomes(docs))
    assert source.release("a", [docs[0].id]) == 0
    assert source.fail("a", docs[0].id, "x", max_attempts=1) is False
    assert backend.document(docs[0].id)["status"] == "done"


def test_state_survives_reopening(backend: Backend, source: Source) -> None:
    seed(source, 3)
    docs = source.claim("a", 2, LONG_LEASE)
    source.ack("a", outcomes(docs[:1]))
    source.close()
    source.close()  # safe twice
    reopened = backend.open()
    try:
        assert counts(reopened) == {"pending": 1, "in_progress": 1, "done": 1, "failed": 0}
        assert reopened.ack("a", outcomes(docs[1:])) == 1
    finally:
        reopened.close()


# ------------------------------------------------------------------ settle


def test_settle_ends_a_batch_in_one_call(backend: Backend, source: Source) -> None:
    """Acks with results, failed attempts (retried and parked) and the release
    of the untouched rest, with the same ownership rules as each call alone."""
    seed(source, 6)
    docs = source.claim("a", 6, LONG_LEASE)
    ids = [d.id for d in docs]
    source.fail("a", ids[3], "first", max_attempts=3)
    (again,) = source.claim("a", 1, LONG_LEASE)  # ids[3], one attempt so far
    assert again.id == ids[3]
    settled = source.settle(
        "a",
        outcomes(docs[:2]),
        [Failure(ids[2], "boom"), Failure(ids[3], "boom again")],
        [ids[4], ids[5]],
        max_attempts=2,
    )
    assert settled == Settled(acked=2, parked=(ids[3],), retried=(ids[2],), released=2)
    assert backend.results() == {d.id: (f"ok:{d.id}", "a") for d in docs[:2]}
    assert backend.document(ids[2]) == {"status": "pending", "owner": None, "attempts": 1,
                                        "last_error": "boom"}  # fmt: skip
    assert backend.document(ids[3])["status"] == "failed"
    assert backend.document(ids[3])["attempts"] == 2
    assert [(backend.document(i)["status"], backend.document(i)["attempts"])
            for i in ids[4:]] == [("pending", 0), ("pending", 0)]  # fmt: skip
    assert counts(source) == {"pending": 3, "in_progress": 0, "done": 2, "failed": 1}


def test_settle_twice_does_nothing_twice(backend: Backend, source: Source) -> None:
    """What a worker does after a SourceError: the same settle again."""
    seed(source, 3)
    docs = source.claim("a", 3, LONG_LEASE)
    call = ("a", outcomes(docs[:1]), [Failure(docs[1].id, "x")], [docs[2].id])
    assert source.settle(*call, max_attempts=3) == Settled(1, (), (docs[1].id,), 1)
    assert source.settle(*call, max_attempts=3) == Settled()
    assert backend.result_rows() == 1
    assert backend.document(docs[1].id)["attempts"] == 1


def test_settle_leaves_other_owners_documents_alone(backend: Backend, source: Source) -> None:
    seed(source, 3)
    docs = source.claim("a", 3, LONG_LEASE)
    settled = source.settle(
        "b", outcomes(docs[:1]), [Failure(docs[1].id, "x")], [docs[2].id], max_attempts=1
    )
    assert settled == Settled()
    assert counts(source) == {"pending": 0, "in_progress": 3, "done": 0, "failed": 0}
    assert backend.results() == {}


def test_settle_with_overlapping_ids_keeps_the_outcome(backend: Backend, source: Source) -> None:
    """An outcome wins over a failure, a failure over a release."""
    seed(source, 2)
    docs = source.claim("a", 2, LONG_LEASE)
    settled = source.settle(
        "a",
        outcomes(docs[:1]),
        [Failure(docs[0].id, "x"), Failure(docs[1].id, "y")],
        [docs[0].id, docs[1].id],
        max_attempts=1,
    )
    assert settled == Settled(acked=1, parked=(docs[1].id,))
    assert backend.document(docs[0].id)["status"] == "done"
    assert backend.document(docs[1].id)["status"] == "failed"


def test_settle_of_a_large_batch(backend: Backend, source: Source) -> None:
    """More documents than one statement's chunk (SQLite) in one settle."""
    total = 1200
    seed(source, total)
    docs = source.claim("a", total, LONG_LEASE)
    settled = source.settle("a", outcomes(docs[:1000]), [], [d.id for d in docs[1000:]], 3)
    assert (settled.acked, settled.released) == (1000, 200)
    assert backend.result_rows() == 1000
    assert counts(source) == {"pending": 200, "in_progress": 0, "done": 1000, "failed": 0}


def test_settle_claims_the_next_batch_with_the_end_of_this_one(
    backend: Backend, source: Source
) -> None:
    ids = seed(source, 7)
    docs = source.claim("a", 3, LONG_LEASE)
    settled = source.settle("a", outcomes(docs), [], [], 3, NextClaim(3, LONG_LEASE))
    assert settled.acked == 3
    assert [(d.id, d.payload, d.attempts) for d in settled.claimed] == [
        (i, f"doc-{n}", 0) for n, i in enumerate(ids[3:6], start=3)
    ]
    assert {backend.document(i)["owner"] for i in ids[3:6]} == {"a"}
    assert counts(source) == {"pending": 1, "in_progress": 3, "done": 3, "failed": 0}
    # Only a claim (nothing to settle), then the queue runs dry.
    assert [d.id for d in source.settle("a", [], [], [], 3, NextClaim(5, 60)).claimed] == ids[6:]
    assert source.settle("a", outcomes(settled.claimed), [], [], 3, NextClaim(5, 60)) == Settled(3)
    assert source.settle("a", [], [], [], 3, NextClaim(0, 60)) == Settled()
    with pytest.raises(ValueError, match="lease"):
        source.settle("a", [], [], [], 3, NextClaim(1, 0))


def test_settle_claims_a_large_next_batch(backend: Backend, source: Source) -> None:
    """Above PostgreSQL's one-statement size (two statements in a pipeline)."""
    ids = seed(source, 100)
    docs = source.claim("a", 40, LONG_LEASE)
    settled = source.settle("a", outcomes(docs), [], [], 3, NextClaim(40, LONG_LEASE))
    assert settled.acked == 40
    assert [d.id for d in settled.claimed] == ids[40:80]
    settled = source.settle(
        "a", outcomes(settled.claimed[:39]), [Failure(ids[79], "x")], [], 3, NextClaim(40, 60)
    )
    assert (settled.acked, settled.retried) == (39, (ids[79],))
    # The retried document is pending again: claimed at once or later, as
    # the source's snapshot rules have it; here by this claim or the next.
    rest = [d.id for d in settled.claimed]
    rest += [d.id for d in source.claim("a", 40, 60)]
    assert sorted(rest) == ids[79:]
    assert backend.result_rows() == 79


# ------------------------------------------------------------------ concurrency


def _drain(source: Source, owner: str, batch: int, acked: list[int]) -> None:
    while docs := source.claim(owner, batch, LONG_LEASE):
        assert source.ack(owner, [Outcome(d.id, owner) for d in docs]) == len(docs)
        acked.extend(d.id for d in docs)


def _check_exactly_once(backend: Backend, per_owner: dict[str, list[int]], total: int) -> None:
    everything = [doc for ids in per_owner.values() for doc in ids]
    assert len(everything) == total, "a document was claimed twice or not at all"
    assert len(set(everything)) == total
    results = backend.results()
    assert len(results) == total == backend.result_rows()
    for owner, ids in per_owner.items():
        assert all(results[doc] == (owner, owner) for doc in ids)


def test_threads_sharing_one_source_never_double_claim(backend: Backend, source: Source) -> None:
    total = 600
    seed(source, total)
    per_owner: dict[str, list[int]] = {f"thread-{n}": [] for n in range(4)}
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        try:
            _drain(source, owner, 7, per_owner[owner])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(owner,)) for owner in per_owner]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    _check_exactly_once(backend, per_owner, total)
    assert counts(source) == {"pending": 0, "in_progress": 0, "done": total, "failed": 0}


_CLAIMER = """
import json, pathlib, sys, time
from pulling_agent.plugins import load_source
from pulling_agent.sources.base import Outcome
url, owner, go = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
source = load_source(url)
while not go.exists():
    time.sleep(0.005)
acked = []
while docs := source.claim(owner, 5, 300):
    assert source.ack(owner, [Outcome(d.id, owner) for d in docs]) == len(docs)
    acked += [d.id for d in docs]
source.close()
print(json.dumps(acked))
"""


def test_processes_never_double_claim(backend: Backend, source: Source, tmp_path: Path) -> None:
    total = 1500
    seed(source, total)
    go = tmp_path / "go"
    owners = [f"process-{n}" for n in range(3)]
    procs = {
        owner: subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, backend.url, owner, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for owner in owners
    }
    go.touch()  # all start claiming at once
    per_owner: dict[str, list[int]] = {}
    for owner, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        per_owner[owner] = json.loads(out)
    _check_exactly_once(backend, per_owner, total)
    assert counts(source) == {"pending": 0, "in_progress": 0, "done": total, "failed": 0}
