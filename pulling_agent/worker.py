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
from pulling_agent.sources.base import (
    Document,
    Failure,
    NextClaim,
    Outcome,
    Settled,
    Source,
    SourceError,
)
from pulling_agent.text import clip_error

log = logging.getLogger(__name__)

T = TypeVar("T")


class Gate(Protocol):
    """What the worker may ask of the controller (see `Controller` for the answers)."""

    def wait_for_batch(self) -> bool:
        """Block until a batch may start (True) or the agent stops (False)."""

    def continue_batch(self) -> bool:
        """Go on with the next batch, already claimed? (Never blocks.)"""

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
                docs: Sequence[Document] = ()
                try:
                    handled, docs = self._one_batch(None)
                    # Each batch's end claims the next one (one round trip):
                    # go on with it while nothing asks to stop.
                    while docs and self._gate.continue_batch():
                        self._update_backlog()
                        _, docs = self._one_batch(docs)
                finally:
                    if docs:  # a pause or a stop came: give the next batch back
                        self._release_claimed(docs)
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

    def _release_claimed(self, docs: Sequence[Document]) -> None:
        ids = [doc.id for doc in docs]
        released = self._call(
            "release",
            lambda: self._source.release(self.owner, ids),
            self._gate.may_finish_batch,
        )
        with self._inflight_lock:
            self._inflight = []
        if released is not None:
            log.info("Released %d documents claimed for the next batch", released)

    # ----------------------------------------------------------- one batch
    def _one_batch(self, claimed: Sequence[Document] | None) -> tuple[bool, Sequence[Document]]:
        """Process and settle one batch, `claimed` or claimed now.

        Returns whether there was a batch, and the next batch when the
        settle claimed it (only while running, after a whole batch).
        """
        started = self._clock()
        docs = claimed
        if docs is None:
            docs = self._call(
                "claim",
                lambda: self._source.claim(self.owner, self._batch_size, self._lease),
                self._gate.wants_running,
            )
            if not docs:
                return False, ()
            with self._inflight_lock:
                self._inflight = [doc.id for doc in docs]
        outcomes: list[Outcome] = []
        failures: list[Failure] = []
        handled = 0
        interruptible = self._processor.interruptible
        may_start, process = self._gate.may_start_document, self._processor.process  # hot
        for doc in docs:
            if not may_start(interruptible):
                break
            handled += 1
            try:
                outcomes.append(Outcome(doc.id, process(doc)))
            except Exception as exc:
                failures.append(Failure(doc.id, clip_error(f"{type(exc).__name__}: {exc}")))
        then_claim = None
        if handled == len(docs) and self._gate.wants_running():
            then_claim = NextClaim(self._batch_size, self._lease)
        untouched = [doc.id for doc in docs[handled:]]
        settled = self._settle(docs, outcomes, failures, untouched, then_claim)
        with self._inflight_lock:
            self._inflight = [doc.id for doc in settled.claimed]
        failed, retried = len(settled.parked), len(settled.retried)
        self._stats.add(batches=1, documents=settled.acked, errors=failed + retried)
        if self._observer is not None:
            outcome = "complete" if handled == len(docs) else "interrupted"
            self._observer.batch(
                outcome,
                self._clock() - started,
                settled.acked,
                failed,
                retried,
                settled.released,
            )
        return True, settled.claimed

    def _settle(
        self,
        docs: Sequence[Document],
        outcomes: Sequence[Outcome],
        failures: Sequence[Failure],
        untouched: Sequence[int],
        then_claim: NextClaim | None,
    ) -> Settled:
        """Ack, record failures, release the rest and claim the next batch,
        in one source call."""
        settled = self._call(
            "settle",
            lambda: self._source.settle(
                self.owner, outcomes, failures, untouched, self._max_attempts, then_claim
            ),
            self._gate.may_finish_batch,
        )
        if settled is None:
            log.warning(
                "The end of a batch was not recorded (%d processed, %d failed, %d untouched): "
                "its documents return to the queue when their lease expires",
                len(outcomes),
                len(failures),
                len(untouched),
            )
            return Settled()
        if failures:
            self._log_failures(docs, failures, settled)
        if settled.acked < len(outcomes):
            log.warning(
                "%d documents were not acknowledged: their lease expired and another "
                "agent may hold them",
                len(outcomes) - settled.acked,
            )
        if settled.released:
            log.info("Released %d untouched documents of the batch", settled.released)
        return settled

    @staticmethod
    def _log_failures(
        docs: Sequence[Document], failures: Sequence[Failure], settled: Settled
    ) -> None:
        errors = {failure.document_id: failure.error for failure in failures}
        attempts = {doc.id: doc.attempts for doc in docs}
        for doc_id in settled.parked:
            log.warning("Document %s failed for good: %s", doc_id, errors[doc_id])
        for doc_id in settled.retried:
            log.info(
                "Document %s failed (attempt %d): %s", doc_id, attempts[doc_id] + 1, errors[doc_id]
            )

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
