"""`make bench`: how fast and how light the agent is, one JSON object a line.

    .venv/bin/python benchmarks/run.py [--only NAME ...] [--list] [--keep]

Each figure is a line `{"name", "value", "unit", "baseline", "ratio"}` (ratio
= value / baseline; `target` and `note` say what it is held to and how it
was measured) on stdout; a figure that cannot be measured here is a line
`{"name", "skipped": "<reason>"}`. Progress goes to stderr. See
benchmarks/README.md for what each figure means.

Exit status: 0 when every figure was measured or is unavailable on this
machine (no PostgreSQL, no control plane); 1 when a measurement failed (the
agent did not pause, exited, ...), after printing every other figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # for `testkit.agentproc` and `testkit.postgres_server`
    sys.path.insert(1, str(ROOT))

import batch_size  # noqa: E402
import drain  # noqa: E402
import latency  # noqa: E402
import scrape_cost  # noqa: E402
import signal_order  # noqa: E402
import throughput  # noqa: E402
from harness import Figures, Unavailable, Workspace, load_average, one_line, say  # noqa: E402

CONFIGMAP_SCRIPT = HERE / "configmap_latency.py"
CONFIGMAP_TIMEOUT = 300.0
PODS_SCRIPT = HERE / "pod_latency.py"
FLEET_SCRIPT = HERE / "fleet_latency.py"
FLEET_TIMEOUT = 3600.0
PODS_TIMEOUT = 1200.0


@dataclass
class Context:
    figures: Figures
    ws: Workspace
    rng: random.Random


@dataclass
class Group:
    name: str
    figures: tuple[str, ...]
    run: Callable[[Context], None]
    tags: tuple[str, ...] = ()  # other names `--only` selects it by
    default: bool = True  # run without --only


def run_signal_and_cpu(ctx: Context) -> None:
    agent = latency.bench_signal(ctx.figures, ctx.ws, ctx.rng)
    latency.bench_paused_cpu(ctx.figures, agent)
    agent.stop()


def run_script(ctx: Context, script: Path, names: tuple[str, ...], timeout: float) -> None:
    """Run a benchmark script that prints figure lines itself (it starts its own cluster)."""
    say(f"{script.stem}: running {script.relative_to(ROOT)}")
    try:
        proc = subprocess.run(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            stderr=None,  # its progress goes straight to our stderr
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{script.name} ran over {timeout:.0f}s") from None
    for raw in proc.stdout.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            say(f"{script.stem}: {raw}")
            continue
        if isinstance(line, dict) and "name" in line:
            ctx.figures.pass_through(line)
    if proc.returncode != 0 and not all(n in ctx.figures.written for n in names):
        raise RuntimeError(f"{script.name} exited {proc.returncode}")


CONFIGMAP_FIGURES = ("pause_latency_configmap_p50_ms", "pause_latency_configmap_p99_ms")
POD_FIGURES = (
    "pause_latency_configmap_pod_p50_ms",
    "pause_latency_configmap_pod_p99_ms",
    "readiness_after_pause_p50_s",
    "kubelet_configmap_refresh_s",
)

FLEET_FIGURES = tuple(
    f"fleet_pause_ack_{kind}{n}_replicas_p{p}_ms"
    for n in (3, 10)
    for kind in ("", "script_")
    for p in (50, 99)
)


GROUPS = (
    Group(
        "signal",
        ("pause_latency_signal_p50_ms", "pause_latency_signal_p99_ms", "paused_cpu_percent"),
        run_signal_and_cpu,
    ),
    Group(
        "signal_order",
        (
            "signal_order_last_wins_percent",
            "signal_order_last_wins_busy_percent",
            "signal_order_last_wins_idle_percent",
        ),
        lambda ctx: signal_order.bench_signal_order(ctx.figures, ctx.ws),
    ),
    Group(
        "file",
        ("pause_latency_file_p50_ms", "pause_latency_file_p99_ms"),
        lambda ctx: latency.bench_file(ctx.figures, ctx.ws, ctx.rng),
    ),
    Group(
        "midbatch",
        ("pause_latency_midbatch_p50_ms",),
        lambda ctx: latency.bench_midbatch(ctx.figures, ctx.ws, ctx.rng),
    ),
    Group(
        "throughput",
        throughput.FIGURES,
        lambda ctx: throughput.bench_sqlite(ctx.figures, ctx.ws),
        tags=("drain", "sqlite"),
    ),
    Group(
        "postgres",
        drain.figure_names(),
        lambda ctx: drain.bench_postgres(ctx.figures, ctx.ws),
        tags=("drain",),
    ),
    Group(
        "batchsize",
        batch_size.FIGURES,
        lambda ctx: batch_size.bench_batch_size(ctx.figures, ctx.ws, ctx.rng),
        default=False,
    ),
    Group(
        "configmap",
        CONFIGMAP_FIGURES,
        lambda ctx: run_script(ctx, CONFIGMAP_SCRIPT, CONFIGMAP_FIGURES, CONFIGMAP_TIMEOUT),
    ),
    Group(
        "pods",
        POD_FIGURES,
        lambda ctx: run_script(ctx, PODS_SCRIPT, POD_FIGURES, PODS_TIMEOUT),
    ),
    Group(
        "scrape",
        ("scrape_bytes_per_agent", "series_per_agent"),
        lambda ctx: scrape_cost.bench_scrape(ctx.figures, ctx.ws),
    ),
    Group(
        "fleet",
        FLEET_FIGURES,
        lambda ctx: run_script(ctx, FLEET_SCRIPT, FLEET_FIGURES, FLEET_TIMEOUT),
    ),
)


def select(only: list[str]) -> list[Group]:
    """Groups named by `--only` (a group name, or any figure name of it)."""
    if not only:
        return [group for group in GROUPS if group.default]
    return [
        group
        for group in GROUPS
        if any(name in (group.name, *group.tags) or name in group.figures for name in only)
    ]


def unknown_names(only: list[str]) -> list[str]:
    known = {n for g in GROUPS for n in (g.name, *g.tags, *g.figures)}
    return [name for name in only if name not in known]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="a group (signal, signal_order, file, midbatch, throughput, postgres, configmap, "
        "pods, scrape, fleet; drain = throughput and postgres; batchsize, not in the default "
        "run) or a figure name; repeatable",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and figures")
    parser.add_argument("--keep", action="store_true", help="keep the agents' directories")
    parser.add_argument("--seed", type=int, default=5, help="random seed for the gaps")
    args = parser.parse_args(argv)
    if args.list:
        for group in GROUPS:
            tags = f" (also {', '.join(group.tags)})" if group.tags else ""
            tags += "" if group.default else " (only with --only)"
            print(f"{group.name}{tags}: {', '.join(group.figures)}")
        return 0
    if unknown := unknown_names(args.only):
        parser.error(f"unknown --only {', '.join(unknown)}; see --list")
    groups = select(args.only)
    venv_agent = Path(sys.executable).parent / "pulling-agent"
    if not venv_agent.exists():
        print(f"run.py: {venv_agent} not found; run `make install` first", file=sys.stderr)
        return 1

    figures = Figures()
    started = time.monotonic()
    say(f"start: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {load_average()}")
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        say("the machine is busy: wall-clock figures (throughput above all) will be noisy")
    failed = False
    with Workspace(keep=args.keep) as ws:
        ctx = Context(figures, ws, random.Random(args.seed))
        for group in groups:
            t0 = time.monotonic()
            try:
                group.run(ctx)
            except Unavailable as exc:
                reason = str(exc)
            except Exception as exc:
                failed = True
                reason = f"error: {type(exc).__name__}: {exc}"
                say(f"{group.name}: {one_line(reason, 2000)}")
            else:
                reason = "not measured (the benchmark printed no figure)"
            for name in group.figures:
                if name not in figures.written:
                    figures.skip(name, reason)
            say(f"{group.name}: {time.monotonic() - t0:.0f} s, {load_average()}")
    say(f"done in {time.monotonic() - started:.0f} s, {load_average()}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
