"""How long a fleet takes to acknowledge a pause: `pulling-agent ctl pause --wait`, end to end.

    .venv/bin/python benchmarks/fleet_latency.py [--runs 10] [--replicas 3 10]

Run it under the node cluster's lock (one node cluster per machine):
    flock /run/pulling-agent-e2e.lock .venv/bin/python benchmarks/fleet_latency.py

Starts the e2e `node` cluster (control plane, kubelet, containerd, the agent image built
here), installs the chart (release `pulling-agent`, namespace `default`) with N replicas
(each its own SQLite from a Secret URL, the noop processor over 100000 demo documents, so
every replica is busy when the pause arrives) and measures, for each N:

fleet_pause_ack_<N>_replicas_p50_ms / _p99_ms
    from just before `pulling-agent ctl pause --wait` starts (a new process: the Python
    start and the client's import count) to its return with exit 0, every replica having
    reported `paused` for this request in the status ConfigMap.  Baseline: the operator
    guide's way, `control/control-agent.sh pause` as it was before the reports (main's copy
    at the time of writing: patch, `kubectl exec kill -USR1 1` in every pod, then `kubectl
    exec head -1 /tmp/health/liveness` in every pod until each says paused), timed the same
    way, same N, interleaved with the ctl runs.
fleet_pause_ack_script_<N>_replicas_p50_ms
    control-agent.sh as it is now (signals through exec as before, verification through the
    reports with kubectl get).  Baseline: the same exec-verifying script.

Each run is followed by an untimed `ctl resume --wait`.  Prints one skipped line per figure
with the reason where the node cluster cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from harness import Figures, describe_ms, percentile, say  # noqa: E402
from kubernetes import client  # noqa: E402

from testkit.clusters.base import BIN_DIR  # noqa: E402
from testkit.clusters.node import NodeCluster, node_problem  # noqa: E402

CTL = ROOT / ".venv" / "bin" / "pulling-agent"
SCRIPT = ROOT / "control" / "control-agent.sh"
#: The exec-verifying script of the guide's way, before the reports (main at 9dde56c).
BASELINE_COMMIT = "9dde56c"
REPLICAS = (3, 10)


def names(n: int) -> tuple[str, ...]:
    stems = (f"fleet_pause_ack_{n}_replicas", f"fleet_pause_ack_script_{n}_replicas")
    return tuple(f"{stem}_p{p}_ms" for stem in stems for p in (50, 99))


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {proc.returncode}: {proc.stderr[-500:]}")
    return elapsed


def reports(core: client.CoreV1Api) -> dict[str, str]:
    data = core.read_namespaced_config_map("agent-control-status", "default").data
    return dict(data or {})


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except client.ApiException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def measure(runs: int, counts: list[int], figures: Figures, rng: random.Random) -> None:
    old_script = Path(tempfile.mkdtemp(prefix="pa-bench-fleet-")) / "control-agent-exec.sh"
    old_script.write_text(
        subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:control/control-agent.sh"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pa-bench-node-") as tmp:
        cluster = NodeCluster(Path(tmp))
        say(f"fleet: starting a node cluster in {tmp}")
        cluster.start()
        try:
            env = {
                **cluster.env(),
                "KUBECTL": str(BIN_DIR / "kubectl"),
                "NO_COLOR": "1",
                "PATH": f"{CTL.parent}{os.pathsep}{cluster.env()['PATH']}",
            }
            env = {k: v for k, v in env.items() if not k.startswith("PULLING_AGENT_")}
            assert cluster.agent_image is not None
            repository, _, tag = cluster.agent_image.rpartition(":")
            with cluster.api_client() as api:
                core = client.CoreV1Api(api)
                core.create_namespaced_secret(
                    "default",
                    client.V1Secret(
                        metadata=client.V1ObjectMeta(name="queue"),
                        string_data={"url": "sqlite:////data/agent.db"},
                    ),
                )
                verb = "install"
                for n in counts:
                    subprocess.run(
                        [str(BIN_DIR / "helm"), verb, "pulling-agent",
                         str(ROOT / "charts" / "pulling-agent"),
                         "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                         "--set", f"replicaCount={n}", "--set", "source.existingSecret=queue",
                         "--set", "agent.seed=100000", "--set", "agent.processor=noop",
                         "--set", "resources.requests.cpu=10m",
                         "--wait", "--timeout", "600s"],
                        env=env, check=True, capture_output=True, text=True,
                    )  # fmt: skip
                    verb = "upgrade"
                    ctl = [str(CTL), "ctl"]
                    subprocess.run([*ctl, "resume", "--timeout", "300s"], env=env, check=True)
                    wait_for(lambda n=n: len(reports(core)) >= n, 300, f"{n} reports")
                    measure_n(n, runs, ctl, env, old_script, figures, rng)
        finally:
            cluster.stop()


def measure_n(
    n: int,
    runs: int,
    ctl: list[str],
    env: dict[str, str],
    old_script: Path,
    figures: Figures,
    rng: random.Random,
) -> None:
    resume = [*ctl, "resume", "--timeout", "300s"]
    samples: dict[str, list[float]] = {"ctl": [], "script": [], "exec": []}
    commands = {
        "ctl": [*ctl, "pause", "--timeout", "300s", "--reason", "bench"],
        "script": ["bash", str(SCRIPT), "pause", "--timeout", "300", "--reason", "bench"],
        "exec": ["bash", str(old_script), "pause", "--timeout", "300", "--reason", "bench"],
    }
    for i in range(runs):
        order = list(commands)
        rng.shuffle(order)
        for kind in order:
            time.sleep(rng.uniform(0.2, 0.6))
            samples[kind].append(timed(commands[kind], env))
            timed(resume, env)
        say(f"fleet: {n} replicas, run {i + 1}/{runs}")
    for kind, values in samples.items():
        say(f"fleet: {n} replicas, {kind}: {describe_ms(values)}")
    base = {p: percentile(samples["exec"], p) * 1000 for p in (50, 99)}
    common = (
        f"{n} replicas on one node, {runs} runs each, interleaved; baseline: control-agent.sh "
        f"verifying by kubectl exec into every pod (as at {BASELINE_COMMIT}), timed the same way"
    )
    for stem, kind, what in (
        (f"fleet_pause_ack_{n}_replicas", "ctl", "`pulling-agent ctl pause --wait`"),
        (f"fleet_pause_ack_script_{n}_replicas", "script", "control-agent.sh via the reports"),
    ):
        for p in (50, 99):
            figures.emit(
                f"{stem}_p{p}_ms", percentile(samples[kind], p) * 1000, "ms", base[p],
                note=f"{what}, start to return with every replica acknowledged; {common}",
            )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--replicas", type=int, nargs="+", default=list(REPLICAS))
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    figures = Figures()
    problem = node_problem()
    if problem:
        for n in args.replicas:
            for name in names(n):
                figures.skip(name, f"no node cluster here: {problem}")
        return 0
    measure(args.runs, sorted(args.replicas), figures, random.Random(args.seed))
    print(json.dumps({"note": "fleet: done"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
