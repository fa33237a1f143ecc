"""The worker: claim -> process -> ack, fail or release, with retries, against an
in-memory source.

Most tests drive the worker through a scripted gate (`ScriptedGate`) and run it on
the test's own thread: every answer the controller could give is set by the test,
and nothing waits. The last ones put it behind the real `Controller`, whose clock
the test moves (no real time passes for a grace period).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from pulling_agent.commands import Action, ChannelName, Command, CommandQueue, Report, ReportKind
from pulling_agent.controller import Controller
from pulling_agent.processors.base import ProcessingError, Processor
from pulling_agent.snapshot import Counters, Stats
from pulling_agent.sources.base import Document, DocumentStatus, Outcome, Source, SourceError
from pulling_agent.state import State
from pulling_agent.text import MAX_ERROR_CHARS
from pulling_agent.worker import Worker

OWNER = "test-worker"


# ------------------------------------------------------------------ the parts
@dataclass
class Row:
    payload: str
    status: DocumentStatus = DocumentStatus.PENDING
    owner: str = ""
    attempts: int = 0
    error: str = ""
    result: str | None = None


class MemorySource(Source):
    """A queue in a dict, with the lease contract (only the owner may ack,
    fail or release) and scripted outages: `outages["claim"] = 2` makes the
    next two claims raise `SourceError`."""

    def __init__(self, payloads: Iterable[str] = ()) -> None:
        self.rows: dict[int, Row] = {}
        self.outages: dict[str, int] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.add(payloads)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.outages.get(name, 0) > 0:
            self.outages[name] -= 1
            raise SourceError("connection refused")

    def _mine(self, owner: str, doc_id: int) -> Row | None:
        row = self.rows.get(doc_id)
        ok = row is not None and row.status is DocumentStatus.IN_PROGRESS and row.owner == owner
        return row if ok else None

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Document]:
        with self.lock:
            self._call("claim")
            ids = [i for i, r in self.rows.items() if r.status is DocumentStatus.PENDING][:limit]
            for i in ids:
                self.rows[i].status, self.rows[i].owner = DocumentStatus.IN_PROGRESS, owner
            return [Document(i, self.rows[i].payload, self.rows[i].attempts) for i in ids]

    def ack(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        with self.lock:
            self._call("ack")
            acked = 0
            for outcome in outcomes:
                row = self._mine(owner, outcome.document_id)
                if row is not None:
                    row.status, row.result = DocumentStatus.DONE, outcome.result
                    acked += 1
            return acked

    def fail(self, owner: str, document_id: int, error: str, max_attempts: int) -> bool:
        with self.lock:
            self._call("fail")
            row = self._mine(owner, document_id)
            if row is None:
                return False
            row.attempts += 1
            row.error = error
            parked = row.attempts >= max_attempts
            row.status = DocumentStatus.FAILED if parked else DocumentStatus.PENDING
            return parked

    def release(self, owner: str, document_ids: Sequence[int]) -> int:
        with self.lock:
            self._call("release")
            rows = [r for i in set(document_ids) if (r := self._mine(owner, i)) is not None]
            for row in rows:
                row.status, row.owner = DocumentStatus.PENDING, ""
            return len(rows)

    def backlog(self) -> int:
        self._call("backlog")
        return sum(r.status is DocumentStatus.PENDING for r in self.rows.values())

    def counts(self) -> dict[DocumentStatus, int]:
        counts = dict.fromkeys(DocumentStatus, 0)
        for row in self.rows.values():
            counts[row.status] += 1
        return counts

    def add(self, payloads: Iterable[str]) -> int:
        added = 0
        for payload in payloads:
            self.rows[len(self.rows) + 1] = Row(payload)
            added += 1
        return added

    def describe(self) -> str:
        return "memory://test"

    def statuses(self) -> list[DocumentStatus]:
        return [row.status for row in self.rows.values()]


class Upper(Processor):
    """Upper-cases the payload; fails on payloads starting with "bad"."""

    interruptible = True

    def __init__(
        self, *, interruptible: bool = True, on_process: Callable[[], None] = lambda: None
    ):
        self.interruptible = interruptible
        self.on_process = on_process
        self.seen: list[int] = []

    def process(self, document: Document) -> str:
        self.seen.append(document.id)
        self.on_process()
        if document.payload.startswith("bad"):
            raise ProcessingError(document.payload)
        return document.payload.upper()


@dataclass
class ScriptedGate:
    """The controller's answers, set by the test (see `worker.Gate`)."""

    batches: int = 1  # how many times wait_for_batch says yes
    documents_before_pause: int | None = None  # a pause becomes pending after this many
    finishing: Callable[[], bool] = lambda: True  # may_finish_batch
    running: Callable[[], bool] = lambda: True  # wants_running
    sleeps: list[float] = field(default_factory=list)
    batches_finished: int = 0
    _started: int = 0

    def wait_for_batch(self) -> bool:
        if self.batches == 0:
            return False
        self.batches -= 1
        self._started = 0
        return True

    def continue_batch(self) -> bool:
        """The next batch, claimed with this one's end: it counts as a batch."""
        return self.wait_for_batch()

    def may_start_document(self, interruptible: bool) -> bool:
        pausing = self.documents_before_pause is not None and (
            self._started >= self.documents_before_pause
        )
        if pausing and interruptible:
            return False
        self._started += 1
        return True

    def may_finish_batch(self) -> bool:
        return self.finishing()

    def wants_running(self) -> bool:
        return self.running()

    def idle(self, seconds: float) -> None:
        self.sleeps.append(seconds)  # tenacity's back-off and the idle wait: no real sleep

    def batch_finished(self) -> None:
        self.batches_finished += 1


