"""control/control-agent.sh against a real cluster, run with bash and ./bin/kubectl.

A pod that never runs (no kubelet on controlplane; elsewhere a nodeSelector that matches no
node) cannot be exec'ed into: the script must still set the ConfigMap, say for each pod that
it cannot exec into it, and exit with its verification-failed code (3). Where pods run, two
replicas are each signalled and each verified, and `status` shows both.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from testkit.clusters import Cluster, wait_until
from testkit.clusters.base import BIN_DIR, REPO_ROOT
from tests.e2e.conftest import MakeNamespace, ServiceAccountAccessFactory
from tests.e2e.release import Release

SCRIPT = REPO_ROOT / "control" / "control-agent.sh"
AGENT_PODS = "app.kubernetes.io/instance=pulling-agent,app.kubernetes.io/component=agent"
EXIT_UNVERIFIED = 3
WAIT = 300.0


def script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with bash, ./bin/kubectl and the admin KUBECONFIG (set by conftest)."""
    full_env = {**os.environ, "KUBECTL": str(BIN_DIR / "kubectl"), "NO_COLOR": "1", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
        check=False,
    )


def agent_pods(release: Release) -> list[str]:
    pods = release.core.list_namespaced_pod(release.namespace, label_selector=AGENT_PODS).items
    return sorted(p.metadata.name for p in pods)


@pytest.fixture
def release(cluster: Cluster, make_namespace: MakeNamespace, tmp_path: Path) -> Iterator[Release]:
    r = Release(cluster, make_namespace("script", pod_security="restricted"), tmp_path)
    yield r
    r.close()


def test_pause_sets_the_configmap_and_names_pods_that_have_not_started(
    release: Release,
) -> None:
    """A pod that never runs (on any provider: its nodeSelector matches no node) cannot be
    signalled, and runs no agent to wait for: the script sets the ConfigMap, says for the pod
    that it cannot exec into it and that it has not started, and exits 0 (it starts paused).

    Changed with the status reports (issue 13): this pod used to be waited for until
    --timeout, then exit 3; `pulling-agent ctl pause` and the script now agree that only
    started pods must acknowledge."""
    release.install("--set-string", "nodeSelector.pulling-agent-e2e/nowhere=true")
    pods = wait_until(lambda: agent_pods(release), timeout=WAIT, what="the chart's agent pod")

    proc = script(
        "pause", "-n", release.namespace, "--reason", "e2e maintenance", "--by", "tester",
        "--timeout", "3s",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Pausing agent...\nConfigMap updated to 'pause'\n")
    for pod in pods:
        assert f"Warning: cannot exec into pod {pod} to signal it (" in proc.stderr
    assert f"exec unavailable for {len(pods)} of {len(pods)} pods" in proc.stderr
    assert (
        f"Not started (they read the ConfigMap when they start): {' '.join(pods)}\n"
        "No running pods to verify: they follow the ConfigMap when they start\n"
    ) in proc.stdout
    data = release.configmap()
    assert (data["state"], data["reason"], data["requested-by"]) == (
        "pause",
        "e2e maintenance",
        "tester",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["requested-at"])

    # status: the ConfigMap's state and reason; the pods cannot be read.
    proc = script("status", "-n", release.namespace)
    assert proc.returncode == EXIT_UNVERIFIED, proc.stdout + proc.stderr
    assert (
        'ConfigMap agent-control: state=pause reason="e2e maintenance" requested-by=tester '
        in proc.stdout
    )
    for pod in pods:
        shown = f"Pod {pod}: UNHEALTHY (phase Pending)\n    cannot read /tmp/health/liveness: "
        assert shown in proc.stdout


def test_release_scoped_selector_and_no_pods(release: Release) -> None:
    """Another release's pods are not this release's: nothing to signal, exit 0."""
    release.install()
    proc = script("resume", "-n", release.namespace, "--release", "other-release", "--timeout", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "No pods match app.kubernetes.io/instance=other-release,app.kubernetes.io/component=agent"
        f" in namespace {release.namespace}: nothing to signal or verify;" in proc.stdout
    )
    assert release.configmap()["state"] == "resume"


def test_a_second_release_is_controlled_through_its_own_configmap(
    release: Release, cluster: Cluster, tmp_path: Path
) -> None:
    """`--release` finds that release's ConfigMap (the chart labels it): the other is untouched."""
    release.install()
    second = Release(cluster, release.namespace, tmp_path, "prod")
    second.install("--set", "replicaCount=0")  # no pods: nothing to signal on any provider
    try:
        proc = script("pause", "-n", release.namespace, "--release", "prod", "--reason", "e2e")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert second.configmap("prod-pulling-agent-control")["state"] == "pause"
        assert release.configmap() == {"state": "running"}
        proc = script("status", "-n", release.namespace, "--release", "prod")
        assert 'ConfigMap prod-pulling-agent-control: state=pause reason="e2e"' in proc.stdout
        # The guide's release still gets agent-control.
        proc = script("status", "-n", release.namespace)
        assert "ConfigMap agent-control: state=running" in proc.stdout
    finally:
        second.close()


def test_missing_configmap_is_created_like_the_guides_apply(
    cluster: Cluster, make_namespace: MakeNamespace
) -> None:
    ns = make_namespace("bare")
    proc = script("pause", "-n", ns, "--timeout", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ConfigMap agent-control did not exist in namespace {ns}; created it" in proc.stderr
    with cluster.api_client() as api:
        data = client.CoreV1Api(api).read_namespaced_config_map("agent-control", ns).data
    assert data["state"] == "pause"


def test_forbidden_update_fails_with_kubectls_reason(
    release: Release, service_account_access: ServiceAccountAccessFactory
) -> None:
    """As the agent's account (read-only on the ConfigMap): exit 1, nothing claimed."""
    release.install()
    access = service_account_access(release.namespace, "pulling-agent", create=False)
    proc = script("pause", "-n", release.namespace, KUBECONFIG=str(access.kubeconfig))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"✗ cannot update ConfigMap agent-control in namespace {release.namespace}"
    )
    assert 'cannot patch resource "configmaps"' in last
    assert "updated" not in proc.stdout
    assert release.configmap()["state"] == "running"


@pytest.mark.requires_pods
def test_pause_status_resume_with_two_replicas(release: Release) -> None:
    release.install_replicas(
        2, "--set", "agent.seed=100000", "--set", "agent.logFormat=text",
        "--wait", "--timeout", "300s",
    )  # fmt: skip
    pods = agent_pods(release)
    assert len(pods) == 2

    proc = script("pause", "-n", release.namespace, "--reason", "e2e", "--timeout", "120")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for pod in pods:
        assert f"SIGUSR1 signal sent to pod {pod}" in proc.stdout
    assert "✓ Agent successfully paused (2 of 2 pods)" in proc.stdout

    proc = script("status", "-n", release.namespace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'ConfigMap agent-control: state=pause reason="e2e"' in proc.stdout
    for pod in pods:
        assert f"Pod {pod}: PAUSED\n    paused\n" in proc.stdout
    assert proc.stdout.count("Pausing agent") >= 2  # each pod's recent log lines

    proc = script("resume", "-n", release.namespace, "--timeout", "120")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for pod in pods:
        assert f"SIGUSR2 signal sent to pod {pod}" in proc.stdout
    assert "✓ Agent successfully resumed (2 of 2 pods)" in proc.stdout
    proc = script("status", "-n", release.namespace)
    assert proc.returncode == 0
    for pod in pods:
        assert f"Pod {pod}: RUNNING\n" in proc.stdout
