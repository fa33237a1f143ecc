"""The controller: commands in, state out, with the worker's gate driven by the test.

The test plays the worker's part through the gate (`wait_for_batch`,
`may_start_document`, `batch_finished`) and sends commands and reports through
the real queue to a real controller running on its own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pulling_agent.commands import Action, Command, CommandQueue, CommandResult, Report, ReportKind
from pulling_agent.controller import Controller
from pulling_agent.snapshot import Listener, Snapshot, Stats
from pulling_agent.state import Desired, State


class Recorder(Listener):
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.results: list[tuple[Action, str, CommandResult]] = []
        self.lock = threading.Lock()

    def publish(self, snapshot: Snapshot) -> None:
        with self.lock:
            self.snapshots.append(snapshot)

    def command_handled(self, command: Command, result: CommandResult) -> None:
        with self.lock:
            self.results.append((command.action, command.channel, result))


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class Harness:
    def __init__(
        self,
        initial: Command | None = None,
        grace: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = CommandQueue()
        self.recorder = Recorder()
        self.aborted = threading.Event()
        self.controller = Controller(
            self.queue,
            Stats(),
            [self.recorder],
            heartbeat_interval=0.05,
            stop_grace_seconds=grace,
            on_abort=self.aborted.set,
            clock=clock,
        )
        self.controller.start(initial)
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.exit_code = self.controller.run()

    def send(self, action: Action, channel: str = "test", **kw: str) -> None:
        self.queue.put(Command(action, channel=channel, **kw))

    def report(self, kind: ReportKind, error: str = "") -> None:
        self.queue.put(Report(kind, error))

    def wait_state(self, state: State) -> None:
        wait_until(lambda: self.controller.state is state, f"state {state}")

    def result_of(self, action: Action) -> CommandResult:
        wait_until(lambda: any(a is action for a, _, _ in self.recorder.results), f"{action}")
        return [r for a, _, r in self.recorder.results if a is action][-1]

    def finish(self) -> None:
        if self.controller.state is not State.STOPPED:
            self.send(Action.STOP_NOW)
        self.thread.join(timeout=10)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.finish()


def test_starts_running_without_a_desired_pause(harness: Harness) -> None:
    assert harness.controller.state is State.RUNNING
    assert harness.controller.wait_for_batch() is True


def test_starts_paused_when_desired_state_at_start_is_pause() -> None:
    h = Harness(Command(Action.PAUSE, channel="file", reason="maintenance"))
    try:
        assert h.controller.state is State.PAUSED
        first = h.recorder.snapshots[0]
        assert first.state is State.PAUSED and first.reason == "maintenance"
        assert first.paused_since is not None
    finally:
        h.finish()


def test_pause_while_idle_takes_effect_at_once(harness: Harness) -> None:
    harness.send(Action.PAUSE, reason="db backup", requested_by="ops")
    harness.wait_state(State.PAUSED)
    snap = harness.controller.snapshot()
    assert (snap.desired, snap.reason, snap.requested_by) == (Desired.PAUSED, "db backup", "ops")
    assert harness.result_of(Action.PAUSE) is CommandResult.APPLIED


def test_pause_during_a_batch_waits_for_the_batch_boundary(harness: Harness) -> None:
    assert harness.controller.wait_for_batch()
    harness.send(Action.PAUSE)
    wait_until(lambda: harness.controller.desired is Desired.PAUSED, "desired paused")
    assert harness.controller.state is State.RUNNING  # pending
    assert harness.controller.may_start_document(interruptible=False) is True
    assert harness.controller.may_start_document(interruptible=True) is False
    assert harness.controller.may_finish_batch() is True
    harness.controller.batch_finished()
    harness.wait_state(State.PAUSED)


def test_a_batch_claimed_ahead_goes_on_only_while_running(harness: Harness) -> None:
    """The worker holds the next batch (claimed with the last one's end): it
    may go on while nothing asks otherwise; once a pause is pending it may
    not, and the agent stays busy (not PAUSED) until it has released that
    batch and reported the boundary."""
    assert harness.controller.wait_for_batch()
    assert harness.controller.continue_batch() is True
    harness.send(Action.PAUSE)
    wait_until(lambda: harness.controller.desired is Desired.PAUSED, "desired paused")
    assert harness.controller.continue_batch() is False
    time.sleep(0.05)
    assert harness.controller.state is State.RUNNING  # still busy: nothing released yet
    harness.controller.batch_finished()
    harness.wait_state(State.PAUSED)
    assert harness.controller.continue_batch() is False


def test_resume_cancels_a_pending_pause(harness: Harness) -> None:
    assert harness.controller.wait_for_batch()
    harness.send(Action.PAUSE)
    wait_until(lambda: harness.controller.desired is Desired.PAUSED, "desired paused")
    harness.send(Action.RESUME)
    wait_until(lambda: harness.controller.desired is Desired.RUNNING, "desired running")
    harness.controller.batch_finished()
    # The BATCH_DONE report is handled, and the agent is still running.
    wait_until(lambda: harness.queue.empty(), "queue drained")
    time.sleep(0.05)
    assert harness.controller.state is State.RUNNING
    assert harness.controller.wait_for_batch() is True


def test_repeat_of_desired_state_is_a_quiet_noop(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.send(Action.PAUSE)
    harness.wait_state(State.PAUSED)
    harness.send(Action.PAUSE, channel="file")
    wait_until(lambda: len(harness.recorder.results) == 2, "second result")
    assert harness.recorder.results[-1] == (Action.PAUSE, "file", CommandResult.NOOP)
    assert "Cannot" not in caplog.text
    harness.send(Action.RESUME)
    harness.wait_state(State.RUNNING)
    harness.send(Action.RESUME)
    wait_until(lambda: len(harness.recorder.results) == 4, "fourth result")
    assert harness.recorder.results[-1][2] is CommandResult.NOOP


def test_noop_repeat_keeps_a_reason_that_arrives_with_it(harness: Harness) -> None:
    harness.send(Action.PAUSE, channel="signal", reason="SIGUSR1")
    harness.wait_state(State.PAUSED)
    harness.send(Action.PAUSE, channel="file", reason="backup", requested_by="alice")
    wait_until(lambda: harness.controller.snapshot().reason == "backup", "reason kept")
    assert harness.controller.snapshot().requested_by == "alice"


def test_paused_worker_blocks_until_resume(harness: Harness) -> None:
    harness.send(Action.PAUSE)
    harness.wait_state(State.PAUSED)
    got: list[bool] = []
    worker = threading.Thread(target=lambda: got.append(harness.controller.wait_for_batch()))
    worker.start()
    worker.join(timeout=0.2)
    assert worker.is_alive() and not got  # blocked, not polling
    harness.send(Action.RESUME)
    worker.join(timeout=10)
    assert got == [True]


def test_stop_while_idle_lets_the_worker_leave_and_stops(harness: Harness) -> None:
    harness.send(Action.STOP)
    harness.wait_state(State.STOPPING)
    assert harness.controller.wait_for_batch() is False
    harness.report(ReportKind.WORKER_EXITED)
    harness.wait_state(State.STOPPED)
    harness.thread.join(timeout=10)
    assert harness.exit_code == 0
    assert not harness.aborted.is_set()


def test_commands_while_stopping_are_refused_with_both_states(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    assert harness.controller.wait_for_batch()
    harness.send(Action.STOP)
    harness.wait_state(State.STOPPING)
    harness.send(Action.RESUME)
    assert harness.result_of(Action.RESUME) is CommandResult.REFUSED
    harness.send(Action.PAUSE)
    assert harness.result_of(Action.PAUSE) is CommandResult.REFUSED
    assert "Cannot resume from STOPPING state" in caplog.text
    assert "Cannot pause from STOPPING state" in caplog.text


def test_stop_during_batch_finishes_it_within_grace() -> None:
    h = Harness(grace=30)
    try:
        assert h.controller.wait_for_batch()
        h.send(Action.STOP)
        h.wait_state(State.STOPPING)
        assert h.controller.may_start_document(interruptible=True) is True  # finish the batch
        h.controller.batch_finished()
        assert h.controller.wait_for_batch() is False
        h.report(ReportKind.WORKER_EXITED)
        h.wait_state(State.STOPPED)
        assert not h.aborted.is_set()
    finally:
        h.finish()


def test_grace_deadline_releases_the_batch_in_flight() -> None:
    now = [1000.0]
    h = Harness(grace=10.0, clock=lambda: now[0])  # the grace period passes on this clock
    try:
        assert h.controller.wait_for_batch()
        h.send(Action.STOP)
        h.wait_state(State.STOPPING)
        now[0] += 9.0
        assert h.controller.may_finish_batch() is True  # within the grace period
        now[0] += 2.0
        wait_until(h.aborted.is_set, "abort after the grace period")
        h.wait_state(State.STOPPED)
        assert h.controller.may_start_document(interruptible=False) is False
        assert h.controller.may_finish_batch() is False
    finally:
        h.finish()


def test_second_stop_stops_at_once(harness: Harness) -> None:
    assert harness.controller.wait_for_batch()
    harness.send(Action.STOP, channel="signal")
    harness.send(Action.STOP, channel="signal")
    wait_until(harness.aborted.is_set, "abort")
    harness.wait_state(State.STOPPED)


def test_unexpected_worker_exit_stops_with_failure(harness: Harness) -> None:
    harness.report(ReportKind.WORKER_EXITED, "RuntimeError: boom")
    harness.wait_state(State.STOPPED)
    harness.thread.join(timeout=10)
    assert harness.exit_code == 1


def test_source_error_turns_readiness_off_until_ok(harness: Harness) -> None:
    harness.report(ReportKind.SOURCE_ERROR, "claim: connection refused")
    wait_until(lambda: harness.controller.snapshot().error != "", "error recorded")
    assert harness.controller.snapshot().ready is False
    harness.report(ReportKind.SOURCE_OK)
    wait_until(lambda: harness.controller.snapshot().ready, "ready again")


def test_heartbeat_keeps_publishing_while_paused(harness: Harness) -> None:
    harness.send(Action.PAUSE)
    harness.wait_state(State.PAUSED)
    count = len(harness.recorder.snapshots)
    wait_until(lambda: len(harness.recorder.snapshots) >= count + 3, "three heartbeats")
    assert all(s.state is State.PAUSED for s in harness.recorder.snapshots[count:])


def test_declared_state_follows_file_and_configmap_not_signals(harness: Harness) -> None:
    harness.send(Action.PAUSE, channel="signal")
    harness.wait_state(State.PAUSED)
    assert harness.controller.snapshot().declared is Desired.RUNNING  # the mismatch to alert on
    harness.send(Action.PAUSE, channel="configmap")
    wait_until(lambda: harness.controller.snapshot().declared is Desired.PAUSED, "declared")
    harness.send(Action.RESUME, channel="signal")
    harness.wait_state(State.RUNNING)
    assert harness.controller.snapshot().declared is Desired.PAUSED
    harness.send(Action.RESUME, channel="file")
    wait_until(lambda: harness.controller.snapshot().declared is Desired.RUNNING, "declared")
