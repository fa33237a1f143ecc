"""One helm release of the chart in a test namespace, and the operator guide's shell.

Shared by the e2e modules (fixtures `make_release`, `release` and `running` in conftest.py):

    Release(cluster, namespace, workdir)
        .install(*helm_args) / .upgrade(*helm_args)   the chart, with the cluster's image
        .guide(command)          a command of the operator guide, verbatim, in bash, with a
                                 kubeconfig whose context namespace is the release's
        .configmap(name)         the control ConfigMap's data
    agent_pods(core, ns)         the Deployment's pods (label app=pulling-agent)
    ready_flags(release)         Ready of each agent pod that is not terminating
    expect_state(release, s)     every agent pod reaches `running` or `paused`: the kubelet's
                                 readiness follows, and the guide's checks say so
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from testkit.clusters import Cluster, wait_until
from testkit.clusters.base import BIN_DIR, REPO_ROOT, run_command

CHART = REPO_ROOT / "charts" / "pulling-agent"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
RELEASE = "pulling-agent"
#: the guide's way to name the agent pod
POD = "$(kubectl get pod -l app=pulling-agent -o jsonpath='{.items[0].metadata.name}')"


class Release:
    """One helm release of the chart in its own namespace, and the guide's shell."""

    def __init__(
        self, cluster: Cluster, namespace: str, workdir: Path, name: str = RELEASE
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.core = client.CoreV1Api(cluster.api_client())
        # The guide's commands have no -n: give them a kubeconfig whose context is our namespace.
        doc = yaml.safe_load(cluster.kubeconfig.read_text())
        for context in doc["contexts"]:
            context["context"]["namespace"] = namespace
        self.guide_kubeconfig = workdir / f"guide-{namespace}.kubeconfig"
        self.guide_kubeconfig.write_text(yaml.safe_dump(doc))
        self.guide_kubeconfig.chmod(0o600)

    def helm(self, *args: str) -> str:
        helm = BIN_DIR / "helm"
        if not helm.exists():
            pytest.skip("./bin/helm missing: run `make tools`")
        image: list[str] = []
        if self.cluster.agent_image and args[0] in ("install", "upgrade"):
            repository, _, tag = self.cluster.agent_image.rpartition(":")
            image = ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]
        proc = run_command(
            [str(helm), *args, "--namespace", self.namespace, *image],
            env=self.cluster.env(),
            timeout=300,
        )
        return proc.stdout

    def install(self, *args: str) -> str:
        return self.helm("install", self.name, str(CHART), *args)

    def install_replicas(self, replicas: int, *args: str) -> str:
        """Install with `replicas` agent pods.  More than one needs a shared source by the
        chart's rules; a URL from a Secret passes that check, and each pod keeps its own
        SQLite in its emptyDir: for tests where only the control of every pod matters."""
        self.core.create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="queue"),
                string_data={"url": "sqlite:////data/agent.db"},
            ),
        )
        return self.install(
            "--set", f"replicaCount={replicas}", "--set", "source.existingSecret=queue", *args
        )  # fmt: skip

    def upgrade(self, *args: str) -> str:
        return self.helm("upgrade", self.name, str(CHART), *args)

    def guide(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command of the operator guide, verbatim, with bash."""
        env = self.cluster.env(self.guide_kubeconfig)
        return run_command(["bash", "-euo", "pipefail", "-c", command], env=env, check=check)

    def configmap(self, name: str = "agent-control") -> dict[str, str]:
        data = self.core.read_namespaced_config_map(name, self.namespace).data
        return dict(data or {})

    def close(self) -> None:
        self.core.api_client.close()


def ctl_env(access_env: dict[str, str]) -> dict[str, str]:
    """A clean environment for the agent's CLI: no stray PULLING_AGENT_* from the caller."""
    env = {k: v for k, v in access_env.items() if not k.startswith("PULLING_AGENT_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    return env


def need_ctl() -> None:
    if not (VENV_BIN / "pulling-agent").exists():
        pytest.skip(".venv/bin/pulling-agent missing: pip install -e .")


def agent_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector="app=pulling-agent").items)


def ready_flags(release: Release) -> list[bool]:
    """Ready of each agent pod that is not being deleted."""
    pods = agent_pods(release.core, release.namespace)
    return [
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods
        if p.metadata.deletion_timestamp is None
    ]


def expect_state(release: Release, state: str) -> None:
    """Every agent pod reaches `state`: the liveness file says so, readiness follows.

    Both are waited for: right after a container restart the pod's Ready
    condition can still be the old container's, while the new agent's
    liveness file says `starting`.
    """
    ready = state == "running"
    expected = "running" if ready else "paused"

    def reached() -> bool:
        flags = ready_flags(release)
        if not flags or not all(x is ready for x in flags):
            return False
        liveness = release.guide(
            f"POD={POD}; kubectl exec $POD -- cat /tmp/health/liveness", check=False
        ).stdout
        return liveness.splitlines()[:1] == [expected]

    wait_until(
        reached,
        timeout=180,
        what=f"agent pods {'Ready' if ready else 'not Ready'} and {expected} ({state})",
    )
    check = release.guide(
        f"POD={POD}; kubectl exec $POD -- test -f /tmp/health/readiness "
        "&& echo RUNNING || echo PAUSED"
    ).stdout.strip()
    assert check == ("RUNNING" if ready else "PAUSED")
