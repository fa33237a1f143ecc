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
    Workspace,
    cpu_seconds,
    describe_ms,
    emit_latency_percentiles,
    percentile,
    say,
    watching,
)

from tests.agentproc import AgentProcess, cli, write_kubelet_style

SIGNAL_RUNS = 50
FILE_RUNS = 30
FILE_POLLING_RUNS = 10
MIDBATCH_RUNS = 12
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


def signal_latencies(agent: AgentProcess, runs: int, rng: random.Random) -> list[float]:
    """SIGUSR1 → `paused`, then SIGUSR2 → `running`, `runs` times."""
    results = []
    with watching(agent) as watcher:
        watcher.wait("running")
        for _ in range(runs):
            _gap(rng)
            start = time.perf_counter()
            os.kill(agent.pid, signal.SIGUSR1)
            results.append(watcher.wait("paused") - start)
            os.kill(agent.pid, signal.SIGUSR2)
            watcher.wait("running")
    return results


def file_latencies(
    agent: AgentProcess, runs: int, rng: random.Random, gap: float, timeout: float = 30.0
) -> list[float]:
    """A kubelet-style `..data` swap to `pause` → `paused`; back to `resume`.

    The resume is seen at one of the agent's poll ticks when inotify is off:
    a random gap of up to `gap` seconds (the poll interval) spreads the next
    swap uniformly over the poll cycle instead of always just after a tick.
    """
    results = []
    with watching(agent) as watcher:
        watcher.wait("running")
        for _ in range(runs):
            time.sleep(rng.uniform(0.0, gap))
            start = time.perf_counter()
            write_kubelet_style(agent.control_dir, {"state": "pause\n"})
            results.append(watcher.wait("paused", timeout) - start)
            write_kubelet_style(agent.control_dir, {"state": "resume\n"})
            watcher.wait("running", timeout)
    return results


def bench_signal(figures: Figures, ws: Workspace, rng: random.Random) -> AgentProcess:
    """Signal latency on an idle agent; returns the agent (still running)."""
    agent = ws.agent("idle", IDLE_AGENT_ARGS)
    agent.start("running")
    say(f"signal: {SIGNAL_RUNS} x SIGUSR1 -> paused on an idle agent (pid {agent.pid})")
    values = signal_latencies(agent, SIGNAL_RUNS, rng)
    say(f"signal: {describe_ms(values)}")
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
    values = file_latencies(agent, FILE_RUNS, rng, gap=0.25)
    agent.stop()
    say(f"file (inotify): {describe_ms(values)}")

    polling = ws.agent("file-polling", (*IDLE_AGENT_ARGS, "--no-inotify"))
    polling.start("running")
    say(f"file: {FILE_POLLING_RUNS} swaps with --no-inotify (poll every 2 s, the guide's)")
    baseline = file_latencies(polling, FILE_POLLING_RUNS, rng, gap=POLL_INTERVAL)
    polling.stop()
    say(f"file (polling only): {describe_ms(baseline)}")
    note = (
        f"{FILE_RUNS} runs with inotify (poll interval 2 s); baseline: the same agent with "
        f"--no-inotify, {FILE_POLLING_RUNS} runs in this run"
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
    ws: Workspace, interruptible: bool, rng: random.Random
) -> tuple[list[float], int]:
    mode = "document" if interruptible else "batch"
    url = f"sqlite:///{ws.path(f'midbatch-{mode}-queue') / 'queue.db'}"
    # Enough documents for every run: a batch takes at most
    # MIDBATCH_BATCH * MIDBATCH_DOC_SECONDS and a run at most two of them.
    cli("seed", "--count", "2000", "--source", url)
    agent = ws.agent(
        f"midbatch-{mode}",
        (
            "--processor",
            "slow",
            "--processor-option",
            f"seconds={MIDBATCH_DOC_SECONDS:g}",
            "--processor-option",
            f"interruptible={str(interruptible).lower()}",
            "--batch-size",
            str(MIDBATCH_BATCH),
            *DEFAULT_INTERVALS,
        ),
        source=url,
    )
    agent.start("running")
    batch_seconds = MIDBATCH_BATCH * MIDBATCH_DOC_SECONDS
    results = []
    with watching(agent) as watcher:
        for _ in range(MIDBATCH_RUNS):
            # A uniform point in the batch that started at the resume.
            time.sleep(rng.uniform(0.05, batch_seconds - 0.05))
            start = time.perf_counter()
            os.kill(agent.pid, signal.SIGUSR1)
            results.append(watcher.wait("paused", timeout=batch_seconds * 10) - start)
            os.kill(agent.pid, signal.SIGUSR2)
            watcher.wait("running")
    done = int(agent.liveness().get("documents", "0") or 0)
    agent.stop()
    return results, done


def bench_midbatch(figures: Figures, ws: Workspace, rng: random.Random) -> None:
    batch_seconds = MIDBATCH_BATCH * MIDBATCH_DOC_SECONDS
    say(
        f"midbatch: {MIDBATCH_RUNS} pauses at random points of {batch_seconds:g} s batches "
        f"({MIDBATCH_BATCH} docs x {MIDBATCH_DOC_SECONDS:g} s), document-boundary mode"
    )
    document, _ = midbatch_latencies(ws, True, rng)
    say(f"midbatch (document boundary): {describe_ms(document)}")
    say("midbatch: the same, batch-boundary mode (interruptible=false)")
    batch, _ = midbatch_latencies(ws, False, rng)
    say(f"midbatch (batch boundary): {describe_ms(batch)}")
    figures.emit(
        "pause_latency_midbatch_p50_ms",
        percentile(document, 50) * 1000,
        "ms",
        percentile(batch, 50) * 1000,
        note=(
            f"SIGUSR1 at a uniform random point of a batch of {MIDBATCH_BATCH} slow documents "
            f"x {MIDBATCH_DOC_SECONDS:g} s, {MIDBATCH_RUNS} runs each; value: document-boundary "
            "mode (interruptible=true), baseline: batch-boundary mode (interruptible=false)"
        ),
    )
