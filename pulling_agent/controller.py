"""The controller: the one consumer of the command queue, the one writer of state.

It drains the `CommandQueue` on the main thread, applies each command through
the `StateMachine`, and tells its listeners (health files, metrics) what
changed. The agent's worker thread never writes state: it asks the controller
for permission to start a batch (`wait_for_batch`), asks between documents
whether to go on (`may_start_document`, `may_finish_batch`), and reports
through the same queue.

Pause takes effect at the next batch boundary (or document boundary for an
interruptible processor): while a batch is in flight the pause is *pending*,
the state stays RUNNING, and a resume arriving meanwhile cancels it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from pulling_agent.commands import (
    DECLARATIVE_CHANNELS,
    Action,
    Command,
    CommandQueue,
    CommandResult,
    Report,
    ReportKind,
)
from pulling_agent.snapshot import Listener, Snapshot, Stats
from pulling_agent.state import Desired, InvalidTransition, State, StateMachine
from pulling_agent.timestamps import utc_now

log = logging.getLogger(__name__)

_DECLARED = {Action.PAUSE: Desired.PAUSED, Action.RESUME: Desired.RUNNING}


class Controller:
    def __init__(
        self,
        queue: CommandQueue,
        stats: Stats,
        listeners: Sequence[Listener] = (),
        *,
        heartbeat_interval: float = 5.0,
        stop_grace_seconds: float = 25.0,
        on_abort: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._stats = stats
        self._listeners = list(listeners)
        self._heartbeat_interval = heartbeat_interval
        self._stop_grace = stop_grace_seconds
        self._on_abort = on_abort
        self._clock = clock
        self._cond = threading.Condition()
        # Everything below is guarded by _cond.
        self._machine = StateMachine()
        self._desired = Desired.RUNNING
        self._declared = Desired.RUNNING
        self._busy = False
        self._abort = False
        self._stop_deadline: float | None = None
        self._paused_since: datetime | None = None
        self._since: datetime | None = None  # when the current state was entered
        self._request: Command | None = None  # the operator request behind `_desired`
        self._error = ""
        self._last_publish = 0.0
        self._unhindered = False  # RUNNING, desired RUNNING, no abort (see may_start_document)
        self._failing: set[Listener] = set()  # listeners whose last publish failed
        self.exit_code = 0

    # ------------------------------------------------------------------ reads
    @property
    def state(self) -> State:
        with self._cond:
            return self._machine.state

    @property
    def desired(self) -> Desired:
        with self._cond:
            return self._desired

    def snapshot(self) -> Snapshot:
        with self._cond:
            request = self._request
            return Snapshot(
                state=self._machine.state,
                desired=self._desired,
                counters=self._stats.counters,
                lag=self._stats.lag(),
                pid=os.getpid(),
                paused_since=self._paused_since,
                reason=request.reason if request else "",
                requested_by=request.requested_by if request else "",
                requested_at=request.requested_at if request else None,
                channel=request.channel if request else "",
                error=self._error,
                declared=self._declared,
                since=self._since,
            )

    # ------------------------------------------------------ the worker's gate
    def wait_for_batch(self) -> bool:
        """Block until a batch may start (True) or the agent stops (False).

        Blocks on a condition variable: a paused agent uses no CPU here.
        """
        with self._cond:
            while True:
                state = self._machine.state
                if state in (State.STOPPING, State.STOPPED) or self._abort:
                    return False
                if state is State.RUNNING and self._desired is Desired.RUNNING:
                    self._busy = True
                    return True
                self._cond.wait()

    def continue_batch(self) -> bool:
        """Between two batches, the next one already claimed: may it start now?

        `wait_for_batch` without blocking and without letting go: the worker
        stays busy either way. On False it releases the batch in hand, then
        calls `batch_finished`, so that a pause or a stop never settles while
        a claimed batch is held.
        """
        if self._unhindered:
            return True
        with self._cond:
            return (
                self._machine.state is State.RUNNING
                and self._desired is Desired.RUNNING
                and not self._abort
            )

    def may_start_document(self, interruptible: bool) -> bool:
        """Between two documents of a batch: may the worker process the next?

        A pending pause ends an `interruptible` processor's batch here (the
        rest is released); otherwise the batch goes on as `may_finish_batch`
        says. Called once a document: the common answer (running, nothing
        pending) comes from a flag read without the lock; the flag is only
        ever true while that answer holds, and any change clears it under the
        lock.
        """
        if self._unhindered:
            return True
        with self._cond:
            if interruptible and self._desired is Desired.PAUSED:
                return False
            return self._may_finish_batch()

    def may_finish_batch(self) -> bool:
        """May the worker keep finishing its batch (and keep retrying its
        ack, fail and release calls)? No once an immediate stop is asked for
        or the stop grace period is over; a pause never interrupts this."""
        if self._unhindered:
            return True
        with self._cond:
            return self._may_finish_batch()

    def _may_finish_batch(self) -> bool:
        """Caller holds _cond."""
        if self._abort:
            return False
        if self._machine.state is State.STOPPING:
            return self._stop_deadline is None or self._clock() < self._stop_deadline
        return True

    def wants_running(self) -> bool:
        """False once a pause or a stop is requested (ends retries of a claim)."""
        with self._cond:
            return self._desired is Desired.RUNNING and not self._abort

    def idle(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on any change of state."""
        with self._cond:
            self._cond.wait(timeout=seconds)

    def batch_finished(self) -> None:
        with self._cond:
            self._busy = False
            # Only a pending pause waits for this report; don't wake the
            # controller after every batch otherwise (a hot path).
            report = self._desired is Desired.PAUSED
        if report:
            self._queue.put(Report(ReportKind.BATCH_DONE))

    # ------------------------------------------------------------- main loop
    def start(self, initial: Command | None) -> None:
        """Leave STARTING: to PAUSED if the desired state at start is pause."""
        if initial is not None:
            self._declare(initial)
        with self._cond:
            self._request = initial
            if initial is not None and initial.action is Action.PAUSE:
                self._desired = Desired.PAUSED
                self._transition(State.PAUSED)
                log.info("Starting paused", extra=initial.log_fields())
            else:
                self._transition(State.RUNNING)
                log.info("Agent running")
        self._publish()

    def run(self) -> int:
        """Drain the queue until STOPPED; returns the process exit code."""
        while self.state is not State.STOPPED:
            item = self._queue.get(timeout=self._next_timeout())
            if item is None:
                self._tick()
            elif isinstance(item, Report):
                self._on_report(item)
            else:
                self._dispatch(item)
        self._publish()
        return self.exit_code

    def _next_timeout(self) -> float:
        wait = self._heartbeat_interval - (self._clock() - self._last_publish)
        with self._cond:
            if self._stop_deadline is not None:
                wait = min(wait, self._stop_deadline - self._clock())
        return max(wait, 0.01)

    def _tick(self) -> None:
        with self._cond:
            overdue = (
                self._machine.state is State.STOPPING
                and self._stop_deadline is not None
                and self._clock() >= self._stop_deadline
                and self._busy
            )
        if overdue:
            log.warning("Stop grace period over with a batch in flight; releasing it")
            self._abort_now()
        if self._clock() - self._last_publish >= self._heartbeat_interval:
            self._publish()

    def _declare(self, command: Command) -> None:
        """Remember what the control file or ConfigMap asks for."""
        declared = _DECLARED.get(command.action)
        if declared is not None and command.channel in DECLARATIVE_CHANNELS:
            with self._cond:
                self._declared = declared

    def _dispatch(self, command: Command) -> None:
        self._declare(command)
        handler: Callable[[Command], CommandResult] = getattr(
            self, f"_handle_{command.action.value}"
        )
        result = handler(command)
        for listener in self._listeners:
            listener.command_handled(command, result)

    def _on_report(self, report: Report) -> None:
        handler: Callable[[Report], None] = getattr(self, f"_on_{report.kind.value}")
        handler(report)

    def publish(self) -> None:
        """Tell the listeners the current picture (also before `start`: STARTING)."""
        self._publish()

    def _publish(self) -> None:
        self._last_publish = self._clock()
        snapshot = self.snapshot()
        for listener in self._listeners:
            try:
                listener.publish(snapshot)
            except Exception as exc:
                # One warning an outage (a full disk fails every heartbeat), one line after.
                if listener not in self._failing:
                    self._failing.add(listener)
                    oserror = isinstance(exc, OSError) and exc.strerror
                    log.warning(
                        "Cannot update %s: %s; retrying on every heartbeat",
                        listener.describe(),
                        exc.strerror if oserror else exc,  # type: ignore[attr-defined]
                        exc_info=not oserror,
                    )
            else:
                if listener in self._failing:
                    self._failing.discard(listener)
                    log.info("Updating %s again", listener.describe())

    def _changed(self) -> None:
        """After any change of state, desired state or abort. Caller holds _cond."""
        self._unhindered = (
            self._machine.state is State.RUNNING
            and self._desired is Desired.RUNNING
            and not self._abort
        )
        self._cond.notify_all()

    def _transition(self, target: State) -> None:
        """Caller holds _cond."""
        self._machine.transition(target)
        self._since = utc_now()
        self._paused_since = self._since if target is State.PAUSED else None
        self._changed()

    # --------------------------------------------------------------- handlers
    def _refuse(self, command: Command, target: State) -> CommandResult:
        log.warning(
            "%s", InvalidTransition(self._machine.state, target), extra=command.log_fields()
        )
        return CommandResult.REFUSED

    def _handle_pause(self, command: Command) -> CommandResult:
        with self._cond:
            state = self._machine.state
            if state in (State.STOPPING, State.STOPPED):
                return self._refuse(command, State.PAUSED)
            if self._desired is Desired.PAUSED:
                self._update_request(command)
                result = CommandResult.NOOP
            else:
                self._desired = Desired.PAUSED
                self._request = command
                log.info("Pausing agent", extra=command.log_fields())
                if state is State.RUNNING and not self._busy:
                    self._transition(State.PAUSED)
                else:
                    log.info("Pause pending: finishing the current batch")
                    self._changed()
                result = CommandResult.APPLIED
        self._publish()
        return result

    def _handle_resume(self, command: Command) -> CommandResult:
        with self._cond:
            state = self._machine.state
            if state in (State.STOPPING, State.STOPPED):
                return self._refuse(command, State.RUNNING)
            if self._desired is Desired.RUNNING:
                self._update_request(command)
                result = CommandResult.NOOP
            else:
                self._desired = Desired.RUNNING
                self._request = command
                if state is State.PAUSED:
                    log.info("Resuming agent", extra=command.log_fields())
                    self._transition(State.RUNNING)
                else:
                    log.info("Resuming agent: pending pause cancelled", extra=command.log_fields())
                    self._changed()
                result = CommandResult.APPLIED
        self._publish()
        return result

    def _update_request(self, command: Command) -> None:
        """A repeat of the desired state is a quiet no-op, but a reason that
        arrives with it (the control file after a signal) is kept. (The same
        request by a second channel never gets here: the file and the
        ConfigMap watch share `ObservedRequest`.) Caller holds _cond."""
        if command.reason or command.requested_by:
            self._request = command
        log.debug("Already %s; %s command ignored", self._desired.value, command.action.value)

    def _handle_stop(self, command: Command) -> CommandResult:
        with self._cond:
            state = self._machine.state
            if state is State.STOPPING:
                immediate = True
            elif state is State.STOPPED:
                return CommandResult.NOOP
            else:
                immediate = False
                self._desired = Desired.STOPPED
                self._stop_deadline = self._clock() + self._stop_grace
                log.info(
                    "Stopping agent: finishing the current batch (grace %.0fs)",
                    self._stop_grace,
                    extra=command.log_fields(),
                )
                # An idle worker leaves the gate now and reports WORKER_EXITED.
                self._transition(State.STOPPING)
        if immediate:
            log.warning("Second stop request: stopping now", extra=command.log_fields())
            self._abort_now()
        else:
            self._publish()
        return CommandResult.APPLIED

    def _handle_stop_now(self, command: Command) -> CommandResult:
        with self._cond:
            if self._machine.state is State.STOPPED:
                return CommandResult.NOOP
            if self._machine.state is not State.STOPPING:
                self._desired = Desired.STOPPED
                self._transition(State.STOPPING)
        log.warning("Stopping now", extra=command.log_fields())
        self._abort_now()
        return CommandResult.APPLIED

    def _abort_now(self) -> None:
        """Release the batch in flight and stop without waiting for the worker."""
        with self._cond:
            self._abort = True
            self._changed()
        try:
            self._on_abort()
        except Exception:
            log.exception("Releasing the batch in flight failed; its lease will expire")
        self._finish_stop()

    def abandon(self, error: str) -> None:
        """The agent is going down on an error (an exception on the main thread,
        a failed start): say STOPPED, with the error, so that no health file
        claims RUNNING for a process that is about to be gone."""
        with self._cond:
            self.exit_code = 1
            self._abort = True
            self._error = error
            self._desired = Desired.STOPPED
            self._changed()
        self._finish_stop(quiet=True)

    def _finish_stop(self, *, quiet: bool = False) -> None:
        with self._cond:
            if self._machine.state is State.STOPPED:
                return
            if self._machine.state is not State.STOPPING:
                self._transition(State.STOPPING)
            self._transition(State.STOPPED)
        if not quiet:
            log.info("Agent stopped")
        self._publish()

    # ---------------------------------------------------------------- reports
    def _on_batch_done(self, report: Report) -> None:
        with self._cond:
            ready_to_pause = (
                self._machine.state is State.RUNNING
                and self._desired is Desired.PAUSED
                and not self._busy
            )
            if ready_to_pause:
                self._transition(State.PAUSED)
        if ready_to_pause:
            log.info("Agent paused at the batch boundary")
            self._publish()

    def _on_worker_exited(self, report: Report) -> None:
        with self._cond:
            unexpected = self._machine.state not in (State.STOPPING, State.STOPPED)
            if unexpected:
                self.exit_code = 1
                self._desired = Desired.STOPPED
                self._transition(State.STOPPING)
        if unexpected:
            log.error("The worker stopped unexpectedly: %s", report.error or "unknown error")
        self._finish_stop()

    def _on_source_error(self, report: Report) -> None:
        with self._cond:
            changed = self._error != report.error
            self._error = report.error
        if changed:
            self._publish()

    def _on_source_ok(self, report: Report) -> None:
        with self._cond:
            changed = bool(self._error)
            self._error = ""
        if changed:
            log.info("Source reachable again")
            self._publish()
