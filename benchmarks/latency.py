"""Pause latencies (signal, control file, mid-batch) and CPU while paused.

Every latency is measured from the bench's side: `time.perf_counter()` just
before the command (the `kill`, the `..data` swap) to the moment line 1 of
the agent's liveness file says `paused` (seen through inotify). Between runs
the agent is resumed through the same channel and a short random gap keeps
the command from landing at the same point of the agent's idle cycle.
"""

from __future__ import annotations

import os
import random
import signal
import time

from harness import (
    DEFAULT_INTERVALS,
    Figures,
    LatencyLog,
    Workspace,
    cpu_seconds,
    describe_ms,
    emit_latency_percentiles,
    percentile,
    say,
    watching,
)

from testkit.agentproc import AgentProcess, cli, write_kubelet_style

SIGNAL_RUNS = 50
FILE_RUNS = 30
FILE_POLLING_RUNS = 12
MIDBATCH_RUNS = 16
MIDBATCH_DOC_SECONDS = 0.2
MIDBATCH_BATCH = 10
PAUSED_CPU_SECONDS = 30.0

# Targets from ../shared/DESIGN.md, "Numbers we hold ourselves to".
SIGNAL_TARGET_MS = 50.0
FILE_TARGET_MS = 500.0
PAUSED_CPU_TARGET = 1.0
# The operator guide's promise for signals: "Immediate (< 1 second)".
GUIDE_SIGNAL_MS = 1000.0

POLL_INTERVAL = 2.0  # the CLI's default and the guide's
IDLE_AGENT_ARGS = ("--processor", "noop", *DEFAULT_INTERVALS)


def _gap(rng: random.Random) -> None:
    time.sleep(rng.uniform(0.05, 0.25))


def signal_latencies(agent: AgentProcess, runs: int, rng: random.Random) -> LatencyLog:
    """SIGUSR1 → `paused`, then SIGUSR2 → `running`, `runs` times."""
    log = LatencyLog()
    with watching(agent) as watcher:
        watcher.wait("running")
        for _ in range(runs):
            _gap(rng)
            wall, start = time.time(), time.perf_counter()
            os.kill(agent.pid, signal.SIGUSR1)
            log.add(agent, wall, start, watcher.wait("paused"))
            os.kill(agent.pid, signal.SIGUSR2)
            watcher.wait("running")
    return log


def file_latencies(agent: AgentProcess, gaps: list[float], timeout: float = 30.0) -> LatencyLog:
    """A kubelet-style `..data` swap to `pause` → `paused`; back to `resume`.

    The resume goes through the file too, and the bench waits until the
    agent has seen it: a polling agent that never read the `resume` between
    two `pause`s sees no change at all. With inotify off the resume is seen
    at one of the agent's poll ticks, so the gaps before each `pause` (one
    run per gap) should spread the swaps evenly over the poll cycle instead
    of always just after a tick.
    """
    log = LatencyLog()
    with watching(agent) as watcher:
        watcher.wait("running")
        for gap in gaps:
            time.sleep(gap)
            wall, start = time.time(), time.perf_counter()
            write_kubelet_style(agent.control_dir, {"state": "pause\n"})
            log.add(agent, wall, start, watcher.wait("paused", timeout))
            write_kubelet_style(agent.control_dir, {"state": "resume\n"})
            watcher.wait("running", timeout)
    return log


def bench_signal(figures: Figures, ws: Workspace, rng: random.Random) -> AgentProcess:
    """Signal latency on an idle agent; returns the agent (still running)."""
    agent = ws.agent("idle", IDLE_AGENT_ARGS)
    agent.start("running")
    say(f"signal: {SIGNAL_RUNS} x SIGUSR1 -> paused on an idle agent (pid {agent.pid})")
    log = signal_latencies(agent, SIGNAL_RUNS, rng)
    values = log.values
    say(f"signal: {describe_ms(values)}")
    if slow := log.slow_runs():
        say(f"signal: slow runs: {slow}")
    note = (
        f"{SIGNAL_RUNS} runs, idle agent, SIGUSR1 to 'paused' on liveness line 1; "
        f"baseline = the operator guide's 'Immediate (< 1 second)'"
    )
    emit_latency_percentiles(
        figures,
        "pause_latency_signal",
        values,
        {50: GUIDE_SIGNAL_MS, 99: GUIDE_SIGNAL_MS},
        target_ms=SIGNAL_TARGET_MS,
        note=note,
    )
    return agent


def bench_file(figures: Figures, ws: Workspace, rng: random.Random) -> None:
    """Control-file latency with inotify, against the same agent polling only."""
    agent = ws.agent("file-inotify", IDLE_AGENT_ARGS)
    agent.start("running")
    say(f"file: {FILE_RUNS} kubelet-style ..data swaps -> paused, inotify on (pid {agent.pid})")
    log = file_latencies(agent, [rng.uniform(0.05, 0.25) for _ in range(FILE_RUNS)])
    agent.stop()
    values = log.values
    say(f"file (inotify): {describe_ms(values)}")
    if slow := log.slow_runs():
        say(f"file (inotify): slow runs: {slow}")

    polling = ws.agent("file-polling", (*IDLE_AGENT_ARGS, "--no-inotify"))
    polling.start("running")
    say(f"file: {FILE_POLLING_RUNS} swaps with --no-inotify (poll every 2 s, the guide's)")
    # Evenly spread over the poll cycle (in random order): with a tick every
    # 2 s the latency is 2 s minus the gap, so these cover 0-2 s evenly.
    gaps = [(i + 0.5) * POLL_INTERVAL / FILE_POLLING_RUNS for i in range(FILE_POLLING_RUNS)]
    rng.shuffle(gaps)
    baseline = file_latencies(polling, gaps).values
    polling.stop()
    say(f"file (polling only): {describe_ms(baseline)}")
    note = (
        f"{FILE_RUNS} runs with inotify (poll interval 2 s); baseline: the same agent with "
        f"--no-inotify, {FILE_POLLING_RUNS} runs in this run, swaps spread evenly over its poll "
        "cycle"
    )
    emit_latency_percentiles(
        figures,
        "pause_latency_file",
        values,
        {pct: percentile(baseline, pct) * 1000 for pct in (50, 99)},
        target_ms=FILE_TARGET_MS,
        note=note,
    )


