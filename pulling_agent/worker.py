"""The agent's worker: claim a batch, process it, ack it; repeat while allowed.

Runs on its own thread. It never writes state: it asks the controller's gate
before each batch and between documents, and reports (`Report`) through the
command queue. Source calls that fail with `SourceError` are retried with tenacity's
exponential back-off; the waits sleep on the controller's condition, so a
pause or a stop ends them at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from pulling_agent.commands import CommandQueue, Report, ReportKind
from pulling_agent.processors.base import Processor
from pulling_agent.snapshot import Counters, Stats
from pulling_agent.sources.base import Document, Outcome, Source, SourceError
from pulling_agent.text import clip_error

log = logging.getLogger(__name__)

T = TypeVar("T")


class Gate(Protocol):
    """What the worker may ask of the controller (see `Controller` for the answers)."""

    def wait_for_batch(self) -> bool:
        """Block until a batch may start (True) or the agent stops (False)."""

    def may_start_document(self, interruptible: bool) -> bool:
        """Between two documents of a batch: process the next one?"""

    def may_finish_batch(self) -> bool:
        """Keep finishing the batch (retrying its ack, fail, release)?"""

    def wants_running(self) -> bool:
        """Keep retrying a claim? (No once a pause or a stop is asked for.)"""

    def idle(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on any change of state."""

    def batch_finished(self) -> None: ...


class BatchObserver(Protocol):
    """Where the worker's tallies go (the metrics)."""

    def batch(
        self, outcome: str, duration: float, done: int, failed: int, retried: int, released: int
    ) -> None: ...

    def backlog_observed(self, backlog: int) -> None: ...


