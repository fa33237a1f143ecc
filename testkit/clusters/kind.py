"""The `kind` provider: a kind cluster with the agent image loaded (needs a Docker engine).

Reuses the cluster named $PULLING_AGENT_KIND_CLUSTER (default `pulling-agent-e2e`) when it
already exists, and then leaves it alone; otherwise creates it and deletes it afterwards
(unless PULLING_AGENT_KEEP_CLUSTER=1).  The agent image is built from the Dockerfile at the
repository root as `pulling-agent:e2e` and loaded into the nodes with `kind load docker-image`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import REPO_ROOT, Cluster, ProviderError, find_tool, run_command

IMAGE = "pulling-agent:e2e"


def docker_engine_problem() -> str | None:
    """None when a Docker engine answers, else a one-line reason."""
    docker = find_tool("docker")
    if docker is None:
        return "no docker CLI on PATH"
    try:
        run_command([docker, "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except ProviderError:
        return "no Docker engine answers ('docker info' fails)"
    return None


class KindCluster(Cluster):
    provider = "kind"
    runs_pods = True
    agent_image = IMAGE

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "kind.kubeconfig")
        self.name = os.environ.get("PULLING_AGENT_KIND_CLUSTER", "pulling-agent-e2e")
        self.created = False
        kind = find_tool("kind")
        docker = find_tool("docker")
        if kind is None or docker is None:
            raise ProviderError("the kind provider needs kind ('make tools') and docker")
        self.kind, self.docker = kind, docker

    def start(self) -> None:
        clusters = run_command([self.kind, "get", "clusters"]).stdout.split()
        if self.name not in clusters:
            run_command(
                [self.kind, "create", "cluster", "--name", self.name, "--wait", "300s"],
                timeout=900,
            )
            self.created = True
        self.kubeconfig.write_text(
            run_command([self.kind, "get", "kubeconfig", "--name", self.name]).stdout
        )
        self.kubeconfig.chmod(0o600)
        if not (REPO_ROOT / "Dockerfile").is_file():
            raise ProviderError(f"no Dockerfile at {REPO_ROOT}: cannot build {IMAGE}")
        run_command([self.docker, "build", "-t", IMAGE, str(REPO_ROOT)], timeout=1800)
        run_command([self.kind, "load", "docker-image", IMAGE, "--name", self.name], timeout=900)

    def stop(self) -> None:
        if self.created and os.environ.get("PULLING_AGENT_KEEP_CLUSTER") != "1":
            self.created = False
            run_command([self.kind, "delete", "cluster", "--name", self.name], timeout=300)

    def describe(self) -> str:
        return f"kind cluster {self.name!r}"