def bench_paused_cpu(figures: Figures, agent: AgentProcess) -> None:
    """CPU of a paused agent (default intervals) over PAUSED_CPU_SECONDS."""
    with watching(agent) as watcher:
        os.kill(agent.pid, signal.SIGUSR1)
        watcher.wait("paused")
    time.sleep(1.0)  # let the pause's own log and file writes pass
    say(f"paused cpu: sampling pid {agent.pid} for {PAUSED_CPU_SECONDS:.0f} s")
    before, t0 = cpu_seconds(agent.pid), time.monotonic()
    time.sleep(PAUSED_CPU_SECONDS)
    after, t1 = cpu_seconds(agent.pid), time.monotonic()
    if agent.state() != "paused":
        raise RuntimeError(f"agent left 'paused' during the sample: {agent.state()!r}")
    percent = (after - before) / (t1 - t0) * 100
    say(f"paused cpu: {after - before:.3f} s CPU in {t1 - t0:.1f} s = {percent:.3f}%")
    figures.emit(
        "paused_cpu_percent",
        percent,
        "% of one core",
        PAUSED_CPU_TARGET,
        target=f"< {PAUSED_CPU_TARGET:g}",
        note=(
            f"utime+stime from /proc/<pid>/stat over {PAUSED_CPU_SECONDS:.0f} s paused, "
            "heartbeat 5 s, poll 2 s (the defaults); baseline = the design limit"
        ),
        digits=3,
    )


def midbatch_latencies(
    ws: Workspace,
    interruptible: bool,
    rng: random.Random,
    *,
    batch: int = MIDBATCH_BATCH,
    doc_seconds: float = MIDBATCH_DOC_SECONDS,
    runs: int = MIDBATCH_RUNS,
) -> list[float]:
    """Pause latencies at `runs` points spread evenly over a batch of `batch`
    slow documents of `doc_seconds` each."""
    mode = "document" if interruptible else "batch"
    url = f"sqlite:///{ws.path(f'midbatch-{mode}-queue') / 'queue.db'}"
    # Enough documents for every run: a run takes at most two batches.
    cli("seed", "--count", str(max(2000, 3 * batch * runs)), "--source", url)
    agent = ws.agent(
        f"midbatch-{mode}",
        (
            "--processor",
            "slow",
            "--processor-option",
            f"seconds={doc_seconds:g}",
            "--processor-option",
            f"interruptible={str(interruptible).lower()}",
            "--batch-size",
            str(batch),
            *DEFAULT_INTERVALS,
        ),
        source=url,
    )
    agent.start("running")
    batch_seconds = batch * doc_seconds
    results = []
    with watching(agent) as watcher:
        # Points spread evenly over the batch that starts at each resume, in
        # random order (a document's remainder then covers a document evenly too).
        offsets = [(i + 0.5) * batch_seconds / runs for i in range(runs)]
        rng.shuffle(offsets)
        for offset in offsets:
            time.sleep(offset)
            start = time.perf_counter()
            os.kill(agent.pid, signal.SIGUSR1)
            results.append(watcher.wait("paused", timeout=batch_seconds * 10 + 10) - start)
            os.kill(agent.pid, signal.SIGUSR2)
            watcher.wait("running")
    agent.stop()
    return results


def bench_midbatch(figures: Figures, ws: Workspace, rng: random.Random) -> None:
    batch_seconds = MIDBATCH_BATCH * MIDBATCH_DOC_SECONDS
    say(
        f"midbatch: {MIDBATCH_RUNS} pauses at evenly spread points of {batch_seconds:g} s batches "
        f"({MIDBATCH_BATCH} docs x {MIDBATCH_DOC_SECONDS:g} s), document-boundary mode"
    )
    document = midbatch_latencies(ws, True, rng)
    say(f"midbatch (document boundary): {describe_ms(document)}")
    say("midbatch: the same, batch-boundary mode (interruptible=false)")
    batch = midbatch_latencies(ws, False, rng)
    say(f"midbatch (batch boundary): {describe_ms(batch)}")
    figures.emit(
        "pause_latency_midbatch_p50_ms",
        percentile(document, 50) * 1000,
        "ms",
        percentile(batch, 50) * 1000,
        note=(
            f"SIGUSR1 at points spread evenly over a batch of {MIDBATCH_BATCH} slow documents "
            f"x {MIDBATCH_DOC_SECONDS:g} s, {MIDBATCH_RUNS} runs each; value: document-boundary "
            "mode (interruptible=true), baseline: batch-boundary mode (interruptible=false)"
        ),
    )