class Tally:
    """The metrics' side of the worker (`worker.BatchObserver`)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, float, int, int, int, int]] = []
        self.backlogs: list[int] = []

    def batch(
        self, outcome: str, duration: float, done: int, failed: int, retried: int, released: int
    ) -> None:
        self.batches.append((outcome, duration, done, failed, retried, released))

    def backlog_observed(self, backlog: int) -> None:
        self.backlogs.append(backlog)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    source: MemorySource
    processor: Upper
    gate: ScriptedGate
    queue: CommandQueue
    stats: Stats
    tally: Tally
    clock: Clock
    worker: Worker

    def reports(self) -> list[Report]:
        items = []
        while (item := self.queue.get(timeout=0)) is not None:
            assert isinstance(item, Report)
            items.append(item)
        return items


def rig(
    payloads: Iterable[str],
    *,
    gate: ScriptedGate | None = None,
    processor: Upper | None = None,
    max_attempts: int = 3,
    batch_size: int = 10,
) -> Rig:
    source, queue, stats, tally, clock = (
        MemorySource(payloads),
        CommandQueue(),
        Stats(),
        Tally(),
        Clock(),
    )
    gate = gate or ScriptedGate()
    processor = processor or Upper()
    worker = Worker(
        source,
        processor,
        gate,
        queue,
        stats,
        tally,
        owner=OWNER,
        batch_size=batch_size,
        max_attempts=max_attempts,
        backlog_interval=5.0,
        clock=clock,
    )
    return Rig(source, processor, gate, queue, stats, tally, clock, worker)


# --------------------------------------------------- through a scripted gate
def test_a_batch_is_claimed_processed_and_acked() -> None:
    r = rig(["a", "b", "c"])
    r.clock.now = 1000.0
    r.processor.on_process = lambda: setattr(r.clock, "now", r.clock.now + 0.25)
    r.worker.run()
    assert [row.result for row in r.source.rows.values()] == ["A", "B", "C"]
    assert r.source.statuses() == [DocumentStatus.DONE] * 3
    assert r.stats.counters == Counters(batches=1, documents=3, errors=0)
    assert r.tally.batches == [("complete", 0.75, 3, 0, 0, 0)]  # duration on the worker's clock
    assert r.gate.batches_finished == 1
    assert r.reports() == [Report(ReportKind.WORKER_EXITED, "")]


def test_a_failing_document_is_retried_then_parked_with_its_error() -> None:
    r = rig(["a", "bad one", "c"], gate=ScriptedGate(batches=3), max_attempts=2)
    r.worker.run()
    bad = r.source.rows[2]
    assert (bad.status, bad.attempts, bad.error) == (
        DocumentStatus.FAILED,
        2,
        "ProcessingError: bad one",
    )
    assert r.source.rows[1].status is r.source.rows[3].status is DocumentStatus.DONE
    assert r.processor.seen == [1, 2, 3, 2]  # the second batch holds only the retry
    # First batch: 2 done, 1 retried; second: 1 parked; third: nothing to claim.
    assert [b[2:5] for b in r.tally.batches] == [(2, 0, 1), (0, 1, 0)]
    assert r.stats.counters.errors == 2
    assert r.gate.sleeps == [2.0]  # the idle wait after the empty claim


def test_error_text_kept_with_a_document_is_bounded() -> None:
    r = rig(["bad" + "x" * 50_000], max_attempts=1)
    r.worker.run()
    error = r.source.rows[1].error
    assert error.startswith("ProcessingError: badxxx") and len(error) == MAX_ERROR_CHARS


def test_a_source_outage_on_claim_is_retried_with_back_off_and_reported() -> None:
    r = rig(["a"])
    r.source.outages["claim"] = 3
    r.worker.run()
    assert r.source.rows[1].status is DocumentStatus.DONE
    # Three refused, the one that works, and the next batch's with the ack.
    assert r.source.calls.count("claim") == 5
    assert len(r.gate.sleeps) == 2 and all(0 < s <= 10.0 for s in r.gate.sleeps)
    assert r.reports() == [
        Report(ReportKind.SOURCE_ERROR, "claim: connection refused"),
        Report(ReportKind.SOURCE_OK),
        Report(ReportKind.WORKER_EXITED),
    ]


def test_claim_retries_end_as_soon_as_the_agent_should_not_run() -> None:
    r = rig(["a"], gate=ScriptedGate(running=lambda: False))  # a pause or a stop is asked for
    r.source.outages["claim"] = 100
    r.worker.run()
    assert r.source.calls.count("claim") == 2  # the first try, and one retry
    assert r.gate.sleeps == []  # no back-off wait, no idle wait
    assert r.source.statuses() == [DocumentStatus.PENDING]
    assert r.reports()[0] == Report(ReportKind.SOURCE_ERROR, "claim: connection refused")


def test_an_ack_outage_is_retried_while_the_batch_may_finish_then_given_up() -> None:
    checks = iter([True, True])
    r = rig(["a", "b"], gate=ScriptedGate(finishing=lambda: next(checks, False)))
    r.source.outages["ack"] = 100
    r.worker.run()
    assert r.source.calls.count("ack") == 4  # the first try, and retries while allowed
    assert len(r.gate.sleeps) == 2
    # Processed but not acknowledged: still leased, back in the queue when the lease expires.
    assert r.source.statuses() == [DocumentStatus.IN_PROGRESS] * 2
    assert r.stats.counters.documents == 0
    assert r.tally.batches[0][2] == 0


def test_a_pending_pause_ends_an_interruptible_batch_at_the_next_document() -> None:
    r = rig(["a", "b", "c", "d"], gate=ScriptedGate(documents_before_pause=2))
    r.worker.run()
    assert r.processor.seen == [1, 2]
    assert r.source.statuses() == [DocumentStatus.DONE] * 2 + [DocumentStatus.PENDING] * 2
    assert r.tally.batches == [("interrupted", 0.0, 2, 0, 0, 2)]


def test_a_pending_pause_waits_for_the_end_of_a_batch_that_is_not_interruptible() -> None:
    gate = ScriptedGate(documents_before_pause=1)
    r = rig(["a", "b", "c"], gate=gate, processor=Upper(interruptible=False))
    r.worker.run()
    assert r.source.statuses() == [DocumentStatus.DONE] * 3
    assert r.tally.batches[0][0] == "complete"


def test_backlog_is_read_once_per_interval_of_the_workers_clock() -> None:
    r = rig(["a"] * 8, gate=ScriptedGate(batches=4), batch_size=2)
    r.processor.on_process = lambda: setattr(r.clock, "now", r.clock.now + 1.0)
    r.worker.run()
    # Batches end at +2 s, +4 s, +6 s and +8 s: read after the first (whose end
    # claimed the second: 4 left), then 5 s later.
    assert r.tally.backlogs == [4, 0]


def test_an_unexpected_failure_ends_the_worker_and_is_reported() -> None:
    r = rig(["a"])

    def broken(owner: str, outcomes: Sequence[Outcome]) -> int:
        raise RuntimeError("bug in the source")

    r.source.ack = broken  # type: ignore[method-assign]
    r.worker.run()
    assert r.reports() == [Report(ReportKind.WORKER_EXITED, "RuntimeError: bug in the source")]


# --------------------------------------------------- behind the real controller
def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll for another thread's doing (a bounded wait, never a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Steps:
    """A processor's documents that wait, one by one, for the test to let them finish."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.go = threading.Semaphore(0)

    def __call__(self) -> None:
        self.started.release()
        assert self.go.acquire(timeout=30), "the test never let the document finish"

    def next_started(self) -> None:
        assert self.started.acquire(timeout=30), "no document started"


