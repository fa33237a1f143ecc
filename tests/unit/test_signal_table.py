"""The signal channel: every signal has a meaning, and arrival order is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from pulling_agent.channels.signals import CRASH_SIGNALS, SIGNAL_TABLE, SignalChannel
from pulling_agent.commands import Action, Command, CommandQueue

#: Signals whose default action is not to terminate the process.
NOT_TERMINATING = {
    signal.SIGCHLD,
    signal.SIGCONT,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGURG,
    signal.SIGWINCH,
}
#: Python sets these to SIG_IGN at start-up: the write fails instead.
IGNORED_BY_PYTHON = {signal.SIGPIPE, signal.SIGXFSZ}
UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def test_every_signal_that_would_kill_the_agent_has_a_meaning() -> None:
    for signum in signal.valid_signals():
        accounted = (
            signum in SIGNAL_TABLE
            or signum in CRASH_SIGNALS
            or signum in NOT_TERMINATING | IGNORED_BY_PYTHON | UNCATCHABLE
        )
        assert accounted, f"signal {signum} would kill the agent without a word"
    assert not set(SIGNAL_TABLE) & set(CRASH_SIGNALS)


def test_the_operators_signals() -> None:
    assert SIGNAL_TABLE[signal.SIGUSR1] is Action.PAUSE
    assert SIGNAL_TABLE[signal.SIGUSR2] is Action.RESUME
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        assert SIGNAL_TABLE[sig] is Action.STOP
    assert SIGNAL_TABLE[signal.SIGALRM] is None


def drain(queue: CommandQueue, count: int, timeout: float = 10.0) -> list[Command]:
    items: list[Command] = []
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        item = queue.get(timeout=0.1)
        if isinstance(item, Command):
            items.append(item)
    return items


def test_signals_pending_together_in_python_keep_their_arrival_order() -> None:
    """While the main thread is inside one long C call, Python runs no
    handler; two signals that arrive meanwhile would then run in
    signal-number order (USR1 first). The channel keeps the order sent."""
    queue = CommandQueue()
    pid = os.getpid()
    with SignalChannel(queue):
        for _ in range(5):  # until both signals land inside one C call
            busy_from = time.time()
            sender = subprocess.Popen(
                [
                    "sh",
                    "-c",
                    f"date +%s.%N; kill -USR2 {pid}; sleep 0.001; kill -USR1 {pid}; date +%s.%N",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            sum(range(30_000_000))  # one C call holding the GIL, most of a second
            busy_until = time.time()
            out, _ = sender.communicate(timeout=30)
            commands = drain(queue, 2)
            first, last = (float(line) for line in out.split())
            if busy_from < first and last < busy_until:
                break
        else:
            raise AssertionError("the signals never arrived during the C call")
    assert [c.action for c in commands] == [Action.RESUME, Action.PAUSE]
    assert [c.reason for c in commands] == ["SIGUSR2", "SIGUSR1"]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