class Worker:
    def __init__(
        self,
        source: Source,
        processor: Processor,
        gate: Gate,
        queue: CommandQueue,
        stats: Stats,
        observer: BatchObserver | None = None,
        *,
        owner: str,
        batch_size: int = 10,
        lease_seconds: float = 300.0,
        max_attempts: int = 3,
        idle_interval: float = 2.0,
        backlog_interval: float = 5.0,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._processor = processor
        self._gate = gate
        self._queue = queue
        self._stats = stats
        self._observer = observer
        self.owner = owner
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._idle_interval = idle_interval
        self._backlog_interval = backlog_interval
        self._max_backoff = max_backoff
        self._clock = clock
        self._inflight_lock = threading.Lock()
        self._inflight: list[int] = []
        self._reported_error = ""
        self._last_backlog = float("-inf")
        self._last_progress = Counters()

    # ------------------------------------------------------------ the thread
    def run(self) -> None:
        error = ""
        try:
            while self._gate.wait_for_batch():
                try:
                    handled = self._one_batch()
                finally:
                    self._gate.batch_finished()
                self._update_backlog()
                if not handled and self._gate.wants_running():
                    self._gate.idle(self._idle_interval)
        except Exception as exc:
            log.exception("Worker failed")
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._queue.put(Report(ReportKind.WORKER_EXITED, error))

    def release_inflight(self) -> None:
        """Give the batch in flight back to the source (called on an immediate stop)."""
        with self._inflight_lock:
            ids, self._inflight = self._inflight, []
        if ids:
            released = self._source.release(self.owner, ids)
            log.info("Released %d documents of the batch in flight", released)

    # ----------------------------------------------------------- one batch
    def _one_batch(self) -> bool:
        """Claim, process and ack one batch; False when there was nothing to do."""
        started = self._clock()
        docs = self._call(
            "claim",
            lambda: self._source.claim(self.owner, self._batch_size, self._lease),
            self._gate.wants_running,
        )
        if not docs:
            return False
        with self._inflight_lock:
            self._inflight = [doc.id for doc in docs]
        outcomes: list[Outcome] = []
        failed = retried = handled = 0
        interruptible = self._processor.interruptible
        for doc in docs:
            if not self._gate.may_start_document(interruptible):
                break
            handled += 1
            try:
                result = self._processor.process(doc)
            except Exception as exc:
                if self._fail(doc, exc):
                    failed += 1
                else:
                    retried += 1
                continue
            outcomes.append(Outcome(doc.id, result))
        acked = self._ack(outcomes)
        released = self._release(docs[handled:])
        with self._inflight_lock:
            self._inflight = []
        self._stats.add(batches=1, documents=acked, errors=failed + retried)
        if self._observer is not None:
            outcome = "complete" if handled == len(docs) else "interrupted"
            self._observer.batch(outcome, self._clock() - started, acked, failed, retried, released)
        return True

    def _fail(self, doc: Document, exc: Exception) -> bool:
        error = clip_error(f"{type(exc).__name__}: {exc}")
        parked = self._call(
            "fail",
            lambda: self._source.fail(self.owner, doc.id, error, self._max_attempts),
            self._gate.may_finish_batch,
        )
        with self._inflight_lock:
            if doc.id in self._inflight:
                self._inflight.remove(doc.id)
        if parked:
            log.warning("Document %s failed for good: %s", doc.id, error)
        else:
            log.info("Document %s failed (attempt %d): %s", doc.id, doc.attempts + 1, error)
        return bool(parked)

    def _ack(self, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        acked = self._call(
            "ack",
            lambda: self._source.ack(self.owner, outcomes),
            self._gate.may_finish_batch,
        )
        if acked is None:
            log.warning(
                "%d processed documents were not acknowledged; they return to the "
                "queue when their lease expires",
                len(outcomes),
            )
            return 0
        if acked < len(outcomes):
            log.warning(
                "%d documents were not acknowledged: their lease expired and another "
                "agent may hold them",
                len(outcomes) - acked,
            )
        return acked

    def _release(self, docs: Sequence[Document]) -> int:
        if not docs:
            return 0
        ids = [doc.id for doc in docs]
        released = self._call(
            "release",
            lambda: self._source.release(self.owner, ids),
            self._gate.may_finish_batch,
        )
        if released is None:
            return 0
        log.info("Released %d untouched documents of the batch", released)
        return released

    def _update_backlog(self) -> None:
        now = self._clock()
        if self._observer is None or now - self._last_backlog < self._backlog_interval:
            return
        self._last_backlog = now
        with contextlib.suppress(SourceError):  # the next claim reports it
            backlog = self._source.backlog()
            self._stats.observe_backlog(backlog)
            self._observer.backlog_observed(backlog)
            counters = self._stats.counters
            if counters != self._last_progress:
                self._last_progress = counters
                log.info(
                    "Progress: %d documents done in %d batches, %d errors, backlog %d",
                    counters.documents,
                    counters.batches,
                    counters.errors,
                    backlog,
                )

    # ---------------------------------------------------- retried source calls
    def _call(self, what: str, fn: Callable[[], T], keep_trying: Callable[[], bool]) -> T | None:
        """`fn()`, retried on SourceError while `keep_trying()`; None if given up.

        The first call is made directly: the retry machinery costs tens of
        microseconds a call, which shows at thousands of batches a second, and
        is only needed once the source has failed.
        """
        try:
            result = fn()
        except SourceError as exc:
            self._report_error(f"{what}: {exc}")
            return self._retry(what, fn, keep_trying)
        if self._reported_error:
            self._source_ok()
        return result

    def _retry(self, what: str, fn: Callable[[], T], keep_trying: Callable[[], bool]) -> T | None:
        """Tenacity's exponential back-off around `fn()` after it failed once."""

        def report(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._report_error(f"{what}: {exc}")
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("Source unavailable (%s): %s; retrying in %.1fs", what, exc, delay)

        retrying = Retrying(
            retry=retry_if_exception_type(SourceError),
            wait=wait_exponential_jitter(multiplier=0.5, max=self._max_backoff),
            stop=lambda _state: not keep_trying(),
            sleep=self._gate.idle,
            before_sleep=report,
            reraise=True,
        )
        try:
            result = retrying(fn)
        except SourceError as exc:
            self._report_error(f"{what}: {exc}")
            log.warning("Gave up %s while the source is unavailable: %s", what, exc)
            return None
        self._source_ok()
        return result

    def _source_ok(self) -> None:
        self._reported_error = ""
        self._queue.put(Report(ReportKind.SOURCE_OK))

    def _report_error(self, text: str) -> None:
        if text != self._reported_error:
            self._reported_error = text
            self._queue.put(Report(ReportKind.SOURCE_ERROR, text))