@dataclass
class Agent:
    rig: Rig
    controller: Controller
    steps: Steps
    threads: list[threading.Thread]
    exit_code: list[int]

    def send(self, action: Action) -> None:
        self.rig.queue.put(Command(action, channel=ChannelName.SIGNAL))

    def wait_state(self, state: State) -> None:
        wait_until(lambda: self.controller.state is state, f"state {state}")


@pytest.fixture
def agent() -> Iterator[Agent]:
    """A worker on its thread behind a controller on its thread, grace 10 s of the
    controller's (fake) clock."""
    steps = Steps()
    r = rig(["a", "b", "c", "d"], processor=Upper(on_process=steps))
    controller = Controller(
        r.queue,
        r.stats,
        heartbeat_interval=0.05,
        stop_grace_seconds=10.0,
        on_abort=lambda: r.worker.release_inflight(),
        clock=r.clock,
    )
    r.worker = Worker(
        r.source, r.processor, controller, r.queue, r.stats, r.tally, owner=OWNER, clock=r.clock
    )
    worker = r.worker
    controller.start(None)
    exit_code: list[int] = []
    threads = [
        threading.Thread(target=lambda: exit_code.append(controller.run()), daemon=True),
        threading.Thread(target=worker.run, daemon=True),
    ]
    for thread in threads:
        thread.start()
    a = Agent(r, controller, steps, threads, exit_code)
    yield a
    if controller.state is not State.STOPPED:
        a.send(Action.STOP_NOW)
    for _ in range(8):
        steps.go.release()  # let any waiting document end
    for thread in threads:
        thread.join(timeout=10)


