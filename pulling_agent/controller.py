"""The controller: the one consumer of the command queue, the one writer of state.

It drains the `CommandQueue` on the main thread, applies each command through
the `StateMachine`, and tells its listeners (health files, metrics) what
changed. The agent's worker thread never writes state: it asks the controller
for permission to start a batch (`wait_for_batch`), asks between documents
whether to go on (`keep_going`), and reports through the same queue.

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

from pulling_agent.commands import DECLARATIVE_SOURCES, Action, Command, CommandQueue, utc_now
from pulling_agent.snapshot import Snapshot, Stats
from pulling_agent.state import Desired, InvalidTransition, State, StateMachine

log = logging.getLogger(__name__)

_DECLARED = {Action.PAUSE: Desired.PAUSED, Action.RESUME: Desired.RUNNING}


class Listener:
    """Told about every change (and every heartbeat). Default: ignore."""

    def publish(self, snapshot: Snapshot) -> None:
        """The agent's picture changed, or a heartbeat is due."""

    def command_handled(self, command: Command, result: str) -> None:
        """A command was `applied`, a `noop` (already so), or `refused`."""


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
        self._meta = Command(Action.RESUME, source="start")
        self._error = ""
        self._last_publish = 0.0
        self._unhindered = False  # RUNNING, desired RUNNING, no abort (see keep_going)
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
            meta = self._meta
            return Snapshot(
                state=self._machine.state,
                desired=self._desired,
                counters=self._stats.counters,
                pid=os.getpid(),
                paused_since=self._paused_since,
                reason=meta.reason,
                requested_by=meta.requested_by,
                requested_at=meta.requested_at if meta.source != "start" else None,
                command_source=meta.source if meta.source != "start" else "",
                error=self._error,
                declared=self._declared,
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

    def keep_going(self, interruptible: bool) -> bool:
        """Between two documents of a batch: may the worker go on?

        Called once a document: the common answer (running, nothing pending)
        comes from a flag read without the lock; the flag is only ever true
        while that answer holds, and any change clears it under the lock.
        """
        if self._unhindered:
            return True
        with self._cond:
            if self._abort:
                return False
            if self._machine.state is State.STOPPING:
                return self._stop_deadline is None or self._clock() < self._stop_deadline
            return not (interruptible and self._desired is not Desired.RUNNING)

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
            self._queue.put(Command(Action.BATCH_DONE, source="agent"))

    # ------------------------------------------------------------- main loop
    def start(self, initial: Command | None) -> None:
        """Leave STARTING: to PAUSED if the desired state at start is pause."""
        if initial is not None:
            self._declare(initial)
        with self._cond:
            if initial is not None and initial.action is Action.PAUSE:
                self._desired = Desired.PAUSED
                self._meta = initial
                self._transition(State.PAUSED)
                log.info("Starting paused", extra=self._log_fields(initial))
            else:
                if initial is not None:
                    self._meta = initial
                self._transition(State.RUNNING)
                log.info("Agent running")
        self._publish()

    def run(self) -> int:
        """Drain the queue until STOPPED; returns the process exit code."""
        while self.state is not State.STOPPED:
            command = self._queue.get(timeout=self._next_timeout())
            if command is None:
                self._tick()
            else:
                self._dispatch(command)
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
        if declared is not None and command.source in DECLARATIVE_SOURCES:
            with self._cond:
                self._declared = declared

    def _dispatch(self, command: Command) -> None:
        self._declare(command)
        handler = getattr(self, f"_handle_{command.action.value}")
        result: str | None = handler(command)
        if result is not None:
            for listener in self._listeners:
                listener.command_handled(command, result)

    def _publish(self) -> None:
        self._last_publish = self._clock()
        snapshot = self.snapshot()
        for listener in self._listeners:
            try:
                listener.publish(snapshot)
            except Exception:
                log.exception("Listener %s failed", type(listener).__name__)

    @staticmethod
    def _log_fields(command: Command) -> dict[str, str]:
        return {
            "command_source": command.source,
            "reason": command.reason,
            "requested_by": command.requested_by,
        }

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
        self._paused_since = utc_now() if target is State.PAUSED else None
        self._changed()

    # --------------------------------------------------------------- handlers
    def _refuse(self, command: Command, target: State) -> str:
        log.warning(
            "%s", InvalidTransition(self._machine.state, target), extra=self._log_fields(command)
        )
        return "refused"

    def _handle_pause(self, command: Command) -> str:
        with self._cond:
            state = self._machine.state
            if state in (State.STOPPING, State.STOPPED):
                return self._refuse(command, State.PAUSED)
            if self._desired is Desired.PAUSED:
                self._update_meta(command)
                result = "noop"
            else:
                self._desired = Desired.PAUSED
                self._meta = command
                log.info("Pausing agent", extra=self._log_fields(command))
                if state is State.RUNNING and not self._busy:
                    self._transition(State.PAUSED)
                else:
                    log.info("Pause pending: finishing the current batch")
                    self._changed()
                result = "applied"
        self._publish()
        return result

    def _handle_resume(self, command: Command) -> str:
        with self._cond:
            state = self._machine.state
            if state in (State.STOPPING, State.STOPPED):
                return self._refuse(command, State.RUNNING)
            if self._desired is Desired.RUNNING:
                self._update_meta(command)
                result = "noop"
            else:
                self._desired = Desired.RUNNING
                self._meta = command
                if state is State.PAUSED:
                    log.info("Resuming agent", extra=self._log_fields(command))
                    self._transition(State.RUNNING)
                else:
                    log.info(
                        "Resuming agent: pending pause cancelled", extra=self._log_fields(command)
                    )
                    self._changed()
                result = "applied"
        self._publish()
        return result

    def _update_meta(self, command: Command) -> None:
        """A repeat of the desired state is a quiet no-op, but a reason that
        arrives with it (the control file after a signal) is kept. Caller
        holds _cond."""
        if command.reason or command.requested_by:
            self._meta = command
        log.debug("Already %s; %s command ignored", self._desired.value, command.action.value)

    def _handle_stop(self, command: Command) -> str:
        with self._cond:
            state = self._machine.state
            if state is State.STOPPING:
                immediate = True
            elif state is State.STOPPED:
                return "noop"
            else:
                immediate = False
                self._desired = Desired.STOPPED
                self._stop_deadline = self._clock() + self._stop_grace
                log.info(
                    "Stopping agent: finishing the current batch (grace %.0fs)",
                    self._stop_grace,
                    extra=self._log_fields(command),
                )
                # An idle worker leaves the gate now and reports WORKER_EXITED.
                self._transition(State.STOPPING)
        if immediate:
            log.warning("Second stop request: stopping now", extra=self._log_fields(command))
            self._abort_now()
        else:
            self._publish()
        return "applied"

    def _handle_stop_now(self, command: Command) -> str:
        with self._cond:
            if self._machine.state is State.STOPPED:
                return "noop"
            if self._machine.state is not State.STOPPING:
                self._desired = Desired.STOPPED
                self._transition(State.STOPPING)
        log.warning("Stopping now", extra=self._log_fields(command))
        self._abort_now()
        return "applied"

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

    def _finish_stop(self) -> None:
        with self._cond:
            if self._machine.state is State.STOPPED:
                return
            if self._machine.state is not State.STOPPING:
                self._transition(State.STOPPING)
            self._transition(State.STOPPED)
        log.info("Agent stopped")
        self._publish()

    def _handle_batch_done(self, command: Command) -> None:
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

    def _handle_worker_exited(self, command: Command) -> None:
        with self._cond:
            unexpected = self._machine.state not in (State.STOPPING, State.STOPPED)
            if unexpected:
                self.exit_code = 1
                self._desired = Desired.STOPPED
                self._transition(State.STOPPING)
        if unexpected:
            log.error("The worker stopped unexpectedly: %s", command.reason or "unknown error")
        self._finish_stop()

    def _handle_source_error(self, command: Command) -> None:
        with self._cond:
            changed = self._error != command.reason
            self._error = command.reason
        if changed:
            self._publish()

    def _handle_source_ok(self, command: Command) -> None:
        with self._cond:
            changed = bool(self._error)
            self._error = ""
        if changed:
            log.info("Source reachable again")
            self._publish()
