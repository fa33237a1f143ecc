"""The `existing` provider: whatever cluster $KUBECONFIG (or ~/.kube/config) points at.

Nothing is created or deleted besides what the tests themselves make (namespaces).  Set
PULLING_AGENT_IMAGE to an image of the agent that the cluster can pull for tests that run it,
and PULLING_AGENT_RUNS_PODS=0 if the cluster has no nodes that run pods.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client

from .base import Cluster, ProviderError


def kubeconfig_path() -> Path | None:
    """The first file of $KUBECONFIG, else ~/.kube/config; None if neither exists."""
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry and Path(entry).is_file():
            return Path(entry)
    default = Path.home() / ".kube" / "config"
    return default if default.is_file() else None


class ExistingCluster(Cluster):
    provider = "existing"

    def __init__(self) -> None:
        path = kubeconfig_path()
        if path is None:
            raise ProviderError("PULLING_AGENT_CLUSTER=existing but no KUBECONFIG file")
        super().__init__(path)
        self.runs_pods = os.environ.get("PULLING_AGENT_RUNS_PODS", "1") != "0"
        self.agent_image = os.environ.get("PULLING_AGENT_IMAGE") or None

    def start(self) -> None:
        with self.api_client() as api:
            try:
                client.VersionApi(api).get_code()
            except Exception as exc:
                raise ProviderError(
                    f"the cluster in {self.kubeconfig} does not answer: {exc}"
                ) from exc