def test_pause_mid_batch_releases_the_rest_and_pauses_at_the_document_boundary(
    agent: Agent,
) -> None:
    agent.steps.next_started()  # document 1 in progress
    agent.send(Action.PAUSE)
    wait_until(lambda: not agent.controller.may_start_document(interruptible=True), "pending")
    assert agent.controller.state is State.RUNNING  # pending until the boundary
    agent.steps.go.release()
    agent.wait_state(State.PAUSED)
    assert agent.rig.source.statuses() == [DocumentStatus.DONE] + [DocumentStatus.PENDING] * 3


def test_stop_within_the_grace_period_finishes_the_batch(agent: Agent) -> None:
    agent.steps.next_started()
    agent.send(Action.STOP)
    agent.wait_state(State.STOPPING)
    agent.rig.clock.now += 9.0  # still within the 10 s grace
    for _ in range(4):
        agent.steps.go.release()
    agent.wait_state(State.STOPPED)
    assert agent.rig.source.statuses() == [DocumentStatus.DONE] * 4
    agent.threads[0].join(timeout=10)
    assert agent.exit_code == [0]


def test_stop_grace_over_releases_the_batch_in_flight_and_loses_nothing(agent: Agent) -> None:
    agent.steps.next_started()
    agent.send(Action.STOP)
    agent.wait_state(State.STOPPING)
    agent.steps.go.release()  # document 1 done, within the grace: document 2 starts
    agent.steps.next_started()
    agent.rig.clock.now += 11.0  # past the grace period
    agent.wait_state(State.STOPPED)  # the controller released the batch in flight
    assert agent.rig.source.statuses() == [DocumentStatus.PENDING] * 4
    agent.steps.go.release()
    agent.threads[1].join(timeout=10)
    assert not agent.threads[1].is_alive()
    # The worker's late ack is refused (no longer its lease): nothing done twice.
    assert agent.rig.source.statuses() == [DocumentStatus.PENDING] * 4
    assert agent.rig.processor.seen == [1, 2]
