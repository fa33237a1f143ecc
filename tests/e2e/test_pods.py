"""The chart's pods under a real kubelet: probes, termination, rollouts, Jobs, the guide.

Everything here needs running pods (the `node` provider runs them on this machine; kind or
an existing cluster elsewhere).  The operator guide's commands are run verbatim through
`Release.guide` (bash, a kubeconfig whose namespace is the test's).  Waits are generous and
never assertions about speed: figures such as how long the kubelet takes to notice a pause
are measured by `make bench`, not here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from testkit.clusters import Cluster, NodeCluster, wait_until
from testkit.clusters.base import REPO_ROOT, run_command
from tests.e2e.release import POD, Release, agent_pods, expect_state, ready_flags

pytestmark = [pytest.mark.e2e, pytest.mark.requires_pods]

RunningFactory = Callable[..., Release]
#: probes every 2 s instead of 10 s: the tests wait less for the kubelet
FAST_PROBES = ("--set", "health.periodSeconds=2")
AGENT_UID = 10001
GUIDE_PAUSE = (
    "kubectl create configmap agent-control --from-literal=state=pause "
    "-o yaml --dry-run=client | kubectl apply -f -"
)
GUIDE_RUNNING = (
    "kubectl create configmap agent-control --from-literal=state=running "
    "-o yaml --dry-run=client | kubectl apply -f -"
)


def _pod_name(release: Release) -> str:
    return release.guide(
        "kubectl get pod -l app=pulling-agent -o jsonpath='{.items[0].metadata.name}'"
    ).stdout.strip()


def _liveness(release: Release, pod: str) -> dict[str, str]:
    text = release.guide(f"kubectl exec {pod} -- cat /tmp/health/liveness").stdout
    lines = text.splitlines()
    fields = dict(line.split("=", 1) for line in lines[2:] if "=" in line)
    return {"state": lines[0], **fields}


def _restarts(release: Release, pod: str) -> int:
    status = release.core.read_namespaced_pod(pod, release.namespace).status
    return sum(c.restart_count for c in status.container_statuses or [])


# --- probes ----------------------------------------------------------------------------------


def test_readiness_follows_the_state_through_the_kubelet(running: RunningFactory) -> None:
    """The readiness probe reads /tmp/health/readiness: NotReady while paused, Ready after."""
    r = running(*FAST_PROBES)
    pod = _pod_name(r)
    r.guide(f"kubectl exec {pod} -- kill -USR1 1")
    wait_until(lambda: ready_flags(r) == [False], timeout=120, what="the pod to turn NotReady")
    assert _liveness(r, pod)["state"] == "paused"
    # Paused is not dead: the liveness probe keeps passing, nothing restarts.
    assert _restarts(r, pod) == 0
    r.guide(f"kubectl exec {pod} -- kill -USR2 1")
    wait_until(lambda: ready_flags(r) == [True], timeout=120, what="the pod to be Ready again")
    assert _liveness(r, pod)["state"] == "running"
    assert _restarts(r, pod) == 0


def test_liveness_probe_restarts_an_agent_whose_heartbeat_stopped(
    running: RunningFactory, cluster: Cluster
) -> None:
    """A frozen agent (SIGSTOP from the host: a container's init ignores it from inside its
    own PID namespace) stops rewriting its liveness file; the kubelet's liveness probe sees
    the file go stale and restarts the container."""
    if not isinstance(cluster, NodeCluster):
        pytest.skip(
            f"freezing a container needs its host pid: node provider only, not {cluster.provider}"
        )
    r = running(
        *FAST_PROBES,
        "--set", "health.livenessMaxAgeSeconds=6",
        "--set", "agent.heartbeatInterval=1",
        "--set", "agent.stopGraceSeconds=2",
        "--set", "terminationGracePeriodSeconds=5",
    )  # fmt: skip
    pod = _pod_name(r)
    assert _restarts(r, pod) == 0
    uid = r.core.read_namespaced_pod(pod, r.namespace).metadata.uid
    agents = [pid for pid, cmd in cluster.pod_processes(uid).items() if "pulling-agent" in cmd]
    assert len(agents) == 1, cluster.pod_processes(uid)
    os.kill(agents[0], signal.SIGSTOP)
    wait_until(lambda: _restarts(r, pod) >= 1, timeout=180, what="the kubelet to restart it")
    events = r.guide(
        f"kubectl get events --field-selector involvedObject.name={pod} -o json"
    ).stdout
    messages = [e.get("message", "") for e in json.loads(events)["items"]]
    assert any("Liveness probe failed" in m for m in messages), messages
    # The restarted container is a healthy, running agent again (same pod, new process).
    expect_state(r, "running")
    assert _pod_name(r) == pod
    assert agents[0] not in cluster.pod_processes(uid)


# --- termination -------------------------------------------------------------------------------


@pytest.fixture
def host_queue() -> Iterator[Path]:
    """A host directory the agent (uid 10001) can write: the queue outlives its pods."""
    path = Path("/var/tmp") / f"pulling-agent-e2e-queue-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    os.chown(path, AGENT_UID, AGENT_UID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _host_path_claim(release: Release, path: Path, api: client.ApiClient) -> str:
    """A PersistentVolume on `path` (hostPath, pre-bound) and its claim `queue`."""
    core = client.CoreV1Api(api)
    pv_name = f"queue-{release.namespace}"
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv_name),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                persistent_volume_reclaim_policy="Retain",
                storage_class_name="",
                host_path=client.V1HostPathVolumeSource(path=str(path), type="Directory"),
                claim_ref=client.V1ObjectReference(namespace=release.namespace, name="queue"),
            ),
        )
    )
    core.create_namespaced_persistent_volume_claim(
        release.namespace,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="queue"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                storage_class_name="",
                volume_name=pv_name,
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    wait_until(
        lambda: (
            core.read_namespaced_persistent_volume_claim("queue", release.namespace).status.phase
            == "Bound"
        ),
        timeout=120,
        what="claim queue to bind",
    )
    return pv_name


def _query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return list(conn.execute(sql, args))


def test_delete_pod_during_a_long_batch_finishes_it_and_loses_nothing(
    make_release: Callable[..., Release],
    host_queue: Path,
    api_client: client.ApiClient,
) -> None:
    """`kubectl delete pod` sends SIGTERM: the batch in hand is finished (grace 25 s, the
    batch needs about 6 s), nothing is left leased, and the rest of the queue stays there
    for the next pod.  The queue lives on a host directory, so it is read before and after."""
    r = make_release(prefix="delete")
    pv = _host_path_claim(r, host_queue, api_client)
    try:
        r.install(
            "--set", "persistence.existingClaim=queue",
            "--set", "agent.seed=60",
            "--set", "agent.batchSize=3",
            "--set", "agent.processor=slow",
            "--set-string", "agent.processorOptions.seconds=2",
            "--set-string", "agent.processorOptions.interruptible=false",
            "--set", "agent.logFormat=text",
        )  # fmt: skip
        r.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
        pod = _pod_name(r)
        db = host_queue / "agent.db"
        owned = f"{pod}:%"

        def held() -> list[int]:
            rows = _query(
                db, "SELECT id FROM documents WHERE status = 'in_progress' AND owner LIKE ?", owned
            )
            return [int(str(row[0])) for row in rows]

        batch = wait_until(held, timeout=180, what=f"{pod} to hold a batch")
        logs = subprocess.Popen(
            [str(REPO_ROOT / "bin" / "kubectl"), "logs", "-f", pod, "-n", r.namespace],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=r.cluster.env(),
        )
        try:
            r.guide(f"kubectl delete pod {pod} --timeout=120s")
        finally:
            out, _ = logs.communicate(timeout=60)
        assert "Stopping agent: finishing the current batch" in out, out[-2000:]
        assert "Agent stopped" in out, out[-2000:]

        marks = ",".join("?" * len(batch))
        done_by_it = _query(
            db, f"SELECT document_id FROM results WHERE owner LIKE ? AND document_id IN ({marks})",
            owned, *batch,
        )  # fmt: skip
        assert sorted(int(str(row[0])) for row in done_by_it) == sorted(batch)
        assert held() == [], "documents still leased by the deleted pod"
        counts = dict(_query(db, "SELECT status, count(*) FROM documents GROUP BY status"))
        assert sum(int(str(v)) for v in counts.values()) == 60, counts
        assert int(str(counts.get("pending", 0))) > 0, counts  # the queue is still there
    finally:
        with contextlib.suppress(client.ApiException):
            client.CoreV1Api(api_client).delete_persistent_volume(pv)


def test_a_restarted_pod_starts_paused_when_the_configmap_says_pause(
    running: RunningFactory,
) -> None:
    r = running(*FAST_PROBES)
    r.guide(GUIDE_PAUSE)
    expect_state(r, "paused")
    old = _pod_name(r)
    r.guide(f"kubectl delete pod {old} --timeout=120s")

    def new_pod_running() -> str | None:
        pods = [
            p
            for p in agent_pods(r.core, r.namespace)
            if p.metadata.name != old and p.status.phase == "Running"
        ]
        return pods[0].metadata.name if pods else None

    new = wait_until(new_pod_running, timeout=180, what="the replacement pod")
    # The file says `starting` until the controller has read the ConfigMap.
    liveness = wait_until(
        lambda: (f := _liveness(r, new)) and f.get("state") != "starting" and f,
        timeout=60,
        what="its liveness file past STARTING",
    )
    assert liveness["state"] == "paused"
    assert liveness["batches"] == "0" and liveness["documents"] == "0"
    assert ready_flags(r) == [False]
    logs = r.guide(f"kubectl logs {new}").stdout
    assert "Starting paused" in logs
    assert "Agent running" not in logs and "Resuming agent" not in logs


# --- rollouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("ready_while_paused", [False, True])
def test_the_guides_ci_cd_recipe(running: RunningFactory, ready_while_paused: bool) -> None:
    """pause -> upgrade (a new pod template) -> `kubectl rollout status` -> resume.

    readyWhilePaused=false: the new pod starts paused and is never Ready, so the rollout
    cannot finish while paused and `rollout status` times out (the old pod, paused, stays);
    after the resume it finishes.  readyWhilePaused=true: the rollout finishes while
    paused, the new pod waits paused, the resume starts it.
    """
    flag = str(ready_while_paused).lower()
    r = running(*FAST_PROBES, "--set", f"health.readyWhilePaused={flag}")
    script = f"cd {REPO_ROOT} && ./control/control-agent.sh"
    assert "Agent successfully paused" in r.guide(f"{script} pause --reason deploy").stdout
    r.upgrade(
        *FAST_PROBES, "--set", f"health.readyWhilePaused={flag}", "--set", "agent.batchSize=7"
    )
    rollout = r.guide("kubectl rollout status deployment/pulling-agent --timeout=60s", check=False)
    if ready_while_paused:
        assert rollout.returncode == 0, rollout.stderr
        wait_until(lambda: len(agent_pods(r.core, r.namespace)) == 1, timeout=120, what="one pod")
        (pod,) = [p.metadata.name for p in agent_pods(r.core, r.namespace)]
        assert _liveness(r, pod)["state"] == "paused"
    else:
        assert rollout.returncode != 0
        assert "timed out" in rollout.stderr or "exceeded" in rollout.stderr, rollout.stderr
        pods = agent_pods(r.core, r.namespace)
        assert len(pods) == 2  # the old one, and the new one waiting paused
        assert {_liveness(r, p.metadata.name)["state"] for p in pods} == {"paused"}
    assert "Agent successfully resumed" in r.guide(f"{script} resume").stdout
    r.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
    wait_until(
        lambda: len(agent_pods(r.core, r.namespace)) == 1,
        timeout=180,
        what="the old pod to go",
    )
    expect_state(r, "running")


# --- Jobs and maintenance windows as real pods -----------------------------------------------


def test_a_maintenance_window_cronjob_runs_on_schedule(running: RunningFactory) -> None:
    """A window whose pause runs every minute: the CronJob controller makes the Job, the
    Job's pod patches the ConfigMap with the agent image's own CLI, the agent pauses."""
    window = {
        "name": "every-minute",
        "pause": "* * * * *",
        "resume": "0 0 1 1 *",
        "reason": "e2e window",
        # Installed suspended, started once the agent runs: a pause that lands before the
        # pod is first Ready keeps it NotReady, and `rollout status` in `running` never ends.
        "suspend": True,
    }
    r = running(*FAST_PROBES, "--set-json", f"maintenanceWindows=[{json.dumps(window)}]")
    r.guide('kubectl patch cronjob pause-every-minute -p \'{"spec":{"suspend":false}}\'')
    batch = client.BatchV1Api(r.core.api_client)

    def scheduled_job_done() -> bool:
        jobs = batch.list_namespaced_job(r.namespace).items
        return any(
            (j.metadata.owner_references or [{}])[0].name == "pause-every-minute"
            and (j.status.succeeded or 0) >= 1
            for j in jobs
        )

    # The Job succeeds only once the agent reports `paused` (ctl pause --wait, issue 13).
    wait_until(scheduled_job_done, timeout=200, what="the window's scheduled pause Job")
    assert r.configmap()["reason"] == "e2e window"
    expect_state(r, "paused")
    # Stop the schedule, then end the window by hand, as the guide does.
    r.guide('kubectl patch cronjob pause-every-minute -p \'{"spec":{"suspend":true}}\'')
    r.guide("kubectl create job manual-resume --from=cronjob/resume-every-minute")
    r.guide("kubectl wait --for=condition=complete job/manual-resume --timeout=300s")
    expect_state(r, "running")


# --- the operator tooling with two replicas ---------------------------------------------------


def test_make_k8s_targets_with_two_replicas(make_release: Callable[..., Release]) -> None:
    r = make_release(prefix="make")
    r.install_replicas(2, "--set", "agent.seed=100000", *FAST_PROBES)
    r.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
    pods = sorted(p.metadata.name for p in agent_pods(r.core, r.namespace))
    assert len(pods) == 2

    def make(target: str) -> str:
        env = {**r.cluster.env(), "NAMESPACE": r.namespace, "NO_COLOR": "1"}
        proc = run_command(
            ["make", "--no-print-directory", "-C", str(REPO_ROOT), target, "REASON=e2e make"],
            env=env,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "Agent successfully paused (2 of 2 pods)" in make("k8s-pause")
    status = make("k8s-status")
    assert 'ConfigMap agent-control: state=pause reason="e2e make"' in status
    for pod in pods:
        assert f"Pod {pod}: PAUSED" in status
        assert _liveness(r, pod)["state"] == "paused"
    assert "Agent successfully resumed (2 of 2 pods)" in make("k8s-resume")
    status = make("k8s-status")
    for pod in pods:
        assert f"Pod {pod}: RUNNING" in status
    wait_until(lambda: ready_flags(r) == [True, True], timeout=120, what="both pods Ready")


# --- the guide's verification and troubleshooting commands, verbatim -------------------------


def test_the_guides_verification_and_troubleshooting_commands(running: RunningFactory) -> None:
    r = running(*FAST_PROBES)
    pod = f"POD={POD}; "
    readiness = (
        'kubectl exec $POD -- test -f /tmp/health/readiness && echo "RUNNING" || echo "PAUSED"'
    )
    assert r.guide(pod + readiness).stdout.strip() == "RUNNING"
    assert r.guide(pod + "kubectl exec $POD -- cat /tmp/health/liveness").stdout.startswith(
        "running\n"
    )

    # Method 3, then "Verify in logs".
    r.guide(pod + "kubectl exec $POD -- kill -USR1 1  # Pause")
    expect_state(r, "paused")
    lines = r.guide(pod + 'kubectl logs $POD --tail=20 | grep -i -E "paus|resum"').stdout
    assert "Pausing agent" in lines
    # Method 3's own check: every channel logs its detection, so `grep -i pause` finds a
    # signal pause too ("Pausing agent" alone would not match).
    lines = r.guide(pod + "kubectl logs $POD --tail=20 | grep -i pause").stdout
    assert "Signal command detected: pause (SIGUSR1)" in lines
    r.guide(pod + "kubectl exec $POD -- kill -USR2 1  # Resume")
    expect_state(r, "running")
    lines = r.guide(pod + 'kubectl logs $POD --tail=20 | grep -i -E "paus|resum"').stdout
    assert "Signal command detected: resume (SIGUSR2)" in lines and "Resuming agent" in lines

    # Troubleshooting "Agent Not Pausing": the ConfigMap, the file in the pod, the logs.
    r.guide(GUIDE_PAUSE)
    assert "state: pause" in r.guide("kubectl get configmap agent-control -o yaml").stdout
    expect_state(r, "paused")  # the watch, long before the kubelet refreshes the file
    wait_until(
        lambda: (
            r.guide(pod + "kubectl exec $POD -- cat /tmp/control/state").stdout.strip() == "pause"
        ),
        timeout=240,
        interval=2,
        what="the kubelet to refresh /tmp/control/state (its sync period, a minute or more)",
    )
    # The guide's grep: "Look for: ... command detected: pause" (its other "Look for",
    # "Pausing agent", does not contain "pause": the next grep is the one that finds it).
    logs = r.guide(pod + "kubectl logs $POD --tail=50 | grep -i pause").stdout
    assert "ConfigMap command detected: pause" in logs
    logs = r.guide(pod + 'kubectl logs $POD --tail=20 | grep -i -E "paus|resum"').stdout
    assert "Pausing agent" in logs
    assert r.guide(pod + "kubectl exec $POD -- cat /tmp/health/liveness | head -1").stdout == (
        "paused\n"
    )
    r.guide("kubectl get events --field-selector involvedObject.name=agent-control")

    # "Force resume with both methods".
    r.guide(GUIDE_RUNNING.replace("running", "resume"))
    r.guide(pod + "kubectl exec $POD -- kill -USR2 1")
    expect_state(r, "running")

    # "State Mismatch": a restarted pod takes the ConfigMap's state.
    r.guide(GUIDE_RUNNING)
    r.guide(pod + "kubectl delete pod $POD")
    r.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
    expect_state(r, "running")
