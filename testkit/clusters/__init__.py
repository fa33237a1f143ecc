"""Kubernetes cluster providers for tests/e2e and the benchmarks.

The e2e fixtures built on them are in tests/e2e/conftest.py.

`choose()` picks one from PULLING_AGENT_CLUSTER=node|controlplane|kind|existing, or by
default: node when this machine can run it (root, the Debian packages, ./bin from `make
tools`), else controlplane when `make tools` has built its binaries into ./bin, else none
(every e2e test then skips with the returned reason).  kind is used only when asked for by
name: it needs a registry to pull its node image.
An explicit choice that cannot work skips only for kind without Docker (a machine that cannot
run it); node on a machine that cannot run it, a missing ./bin for controlplane or a missing
KUBECONFIG for existing is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .base import BIN_DIR, Cluster, ProviderError, find_tool, wait_until
from .controlplane import ControlPlane, missing_binaries
from .existing import ExistingCluster, kubeconfig_path
from .kind import KindCluster, docker_engine_problem
from .node import NodeCluster, node_problem

__all__ = [
    "PROVIDERS",
    "Choice",
    "Cluster",
    "ControlPlane",
    "NodeCluster",
    "ProviderError",
    "choose",
    "wait_until",
]

PROVIDERS = ("node", "controlplane", "kind", "existing")
ENV_VAR = "PULLING_AGENT_CLUSTER"


@dataclass(frozen=True)
class Choice:
    """The provider to use, or why there is none (`skip`) or why the request is wrong (`error`)."""

    provider: str | None
    why: str
    skip: str | None = None
    error: str | None = None

    def create(self, workdir: Path) -> Cluster:
        if self.provider == "node":
            return NodeCluster(workdir)
        if self.provider == "controlplane":
            return ControlPlane(workdir)
        if self.provider == "kind":
            return KindCluster(workdir)
        if self.provider == "existing":
            return ExistingCluster()
        raise ProviderError(self.error or self.skip or "no cluster provider")


def _kind_problem() -> str | None:
    if find_tool("kind") is None:
        return "no kind binary ('make tools' builds ./bin/kind)"
    return docker_engine_problem()


def choose() -> Choice:
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested and requested not in PROVIDERS:
        return Choice(None, "", error=f"{ENV_VAR}={requested!r}: use one of {', '.join(PROVIDERS)}")
    if requested == "kind":
        problem = _kind_problem()
        if problem:
            return Choice(None, "", skip=f"{ENV_VAR}=kind but {problem}")
        return Choice("kind", f"{ENV_VAR}=kind")
    if requested == "node":
        problem = node_problem()
        if problem:
            return Choice(None, "", error=f"{ENV_VAR}=node but {problem}")
        return Choice("node", f"{ENV_VAR}=node")
    if requested == "controlplane":
        missing = missing_binaries()
        if missing:
            return Choice(
                None,
                "",
                error=f"{ENV_VAR}=controlplane but {', '.join(missing)} missing from "
                f"{BIN_DIR}: run 'make tools'",
            )
        return Choice("controlplane", f"{ENV_VAR}=controlplane")
    if requested == "existing":
        if kubeconfig_path() is None:
            return Choice(
                None,
                "",
                error=f"{ENV_VAR}=existing but neither $KUBECONFIG nor ~/.kube/config exists",
            )
        return Choice("existing", f"{ENV_VAR}=existing")
    problem = node_problem()
    if problem is None:
        return Choice("node", "default: this machine can run a node (kubelet + containerd)")
    missing = missing_binaries()
    if not missing:
        return Choice("controlplane", f"default: no node here ({problem}); control plane in ./bin")
    return Choice(
        None,
        "",
        skip=f"no e2e cluster: {problem}, and {', '.join(missing)} missing from ./bin "
        f"(run 'make tools'), and {ENV_VAR} is unset",
    )
