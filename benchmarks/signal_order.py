"""Does the last signal win? Two different signals a millisecond apart, 200 times.

Each try sends SIGUSR1 and SIGUSR2 in one order or the other (alternating),
the second at least GAP_SECONDS after the first (slept, never less),
to an agent that is running: `kill -USR2; kill -USR1` must end `paused`,
`kill -USR1; kill -USR2` must end `running`, from either start. Half the
tries go to a busy agent (a long queue and a CPU-bound processor, `slow`
with `cpu=true`: its worker thread holds Python's GIL, which is when
Python is slowest to run its signal handlers), half to an idle one (an
empty queue: every thread asleep, so the kernel must first wake one to
deliver the signal).

The try's final state is read once the expected state shows in the
liveness file and SETTLE_SECONDS more have passed (a pair applied in the
wrong order shows the expected state for a moment, then leaves it), or
after TRY_TIMEOUT without it. Before each try the agent is resumed and left
RESET_SECONDS to get busy again.

What no program can order: when the agent is not scheduled between the two
signals (the kernel has not woken any of its threads within the gap), both
are pending together and the kernel hands them over at once, the later
numbered SIGUSR2's handler first (see pulling_agent/channels/signals.py):
such tries end `paused` whatever the order sent, so they show as misses of
the USR1,USR2 order only. The counts printed per series and order tell them
from the misses of Python's own reordering (USR2,USR1 ending `running`).
"""

from __future__ import annotations

import contextlib
import signal
import time

from harness import Figures, Workspace, say, watching

from testkit.agentproc import CPU_BOUND_ARGS, AgentProcess, cli, send_signals

TRIES = 200
GAP_SECONDS = 0.001
SETTLE_SECONDS = 0.1
RESET_SECONDS = 0.02
TRY_TIMEOUT = 2.0
QUEUE_DOCUMENTS = 100_000
BUSY_ARGS = (*CPU_BOUND_ARGS, "--batch-size", "10")
TARGET_PERCENT = 100.0

#: (first, last) and the state the last one asks for.
PAIRS = (
    ((signal.SIGUSR2, signal.SIGUSR1), "paused"),
    ((signal.SIGUSR1, signal.SIGUSR2), "running"),
)


def last_signal_wins(agent: AgentProcess, tries: int) -> dict[str, list[bool]]:
    """For each order ("USR2,USR1", "USR1,USR2"): did each try end in the last signal's state?"""
    wins: dict[str, list[bool]] = {}
    with watching(agent) as watcher:
        for number in range(tries):
            if agent.state() != "running":
                agent.signal(signal.SIGUSR2)
                watcher.wait("running", timeout=TRY_TIMEOUT)
            time.sleep(RESET_SECONDS)
            pair, target = PAIRS[number % 2]
            send_signals(agent.pid, pair, GAP_SECONDS)
            with contextlib.suppress(TimeoutError):  # then the final state tells
                watcher.wait(target, timeout=TRY_TIMEOUT)
            time.sleep(SETTLE_SECONDS)
            order = ",".join(sig.name.removeprefix("SIG") for sig in pair)
            wins.setdefault(order, []).append(agent.state() == target)
    return wins


def series(
    ws: Workspace, name: str, source: str, args: tuple[str, ...], tries: int
) -> dict[str, list[bool]]:
    agent = ws.agent(f"signal-order-{name}", args, source=source)
    agent.start("running")
    wins = last_signal_wins(agent, tries)
    agent.stop()
    for order, results in wins.items():
        say(f"signal order, {name} agent, {order}: {sum(results)}/{len(results)} ended as the last")
    return wins


def bench_signal_order(figures: Figures, ws: Workspace) -> None:
    busy_url = f"sqlite:///{ws.path('signal-order-busy-queue') / 'queue.db'}"
    say(f"signal order: seeding {QUEUE_DOCUMENTS} documents for the busy agent")
    cli("seed", "--count", str(QUEUE_DOCUMENTS), "--source", busy_url, timeout=600)
    idle_url = f"sqlite:///{ws.path('signal-order-idle-queue') / 'queue.db'}"
    say(
        f"signal order: {TRIES} pairs of different signals {GAP_SECONDS * 1000:g} ms apart, "
        "half to a busy agent, half to an idle one"
    )
    results: dict[str, list[bool]] = {}
    for name, url, args in (("busy", busy_url, BUSY_ARGS), ("idle", idle_url, ())):
        wins = series(ws, name, url, args, TRIES // 2)
        results[name] = [win for order in wins.values() for win in order]
    every = results["busy"] + results["idle"]
    percent = sum(every) / len(every) * 100
    say(f"signal order: the last signal won {sum(every)}/{len(every)} tries ({percent:.1f}%)")
    note = (
        f"{TRIES} tries, each SIGUSR1 and SIGUSR2 (both orders in turn) sent "
        f"{GAP_SECONDS * 1000:g} ms apart (slept) to a running agent, half busy (a CPU-bound "
        "processor holding the GIL), half idle (empty queue); a win when the final state is "
        "the last signal's; baseline = the target"
    )
    figures.emit(
        "signal_order_last_wins_percent",
        percent,
        "% of tries",
        TARGET_PERCENT,
        target=f"= {TARGET_PERCENT:g}",
        note=note,
    )
    for name, wins in results.items():
        figures.emit(
            f"signal_order_last_wins_{name}_percent",
            sum(wins) / len(wins) * 100,
            "% of tries",
            TARGET_PERCENT,
            note=f"the {name} half of signal_order_last_wins_percent",
        )
