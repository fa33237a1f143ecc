"""The fleet answers back (issue 13): every replica reports its state to the status ConfigMap,
`pulling-agent ctl pause|resume` waits for all of them, `ctl status` shows one row per replica,
and a replica that cannot answer fails the wait (and a maintenance window's Job) by name.

Real pods on the `node` provider: three replicas, each with its own SQLite (the chart wants a
shared source for more than one replica; a URL from a Secret passes that check, and only the
control of the pods matters here).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testkit.clusters import Cluster, ControlPlane, NodeCluster, wait_until
from testkit.clusters.base import (
    BIN_DIR,
    REPO_ROOT,
    current_cluster_entry,
    kubeconfig_dict,
    run_command,
    write_kubeconfig,
)
from tests.e2e.release import Release, agent_pods, ctl_env, need_ctl

pytestmark = [pytest.mark.e2e, pytest.mark.requires_pods]

SCRIPT = REPO_ROOT / "control" / "control-agent.sh"
STATUS = "agent-control-status"
EXIT_UNVERIFIED = 3
FAST = ("--set", "health.periodSeconds=2")
WINDOW = {"name": "w", "pause": "0 0 1 1 *", "resume": "0 0 1 1 *", "suspend": True}


def start_replicas(release: Release, replicas: int, *args: str) -> list[str]:
    """`replicas` agent pods (each its own SQLite), Ready, RUNNING and reporting; their names."""
    release.install_replicas(
        replicas, "--set", "agent.seed=100000", "--set", "agent.processor=noop", *FAST, *args
    )
    release.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
    pods = sorted(p.metadata.name for p in agent_pods(release.core, release.namespace))
    wait_until(lambda: sorted(reports(release)) == pods, timeout=120, what="every replica's report")
    return pods


def reports(release: Release) -> dict[str, dict[str, Any]]:
    data = release.configmap(STATUS)
    return {pod: json.loads(text) for pod, text in data.items()}


def ctl(release: Release, *args: str, env: dict[str, str] | None = None) -> Any:
    need_ctl()
    command = ["pulling-agent", "ctl", *args, "--namespace", release.namespace]
    return run_command(command, env=ctl_env(env or release.cluster.env()), check=False, timeout=300)


def script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "KUBECTL": str(BIN_DIR / "kubectl"), "NO_COLOR": "1", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full_env,
        timeout=600, check=False,
    )  # fmt: skip


def liveness(release: Release, pod: str) -> dict[str, str]:
    text = release.guide(f"kubectl exec {pod} -- cat /tmp/health/liveness").stdout
    lines = text.splitlines()
    return {"state": lines[0], **dict(line.split("=", 1) for line in lines[2:] if "=" in line)}


def test_three_replicas_pause_and_resume_with_wait(
    make_release: Callable[..., Release], tmp_path: Path
) -> None:
    r = make_release(prefix="fleet")
    pods = start_replicas(r, 3)

    proc = ctl(r, "pause", "--reason", "e2e fleet", "--by", "tester", "--timeout", "120s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ConfigMap updated to 'pause'" in proc.stdout
    assert "Waiting for agent to pause.." in proc.stdout
    assert "✓ Agent successfully paused (3 of 3 replicas)" in proc.stdout
    for pod, report in reports(r).items():
        assert report["state"] == "paused", (pod, report)

    # ctl status: one row per replica, matching what each pod's liveness file says.
    proc = ctl(r, "status", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["pod"]: row for row in json.loads(proc.stdout)["replicas"]}
    assert sorted(rows) == pods
    for pod in pods:
        row, live = rows[pod], liveness(r, pod)
        spec = r.core.read_namespaced_pod(pod, r.namespace).spec
        assert row["state"] == live["state"] == "paused"
        assert row["reason"] == live["reason"] == "e2e fleet"
        assert row["requested_by"] == live["requested_by"] == "tester"
        # The watch or the kubelet's copy of the ConfigMap: whichever came first.
        assert row["channel"] == live["channel"] in ("configmap", "file")
        assert (row["documents"], row["errors"]) == (int(live["documents"]), int(live["errors"]))
        assert row["node"] == spec.node_name
        assert row["stale"] is False
    table = ctl(r, "status").stdout
    assert "POD" in table and "REPORT AGE" in table
    for pod in pods:
        line = next(line for line in table.splitlines() if line.startswith(pod))
        assert "PAUSED" in line and "e2e fleet" in line and "tester" in line

    # The control script verifies through the same reports: no exec needed.
    proc = script("resume", "-n", r.namespace, "--reason", "e2e over", "--timeout", "120")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✓ Agent successfully resumed (3 of 3 pods)" in proc.stdout
    assert all(report["state"] == "running" for report in reports(r).values())

    # With the agent's own token (read from a pod): its report, and nothing else.
    token = r.guide(
        f"kubectl exec {pods[0]} -- cat /var/run/secrets/kubernetes.io/serviceaccount/token"
    ).stdout.strip()
    server, ca = current_cluster_entry(r.cluster.kubeconfig)
    own = write_kubeconfig(
        tmp_path / "agent-token.kubeconfig",
        kubeconfig_dict(server=server, ca_pem=ca, user={"token": token}, name="agent"),
    )
    with r.cluster.api_client(own) as api:
        as_agent = client.CoreV1Api(api)
        mine = {"data": {pods[0]: json.dumps({"pod": pods[0], "state": "running"})}}
        as_agent.patch_namespaced_config_map(STATUS, r.namespace, mine)  # allowed
        status_cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=STATUS))
        ns = r.namespace
        for what, call in {
            "patch the control ConfigMap": lambda: as_agent.patch_namespaced_config_map(
                "agent-control", ns, {"data": {"state": "resume"}}
            ),
            "read the reports": lambda: as_agent.read_namespaced_config_map(STATUS, ns),
            "replace them": lambda: as_agent.replace_namespaced_config_map(STATUS, ns, status_cm),
            "delete them": lambda: as_agent.delete_namespaced_config_map(STATUS, ns),
            "create a ConfigMap": lambda: as_agent.create_namespaced_config_map(
                ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="new"))
            ),
            "patch its pod": lambda: as_agent.patch_namespaced_pod(
                pods[0], ns, {"metadata": {"labels": {"x": "y"}}}
            ),
            "patch its pod's status": lambda: as_agent.patch_namespaced_pod_status(
                pods[0], ns, {"status": {"conditions": []}}
            ),
            "list pods": lambda: as_agent.list_namespaced_pod(ns),
            "read secrets": lambda: as_agent.list_namespaced_secret(ns),
        }.items():
            with pytest.raises(client.ApiException) as refused:
                call()
            assert refused.value.status == 403, what
    exec_as_agent = r.cluster.kubectl(
        "-n", r.namespace, "exec", pods[0], "--", "true", kubeconfig=own, check=False
    )
    assert exec_as_agent.returncode != 0 and "forbidden" in exec_as_agent.stderr.lower()

    # A replica that goes away: its report is never counted, and ctl prunes it.
    r.guide("kubectl scale deployment/pulling-agent --replicas=2")
    wait_until(lambda: len(agent_pods(r.core, r.namespace)) == 2, timeout=180, what="a pod to go")
    remaining = {p.metadata.name for p in agent_pods(r.core, r.namespace)}
    (gone,) = set(pods) - remaining

    def pruned() -> bool:
        rows = json.loads(ctl(r, "status", "-o", "json").stdout)["replicas"]
        assert {row["pod"] for row in rows} == remaining  # never counted
        return gone not in r.configmap(STATUS)

    wait_until(pruned, timeout=180, what=f"the report of {gone} pruned")
    proc = ctl(r, "pause", "--timeout", "120s")
    assert "✓ Agent successfully paused (2 of 2 replicas)" in proc.stdout, proc.stderr


def _odd_replica(r: Release) -> str:
    """A third replica of the release from a Deployment of its own, with its own account
    (the agent's Role, bound to it) and no ConfigMap volume: its only line to the control
    state is the API, which the test can take away from it alone. Returns its pod name."""
    apps = client.AppsV1Api(r.core.api_client)
    rbac = client.RbacAuthorizationV1Api(r.core.api_client)
    ns = r.namespace
    r.core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="odd-agent"))
    )
    role = rbac.read_namespaced_role("pulling-agent-agent", ns)
    rbac.create_namespaced_role(
        ns, client.V1Role(metadata=client.V1ObjectMeta(name="odd-agent"), rules=role.rules)
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="odd-agent"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                      name="odd-agent"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="odd-agent",
                                           namespace=ns)],
        ),
    )  # fmt: skip
    chart = apps.read_namespaced_deployment("pulling-agent", ns)
    template = copy.deepcopy(chart.spec.template)
    template.metadata.labels = {**template.metadata.labels, "odd": "true"}
    template.spec.service_account_name = "odd-agent"
    for volume in template.spec.volumes:
        if volume.name == "control":
            volume.config_map = None
            volume.empty_dir = client.V1EmptyDirVolumeSource()
    selector = {**chart.spec.selector.match_labels, "odd": "true"}
    apps.create_namespaced_deployment(
        ns,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="odd"),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=selector),
                template=template,
            ),
        ),
    )
    r.guide("kubectl rollout status deployment/odd --timeout=300s")
    (pod,) = r.core.list_namespaced_pod(ns, label_selector="odd=true").items
    return str(pod.metadata.name)


def _job_failed(r: Release, name: str) -> str:
    job = client.BatchV1Api(r.core.api_client).read_namespaced_job(name, r.namespace)
    for condition in job.status.conditions or []:
        if condition.type == "Failed" and condition.status == "True":
            return str(condition.reason)
    return ""


def _job_complete(r: Release, name: str) -> bool:
    job = client.BatchV1Api(r.core.api_client).read_namespaced_job(name, r.namespace)
    return (job.status.succeeded or 0) >= 1


def test_a_replica_that_lost_its_api_access_fails_the_wait_and_the_window(
    make_release: Callable[..., Release], controlplane: ControlPlane
) -> None:
    r = make_release(prefix="fleet")
    start_replicas(
        r, 2, "--set-json", f"maintenanceWindows=[{json.dumps(WINDOW)}]",
        "--set", "control.jobs.waitTimeoutSeconds=20", "--set", "control.jobs.backoffLimit=0",
    )  # fmt: skip
    odd = _odd_replica(r)
    wait_until(lambda: odd in reports(r), timeout=120, what="the odd replica's report")
    # Three replicas of the release, and a window's Job waits for all three.
    r.guide("kubectl create job window-ok --from=cronjob/pause-w")
    wait_until(lambda: _job_complete(r, "window-ok"), timeout=240, what="the window's pause Job")
    assert reports(r)[odd]["state"] == "paused"
    proc = ctl(r, "resume", "--timeout", "120s")
    assert "✓ Agent successfully resumed (3 of 3 replicas)" in proc.stdout, proc.stderr

    # Take the odd replica's API access away (its RoleBinding), and end its open watch.
    rbac = client.RbacAuthorizationV1Api(r.core.api_client)
    rbac.delete_namespaced_role_binding("odd-agent", r.namespace)
    controlplane.restart_apiserver()
    wait_until(
        lambda: "ConfigMap watch failing" in r.guide(f"kubectl logs {odd}").stdout,
        timeout=180,
        what="the odd replica's watch to fail",
    )

    proc = ctl(r, "pause", "--reason", "window", "--timeout", "20s")
    assert proc.returncode == EXIT_UNVERIFIED, proc.stdout + proc.stderr
    assert f"  pod {odd}: reports running since " in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"✗ Agent not paused within 20s: 1 of 3 replicas did not report it: {odd}"
    others = {pod: rep for pod, rep in reports(r).items() if pod != odd}
    assert [rep["state"] for rep in others.values()] == ["paused", "paused"]

    # The control script, verifying through the reports, names it too.
    proc = script("pause", "-n", r.namespace, "--timeout", "5")
    assert proc.returncode == EXIT_UNVERIFIED, proc.stdout + proc.stderr
    assert f"  pod {odd}: reports running since " in proc.stderr

    # ...and a maintenance window's Job fails (at once: podFailurePolicy on exit 3).
    r.guide("kubectl create job window-bad --from=cronjob/pause-w")
    wait_until(lambda: _job_failed(r, "window-bad"), timeout=240, what="the Job to fail")
    assert _job_failed(r, "window-bad") == "PodFailurePolicy"
    logs = r.guide("kubectl logs job/window-bad").stdout
    assert f"pod {odd}: reports running" in logs


def test_the_report_survives_an_apiserver_outage(
    make_release: Callable[..., Release], controlplane: ControlPlane, cluster: Cluster
) -> None:
    """A pause that happens while the API server is down (a signal from the host) is in the
    report once the API server is back."""
    if not isinstance(cluster, NodeCluster):
        pytest.skip("signalling a container from the host needs the node provider")
    r = make_release(prefix="fleet")
    (pod,) = start_replicas(r, 1)
    uid = r.core.read_namespaced_pod(pod, r.namespace).metadata.uid
    (pid,) = [p for p, cmd in cluster.pod_processes(uid).items() if "pulling-agent" in cmd]
    controlplane.stop_apiserver()
    try:
        os.kill(pid, signal.SIGUSR1)
        health = Path(f"/proc/{pid}/root/tmp/health/liveness")
        wait_until(
            lambda: health.read_text().startswith("paused"), timeout=60, what="paused in the pod"
        )
    finally:
        controlplane.start_apiserver()
    wait_until(lambda: reports(r)[pod]["state"] == "paused", timeout=120, what="the report after")
    assert reports(r)[pod]["channel"] == "signal"
