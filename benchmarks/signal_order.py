"""Does the last signal win? Two different signals a millisecond apart, 200 times.

Each try sends the signal that the agent's current state already matches
(a no-op), then, 1 ms later (measured with a busy wait, never less), the one
that changes it: `kill -USR2; kill -USR1` on a running agent must end
`paused`, `kill -USR1; kill -USR2` on a paused one must end `running`. An
agent that applies the two in the wrong order ends where it started.

The try's final state is read once the expected state shows in the liveness
file and SETTLE_SECONDS more have passed (a reversed pair would show the
expected state for a moment, then leave it), or after TRY_TIMEOUT without
it. The agent is busy (a long queue, the default `digest` processor), which
is when a Python process is slowest to run its signal handlers.
"""

from __future__ import annotations

import contextlib
import signal
import time

from harness import Figures, Workspace, say, watching

from testkit.agentproc import AgentProcess, cli, send_signals

TRIES = 200
GAP_SECONDS = 0.001
SETTLE_SECONDS = 0.1
TRY_TIMEOUT = 2.0
QUEUE_DOCUMENTS = 300_000
TARGET_PERCENT = 100.0

_PAIRS = {
    # target state: (the no-op signal, the signal that must win)
    "paused": (signal.SIGUSR2, signal.SIGUSR1),
    "running": (signal.SIGUSR1, signal.SIGUSR2),
}


def last_signal_wins(agent: AgentProcess, tries: int) -> tuple[int, list[str]]:
    """(tries that ended in the last signal's state, a description of each miss)."""
    wins = 0
    misses: list[str] = []
    with watching(agent) as watcher:
        for number in range(tries):
            current = agent.state()
            target = "running" if current == "paused" else "paused"
            first, second = _PAIRS[target]
            send_signals(agent.pid, (first, second), GAP_SECONDS)
            with contextlib.suppress(TimeoutError):  # then the final state tells
                watcher.wait(target, timeout=TRY_TIMEOUT)
            time.sleep(SETTLE_SECONDS)
            final = agent.state()
            if final == target:
                wins += 1
            else:
                misses.append(f"try {number}: {first.name}, {second.name} -> {final}")
    return wins, misses


def bench_signal_order(figures: Figures, ws: Workspace) -> None:
    url = f"sqlite:///{ws.path('signal-order-queue') / 'queue.db'}"
    say(f"signal order: seeding {QUEUE_DOCUMENTS} documents")
    cli("seed", "--count", str(QUEUE_DOCUMENTS), "--source", url, timeout=600)
    agent = ws.agent("signal-order", ("--batch-size", "50"), source=url)
    agent.start("running")
    say(
        f"signal order: {TRIES} pairs of different signals {GAP_SECONDS * 1000:g} ms apart "
        f"to a busy agent (pid {agent.pid})"
    )
    wins, misses = last_signal_wins(agent, TRIES)
    agent.stop()
    percent = wins / TRIES * 100
    say(f"signal order: the last signal won {wins}/{TRIES} tries ({percent:.1f}%)")
    for miss in misses[:10]:
        say(f"signal order: {miss}")
    figures.emit(
        "signal_order_last_wins_percent",
        percent,
        "% of tries",
        TARGET_PERCENT,
        target=f"= {TARGET_PERCENT:g}",
        note=(
            f"{TRIES} tries, each two different signals (USR1/USR2) sent "
            f"{GAP_SECONDS * 1000:g} ms apart to a busy agent (digest processor, batch 50); "
            "a win when the final state is the last signal's; baseline = the target"
        ),
    )
