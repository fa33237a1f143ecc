"""`make cluster-up` / `make cluster-down`: a node cluster (see node.py) for people.

    python -m testkit.clusters up [--workdir DIR]   # start it in the background
    python -m testkit.clusters status               # its processes, and the KUBECONFIG line
    python -m testkit.clusters down                 # stop it, leave the host clean

`up` starts from an empty work directory (default /var/tmp/pulling-agent-cluster, or
$PULLING_AGENT_CLUSTER_DIR); `down` keeps it (logs, certificates) for a look afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .base import BIN_DIR, ProviderError
from .node import CLUSTER_DIR, NodeCluster, node_problem, teardown_recorded
from .nodehost import HostError, Record, host_lock, leftovers, pid_alive


def up(workdir: Path) -> int:
    problem = node_problem()
    if problem:
        print(f"cluster-up: {problem}", file=sys.stderr)
        return 1
    record = Record.load()
    if record is not None and record.alive():
        print(
            f"cluster-up: a node cluster is already running (work dir {record.layout.workdir}); "
            "'make cluster-down' first",
            file=sys.stderr,
        )
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cluster = NodeCluster(workdir, detach=True)
    try:
        cluster.start()
    except ProviderError as exc:
        print(f"cluster-up: {exc}", file=sys.stderr)
        return 1
    print(f"cluster-up: {cluster.describe()}; started in {cluster.startup_seconds:.1f}s")
    print(f"cluster-up: image {cluster.agent_image} is loaded into the node")
    print("cluster-up: use it with:")
    print(f"export KUBECONFIG={cluster.kubeconfig} PATH={BIN_DIR}:$PATH")
    print("helm install pulling-agent charts/pulling-agent")
    return 0


def down() -> int:
    try:
        with host_lock():
            record = Record.load()
            if record is None:
                print("cluster-down: no node cluster is recorded on this machine")
                return 0
            teardown_recorded(record)
    except HostError as exc:
        print(f"cluster-down: {exc}", file=sys.stderr)
        return 1
    left = leftovers(record.layout)
    if left:
        print(f"cluster-down: left behind: {'; '.join(left)}", file=sys.stderr)
        return 1
    shutil.rmtree(Path(record.layout.workdir) / "containerd", ignore_errors=True)
    print(
        "cluster-down: stopped; its processes, mounts, network namespaces, iptables chains, "
        f"bridge and cgroups are gone (logs kept in {record.layout.workdir}/logs)"
    )
    return 0


def status() -> int:
    record = Record.load()
    if record is None:
        print("no node cluster is recorded on this machine")
        return 1
    for name, pid in record.pids.items():
        print(f"{name:24} pid {pid:<8} {'running' if pid_alive(pid) else 'gone'}")
    print(f"export KUBECONFIG={record.layout.workdir}/admin.kubeconfig PATH={BIN_DIR}:$PATH")
    return 0 if record.alive() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.clusters")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--workdir", type=Path, default=CLUSTER_DIR)
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.workdir.resolve())
    if args.command == "down":
        return down()
    return status()


if __name__ == "__main__":
    sys.exit(main())
