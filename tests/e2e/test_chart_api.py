"""The chart through a real Kubernetes API: helm install/upgrade, Pod Security, RBAC, Jobs.

The first part runs on every provider (including the installs a platform team asks for:
existing ServiceAccounts, `rbac.create=false`, two releases in one namespace, a name another
release owns); nothing there needs a running pod, so on
`controlplane` (no kubelet) the Deployment's and the Jobs' pods are created by
kube-controller-manager and stay Pending.  The last part (`requires_pods`, skipped on
controlplane) runs the agent image on kind: install, then pause and resume through each of
the guide's five methods, with the pods' readiness following the state.

The operator guide's commands are run verbatim through `bash -c`, with a
kubeconfig whose context namespace is the test's namespace (the guide assumes `default`).

Guide commands exercised here:
  kubectl create configmap agent-control --from-literal=state=pause|resume|running \
      -o yaml --dry-run=client | kubectl apply -f -
  kubectl get configmap agent-control -o jsonpath='{.data.state}'   (and -o yaml)
  POD=$(kubectl get pod -l app=pulling-agent -o jsonpath='{.items[0].metadata.name}')
  kubectl create job pause-now --from=cronjob/pause-pulling-agent   (and resume-now)
  kubectl get jobs -l app=pulling-agent-control
  kubectl get cronjobs
  kubectl create job manual-pause --from=cronjob/pause-agent-maintenance
  kubectl patch cronjob pause-agent-maintenance -p '{"spec":{"suspend":true}}'  (and false)
  kubectl get events --field-selector involvedObject.name=agent-control
and with pods (kind): ./control/control-agent.sh pause|resume|status, make k8s-pause|k8s-resume,
  kubectl exec $POD -- kill -USR1 1 (and -USR2), kubectl exec $POD -- test -f
  /tmp/health/readiness, kubectl exec $POD -- cat /tmp/health/liveness, kubectl logs $POD,
  kubectl logs job/pause-now, kubectl rollout status deployment/pulling-agent.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from testkit.clusters import ProviderError, wait_until
from testkit.clusters.base import REPO_ROOT, run_command
from tests.conftest import AgentFactory
from tests.e2e.access import ServiceAccountAccess
from tests.e2e.release import (
    POD,
    RELEASE,
    Release,
    agent_pods,
    ctl_env,
    expect_state,
    need_ctl,
)

pytestmark = pytest.mark.e2e

MakeNamespace = Callable[..., str]
SAFactory = Callable[..., ServiceAccountAccess]

WINDOW = {
    "name": "agent-maintenance",
    "pause": "0 2 * * *",
    "resume": "0 4 * * *",
    "timeZone": "Europe/Paris",
    "reason": "nightly backup",
}


# --- install, Pod Security ---------------------------------------------------------------


def test_install_under_restricted_pod_security(make_release: Callable[..., Release]) -> None:
    r = make_release()
    notes = r.install()
    # NOTES tell how to pause, resume and check, with this namespace's names.
    assert f"kubectl -n {r.namespace} create job pause-now --from=cronjob/pause-pulling-agent" in (
        notes
    )
    assert "resume-now --from=cronjob/resume-pulling-agent" in notes
    assert "get configmap agent-control -o jsonpath='{.data.state}'" in notes

    # kube-controller-manager creates the Deployment's pod: PodSecurity admitted it.
    apps = client.AppsV1Api(r.core.api_client)
    pods = wait_until(
        lambda: agent_pods(r.core, r.namespace),
        timeout=180,
        what="the Deployment's pod (ReplicaSet controller)",
    )
    assert len(pods) == 1
    (rs,) = apps.list_namespaced_replica_set(r.namespace).items
    failures = [c for c in rs.status.conditions or [] if c.type == "ReplicaFailure"]
    assert not failures, failures[0].message

    # The guide's way to find the pod selects the agent, not a control Job's pod.
    pod = r.guide(
        "kubectl get pod -l app=pulling-agent -o jsonpath='{.items[0].metadata.name}'"
    ).stdout
    assert pod == pods[0].metadata.name and pod.startswith("pulling-agent-")

    # The namespace really enforces `restricted`: a pod without the chart's settings is refused.
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "pulling-agent:0.1.0"}]},
    }
    proc = r.cluster.kubectl(
        "-n", r.namespace, "create", "-f", "-", input=json.dumps(bare), check=False
    )
    assert proc.returncode != 0
    assert "violates PodSecurity" in proc.stderr


# --- the control ConfigMap across upgrades ------------------------------------------------


def test_upgrade_set_control_state_pause(release: Release) -> None:
    apps = client.AppsV1Api(release.core.api_client)
    before = apps.read_namespaced_deployment(RELEASE, release.namespace)
    assert release.configmap() == {"state": "running"}

    release.upgrade("--set", "control.state=pause", "--set", "control.reason=db migration")
    data = release.configmap()
    assert data["state"] == "pause"
    assert data["reason"] == "db migration"
    assert data["requested-by"] == "helm"
    assert release.guide(
        "kubectl get configmap agent-control -o jsonpath='{.data.state}'"
    ).stdout == ("pause")
    # A pause is no rollout: the Deployment's pod template was not touched.
    after = apps.read_namespaced_deployment(RELEASE, release.namespace)
    assert after.metadata.generation == before.metadata.generation
    assert after.spec.template == before.spec.template


def test_ctl_pause_survives_a_plain_upgrade(release: Release) -> None:
    need_ctl()
    env = ctl_env(release.cluster.env())

    def ctl(action: str) -> subprocess.CompletedProcess[str]:
        command = ["pulling-agent", "ctl", action, "--configmap", "agent-control"]
        command += ["--namespace", release.namespace]
        command += ["--reason", "database maintenance", "--by", "ops-team"]
        return run_command(command, env=env, timeout=120)

    proc = ctl("pause")
    assert "ConfigMap updated to 'pause'" in proc.stdout
    paused = release.configmap()
    assert paused["state"] == "pause"

    release.upgrade()  # an unrelated upgrade: lookup keeps the live data
    assert release.configmap() == paused

    release.upgrade("--set", "agent.batchSize=20")  # even one that rolls the pods
    assert release.configmap() == paused

    release.upgrade("--set", "control.state=running")  # an explicit state wins
    data = release.configmap()
    assert data["state"] == "running"
    assert data["reason"] == ""  # the stale reason is cleared
    assert data["requested-by"] == "helm"

    release.upgrade()
    assert release.configmap()["state"] == "running"

    # A state given with --set is stored in the release: --reuse-values re-applies it...
    release.upgrade("--set", "control.state=pause")
    ctl("resume")
    assert release.configmap()["state"] == "resume"
    release.upgrade("--reuse-values")
    assert release.configmap()["state"] == "pause"
    # ...until it is handed back to the operators with an empty control.state.
    ctl("resume")
    release.upgrade("--reuse-values", "--set", "control.state=")
    assert release.configmap()["state"] == "resume"


def test_guide_configmap_commands_on_the_helm_owned_configmap(release: Release) -> None:
    """Method 2 of the guide works against the chart's ConfigMap, and survives upgrades."""
    for word in ("pause", "resume", "running", "pause"):
        release.guide(
            f"kubectl create configmap agent-control --from-literal=state={word} "
            "-o yaml --dry-run=client | kubectl apply -f -"
        )
        state = release.guide(
            "kubectl get configmap agent-control -o jsonpath='{.data.state}'"
        ).stdout
        assert state == word
    assert "state: pause" in release.guide("kubectl get configmap agent-control -o yaml").stdout
    release.guide("kubectl get events --field-selector involvedObject.name=agent-control")

    release.upgrade()
    assert release.configmap()["state"] == "pause"
    # Still Helm's: a later explicit state applies.
    release.upgrade("--set", "control.state=resume")
    assert release.configmap()["state"] == "resume"


# --- control Jobs (method 4) and maintenance windows (method 5) ----------------------------


def _run_job_command_as_its_account(
    release: Release, service_account_access: SAFactory, job_name: str
) -> subprocess.CompletedProcess[str]:
    """Run the Job's container command here, with a token of the Job's ServiceAccount."""
    batch = client.BatchV1Api(release.core.api_client)
    job = batch.read_namespaced_job(job_name, release.namespace)
    pod_spec = job.spec.template.spec
    (container,) = pod_spec.containers
    assert container.command[:2] == ["pulling-agent", "ctl"]
    assert not container.args and not container.env  # complete in itself
    access = service_account_access(release.namespace, pod_spec.service_account_name, create=False)
    return run_command(container.command, env=ctl_env(access.env()), check=False, timeout=120)


def test_job_from_cronjob_pauses_and_resumes(
    release: Release, service_account_access: SAFactory
) -> None:
    need_ctl()
    release.guide("kubectl create job pause-now --from=cronjob/pause-pulling-agent")
    jobs = release.guide("kubectl get jobs -l app=pulling-agent-control -o name").stdout.split()
    assert jobs == ["job.batch/pause-now"]
    # The Job controller creates its pod: admitted under `restricted` too.
    wait_until(
        lambda: (
            release.core.list_namespaced_pod(
                release.namespace, label_selector="job-name=pause-now"
            ).items
        ),
        timeout=180,
        what="the pause-now Job's pod (Job controller)",
    )
    # ...and it is not mistaken for an agent pod.
    assert all(
        p.metadata.labels["app"] == "pulling-agent"
        for p in agent_pods(release.core, release.namespace)
    )

    proc = _run_job_command_as_its_account(release, service_account_access, "pause-now")
    assert proc.returncode == 0, proc.stderr
    data = release.configmap()
    assert data["state"] == "pause"
    assert data["requested-by"] == "cronjob/pause-pulling-agent"
    assert data["reason"] == "on-demand control Job"
    assert data["requested-at"].endswith("Z")

    release.guide("kubectl create job resume-now --from=cronjob/resume-pulling-agent")
    proc = _run_job_command_as_its_account(release, service_account_access, "resume-now")
    assert proc.returncode == 0, proc.stderr
    assert release.configmap()["state"] == "resume"
    jobs = release.guide("kubectl get jobs -l app=pulling-agent-control -o name").stdout.split()
    assert sorted(jobs) == ["job.batch/pause-now", "job.batch/resume-now"]


def test_control_account_is_limited_to_its_configmap(
    release: Release, service_account_access: SAFactory
) -> None:
    need_ctl()
    release.core.create_namespaced_config_map(
        release.namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other"), data={"state": "running"}),
    )
    access = service_account_access(release.namespace, "pulling-agent-control", create=False)
    # The same CLI aimed at another ConfigMap is refused (exit 1, a message naming it).
    proc = run_command(
        ["pulling-agent", "ctl", "pause", "--configmap", "other", "--namespace", release.namespace],
        env=ctl_env(access.env()),
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "other" in proc.stderr
    assert release.configmap("other") == {"state": "running"}
    for args in (
        ("patch", "configmap", "other", "--type", "merge", "-p", '{"data":{"state":"pause"}}'),
        ("create", "configmap", "new", "--from-literal=state=pause"),
        ("delete", "configmap", "agent-control"),
        ("get", "secrets"),
        ("get", "pod", "any-pod"),  # list only (for --wait): no get, no watch, no exec
        ("get", "pods", "--watch-only", "--request-timeout=5s"),
        ("exec", "any-pod", "--", "true"),
        ("delete", "configmap", "agent-control-status"),
    ):
        out = access.kubectl("-n", release.namespace, *args, check=False)
        assert out.returncode != 0 and "forbidden" in out.stderr.lower(), args
    # Changed with the status reports (issue 13): `--wait` lists the release's pods.
    access.kubectl("-n", release.namespace, "get", "pods")


def _refused(call: Callable[[], Any]) -> int:
    """Make an API call that must fail; return its HTTP status."""
    with pytest.raises(client.ApiException) as info:
        call()
    return int(info.value.status)


def _watch(core: client.CoreV1Api, namespace: str, field_selector: str) -> None:
    """Open a watch (as the agent's ConfigMap channel does) and close it at once."""
    response = core.list_namespaced_config_map(
        namespace,
        field_selector=field_selector,
        watch=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    # Close, do not just release: a watch's connection returned to the pool unread still
    # holds the stream's chunks, and the next request on it reads them as its status line.
    response.close()
    response.release_conn()


def test_agent_account_may_only_read_its_configmap(
    release: Release, service_account_access: SAFactory
) -> None:
    ns = release.namespace
    release.core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other"), data={"a": "b"})
    )
    release.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="db"), string_data={"url": "x"})
    )
    access = service_account_access(ns, "pulling-agent", create=False)
    with access.api_client() as api:
        core = client.CoreV1Api(api)
        by_name = "metadata.name=agent-control"
        # What the agent's watch needs.
        core.read_namespaced_config_map("agent-control", ns)
        core.list_namespaced_config_map(ns, field_selector=by_name)
        _watch(core, ns, by_name)
        # Everything else is refused.
        patch = {"data": {"state": "pause"}}
        assert _refused(lambda: core.patch_namespaced_config_map("agent-control", ns, patch)) == 403
        assert _refused(lambda: core.read_namespaced_config_map("other", ns)) == 403
        assert _refused(lambda: core.list_namespaced_config_map(ns)) == 403
        assert _refused(lambda: _watch(core, ns, "metadata.name=other")) == 403
        assert _refused(lambda: core.read_namespaced_secret("db", ns)) == 403
        assert _refused(lambda: core.list_namespaced_secret(ns)) == 403
        assert _refused(lambda: core.list_namespaced_pod(ns)) == 403
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
        assert _refused(lambda: core.create_namespaced_config_map(ns, body)) == 403
    assert release.configmap()["state"] == "running"


def test_agent_watch_works_with_the_charts_role(
    release: Release, service_account_access: SAFactory, agent_factory: AgentFactory
) -> None:
    """The real agent, as a local process with the agent's token, follows the ConfigMap."""
    need_ctl()
    access = service_account_access(release.namespace, "pulling-agent", create=False)
    agent = agent_factory(
        args=[
            "--configmap",
            "agent-control",
            "--namespace",
            release.namespace,
            "--kubeconfig",
            str(access.kubeconfig),
        ]
    ).start("running")
    # The control directory stays empty: only the API watch can bring these changes.
    release.guide(
        "kubectl create configmap agent-control --from-literal=state=pause "
        "-o yaml --dry-run=client | kubectl apply -f -"
    )
    agent.wait_state("paused", timeout=120)
    assert not agent.ready()
    release.guide(
        "kubectl create configmap agent-control --from-literal=state=resume "
        "-o yaml --dry-run=client | kubectl apply -f -"
    )
    agent.wait_state("running", timeout=120)
    assert agent.stop() == 0
    messages = agent.messages()
    assert "Pausing agent" in messages and "Resuming agent" in messages, agent.log_tail()
    log = agent.log_path.read_text()
    assert "403" not in log and "orbidden" not in log, agent.log_tail()


def test_maintenance_window_cronjobs(make_release: Callable[..., Release]) -> None:
    r = make_release()
    r.install("--set-json", f"maintenanceWindows=[{json.dumps(WINDOW)}]")
    batch = client.BatchV1Api(r.core.api_client)
    pause = batch.read_namespaced_cron_job("pause-agent-maintenance", r.namespace)
    resume = batch.read_namespaced_cron_job("resume-agent-maintenance", r.namespace)
    assert pause.spec.schedule == "0 2 * * *" and resume.spec.schedule == "0 4 * * *"
    assert pause.spec.time_zone == resume.spec.time_zone == "Europe/Paris"
    assert pause.spec.suspend is False and resume.spec.suspend is False
    assert pause.spec.concurrency_policy == "Forbid"
    assert resume.spec.starting_deadline_seconds > pause.spec.starting_deadline_seconds

    listed = r.guide("kubectl get cronjobs").stdout
    for name in ("pause-agent-maintenance", "resume-agent-maintenance", "pause-pulling-agent"):
        assert name in listed
    r.guide("""kubectl patch cronjob pause-agent-maintenance -p '{"spec":{"suspend":true}}'""")
    assert batch.read_namespaced_cron_job("pause-agent-maintenance", r.namespace).spec.suspend
    r.guide("""kubectl patch cronjob pause-agent-maintenance -p '{"spec":{"suspend":false}}'""")
    assert not batch.read_namespaced_cron_job("pause-agent-maintenance", r.namespace).spec.suspend

    r.guide("kubectl create job manual-pause --from=cronjob/pause-agent-maintenance")
    job = batch.read_namespaced_job("manual-pause", r.namespace)
    assert job.metadata.labels["app"] == "pulling-agent-control"
    command = job.spec.template.spec.containers[0].command
    assert command[:3] == ["pulling-agent", "ctl", "pause"]
    assert command[command.index("--reason") + 1] == "nightly backup"


def test_api_refuses_an_unknown_time_zone(make_release: Callable[..., Release]) -> None:
    """The schema checks the shape of a time zone; the API server checks that it exists."""
    r = make_release()
    bad = {**WINDOW, "timeZone": "Mars/Olympus_Mons"}
    with pytest.raises(Exception, match="Mars/Olympus_Mons"):
        r.install("--set-json", f"maintenanceWindows=[{json.dumps(bad)}]")


# --- shared clusters: existing accounts, no RBAC, two releases in one namespace ------------


def _objects_of(release: Release, kind: str) -> list[str]:
    """Names of this release's objects of a kind (by the instance label)."""
    out = release.cluster.kubectl(
        "-n",
        release.namespace,
        "get",
        kind,
        "-l",
        f"app.kubernetes.io/instance={release.name}",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).stdout
    return sorted(out.split())


def _pods_of(release: Release) -> list[client.V1Pod]:
    """The release's agent pods, once the ReplicaSet controller has created them."""
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=agent"
    return list(
        wait_until(
            lambda: (
                release.core.list_namespaced_pod(release.namespace, label_selector=selector).items
            ),
            timeout=180,
            what=f"the pod of release {release.name} (ReplicaSet controller)",
        )
    )


def test_install_with_existing_accounts(
    make_release: Callable[..., Release], service_account_access: SAFactory
) -> None:
    """serviceAccount.create=false: the pods run as accounts the platform made."""
    need_ctl()
    r = make_release()
    agent = service_account_access(r.namespace, "queue-agent")  # created here, not by helm
    service_account_access(r.namespace, "queue-control")
    r.install(
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=queue-agent",
        "--set",
        "control.jobs.serviceAccount.create=false",
        "--set",
        "control.jobs.serviceAccount.name=queue-control",
    )
    assert _objects_of(r, "serviceaccounts") == []
    # The pod was admitted: its account exists (the ServiceAccount admission checks it).
    (pod,) = _pods_of(r)
    assert pod.spec.service_account_name == "queue-agent"
    # The chart's Roles are bound to those accounts: the agent's may watch its ConfigMap...
    with agent.api_client() as api:
        core = client.CoreV1Api(api)
        core.read_namespaced_config_map("agent-control", r.namespace)
        _watch(core, r.namespace, "metadata.name=agent-control")
        assert _refused(lambda: core.list_namespaced_config_map(r.namespace)) == 403
    # ...and a control Job runs as queue-control, which may patch it.
    r.guide("kubectl create job pause-now --from=cronjob/pause-pulling-agent")
    proc = _run_job_command_as_its_account(r, service_account_access, "pause-now")
    assert proc.returncode == 0, proc.stderr
    assert r.configmap()["state"] == "pause"
    r.upgrade("--reuse-values")  # and upgrades keep working
    assert r.configmap()["state"] == "pause"


def test_install_without_rbac(
    make_release: Callable[..., Release], service_account_access: SAFactory
) -> None:
    """rbac.create=false: no Role; the rules the notes print are the ones that are needed."""
    r = make_release()
    notes = r.install("--set", "rbac.create=false")
    assert _objects_of(r, "roles") == [] and _objects_of(r, "rolebindings") == []
    assert _objects_of(r, "serviceaccounts") == ["pulling-agent", "pulling-agent-control"]
    _pods_of(r)
    assert "rbac.create is false" in notes
    on_cm = "on configmaps, resourceNames [agent-control]"
    assert f"ServiceAccount pulling-agent: get, list, watch {on_cm}" in notes
    assert (
        "ServiceAccount pulling-agent: patch on configmaps, resourceNames [agent-control-status]"
    ) in notes
    assert (
        "ServiceAccount pulling-agent-control: get, patch on configmaps, resourceNames "
        "[agent-control, agent-control-status]"
    ) in notes
    assert "ServiceAccount pulling-agent-control: list on pods" in notes

    ns = r.namespace
    agent = service_account_access(ns, "pulling-agent", create=False)
    with agent.api_client() as api:
        core = client.CoreV1Api(api)
        assert _refused(lambda: core.read_namespaced_config_map("agent-control", ns)) == 403
        # Grant what the notes say, as a platform team would, and the watch works.
        r.cluster.kubectl(
            "-n", r.namespace, "create", "role", "agent-reader", "--verb=get,list,watch",
            "--resource=configmaps", "--resource-name=agent-control",
        )  # fmt: skip
        r.cluster.kubectl(
            "-n", r.namespace, "create", "rolebinding", "agent-reader", "--role=agent-reader",
            f"--serviceaccount={r.namespace}:pulling-agent",
        )  # fmt: skip
        wait_until(
            lambda: core.read_namespaced_config_map("agent-control", r.namespace),
            timeout=60,
            what="the granted Role to apply",
        )
        _watch(core, r.namespace, "metadata.name=agent-control")


def test_two_releases_side_by_side(
    make_release: Callable[..., Release], service_account_access: SAFactory
) -> None:
    """A second release beside the guide's install, same values: no name is shared."""
    need_ctl()
    window = ["--set-json", f"maintenanceWindows=[{json.dumps(WINDOW)}]"]
    first = make_release()
    first.install(*window)
    second = make_release("pulling-agent-b", first.namespace)
    notes = second.install(*window)
    assert "--release pulling-agent-b --configmap pulling-agent-b-control" in notes
    b_window = "pulling-agent-b-agent-maintenance"
    assert f"CronJobs pause-{b_window}, resume-{b_window}" in notes

    # The guide's names stay with the first; the second has its own.
    assert _objects_of(first, "configmaps") == ["agent-control", "agent-control-status"]
    assert _objects_of(second, "configmaps") == [
        "pulling-agent-b-control",
        "pulling-agent-b-control-status",
    ]
    assert _objects_of(first, "cronjobs") == [
        "pause-agent-maintenance",
        "pause-pulling-agent",
        "resume-agent-maintenance",
        "resume-pulling-agent",
    ]
    assert _objects_of(second, "cronjobs") == [
        "pause-pulling-agent-b",
        "pause-pulling-agent-b-agent-maintenance",
        "resume-pulling-agent-b",
        "resume-pulling-agent-b-agent-maintenance",
    ]
    for kind in ("deployments", "serviceaccounts", "roles", "rolebindings", "services"):
        assert set(_objects_of(first, kind)).isdisjoint(_objects_of(second, kind)), kind
    assert _pods_of(first) and _pods_of(second)

    # Each release's control Job changes its own ConfigMap only.
    second.guide(
        "kubectl create job b-pause --from=cronjob/pause-pulling-agent-b-agent-maintenance"
    )
    proc = _run_job_command_as_its_account(second, service_account_access, "b-pause")
    assert proc.returncode == 0, proc.stderr
    assert second.configmap("pulling-agent-b-control")["state"] == "pause"
    assert first.configmap()["state"] == "running"
    b_control = service_account_access(first.namespace, "pulling-agent-b-control", create=False)
    refused = b_control.kubectl(
        "-n", first.namespace, "patch", "configmap", "agent-control", "--type", "merge",
        "-p", '{"data":{"state":"pause"}}', check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()

    # Upgrades keep each live state; removing one release leaves the other whole.
    first.upgrade(*window)
    second.upgrade(*window)
    assert second.configmap("pulling-agent-b-control")["state"] == "pause"
    assert first.configmap()["state"] == "running"
    second.helm("uninstall", second.name, "--wait")
    assert _objects_of(second, "configmaps") == []
    assert _objects_of(first, "configmaps") == ["agent-control", "agent-control-status"]
    assert len(_objects_of(first, "cronjobs")) == 4


def test_a_name_another_release_owns_fails_before_anything_is_made(
    make_release: Callable[..., Release],
) -> None:
    first = make_release()
    first.install()
    second = make_release("other", first.namespace)
    with pytest.raises(ProviderError) as info:
        second.install("--set", "control.configMapName=agent-control")
    message = str(info.value)
    assert (
        'ConfigMap "agent-control"' in message and 'belongs to release "pulling-agent"' in message
    )
    assert "change control.configMapName" in message
    assert _objects_of(second, "all,configmaps,serviceaccounts,roles") == []
    assert first.configmap() == {"state": "running"}


def test_a_release_that_owns_agent_control_keeps_it(make_release: Callable[..., Release]) -> None:
    """A release installed when every release's ConfigMap was agent-control keeps its state.

    Installed with control.configMapName=agent-control (the old default), paused, then
    upgraded with the new default (empty): the name, and the pause, stay.
    """
    r = make_release("legacy")
    r.install("--set", "control.configMapName=agent-control")
    r.upgrade("--set", "control.configMapName=agent-control", "--set", "control.state=pause")
    r.upgrade("--reset-values")  # the chart's defaults: configMapName and state empty
    assert _objects_of(r, "configmaps") == ["agent-control", "agent-control-status"]
    assert r.configmap()["state"] == "pause"
    apps = client.AppsV1Api(r.core.api_client)
    deployment = apps.read_namespaced_deployment("legacy-pulling-agent", r.namespace)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["PULLING_AGENT_CONFIGMAP"] == "agent-control"


# --- with a kubelet (kind): the guide's five methods on running pods ----------------------


@pytest.mark.requires_pods
def test_pods_method_1_control_script(running: Callable[..., Release]) -> None:
    r = running()
    out = r.guide(f"cd {REPO_ROOT} && ./control/control-agent.sh pause --reason e2e").stdout
    assert "Pausing agent" in out and "Agent successfully paused" in out
    expect_state(r, "paused")
    r.guide(f"cd {REPO_ROOT} && ./control/control-agent.sh status")
    r.guide(f"cd {REPO_ROOT} && NAMESPACE={r.namespace} make k8s-resume")
    expect_state(r, "running")


@pytest.mark.requires_pods
def test_pods_method_2_configmap(running: Callable[..., Release]) -> None:
    r = running()
    r.guide(
        "kubectl create configmap agent-control --from-literal=state=pause "
        "-o yaml --dry-run=client | kubectl apply -f -"
    )
    expect_state(r, "paused")
    assert "Pausing agent" in r.guide(f"POD={POD}; kubectl logs $POD --tail=200").stdout
    r.guide(
        "kubectl create configmap agent-control --from-literal=state=running "
        "-o yaml --dry-run=client | kubectl apply -f -"
    )
    expect_state(r, "running")


@pytest.mark.requires_pods
def test_pods_method_3_signals(running: Callable[..., Release]) -> None:
    r = running()
    r.guide(f"POD={POD}; kubectl exec $POD -- kill -USR1 1")
    expect_state(r, "paused")
    r.guide(f"POD={POD}; kubectl exec $POD -- kill -USR2 1")
    expect_state(r, "running")
    logs = r.guide(f"POD={POD}; kubectl logs $POD --tail=200").stdout
    assert "Pausing agent" in logs and "Resuming agent" in logs


@pytest.mark.requires_pods
def test_pods_method_4_jobs(running: Callable[..., Release]) -> None:
    r = running()
    r.guide("kubectl create job pause-now --from=cronjob/pause-pulling-agent")
    r.guide("kubectl wait --for=condition=complete job/pause-now --timeout=300s")
    assert "ConfigMap updated to 'pause'" in r.guide("kubectl logs job/pause-now").stdout
    expect_state(r, "paused")
    r.guide("kubectl create job resume-now --from=cronjob/resume-pulling-agent")
    r.guide("kubectl wait --for=condition=complete job/resume-now --timeout=300s")
    expect_state(r, "running")
    assert "pause-now" in r.guide("kubectl get jobs -l app=pulling-agent-control").stdout


@pytest.mark.requires_pods
def test_pods_method_5_cronjobs(running: Callable[..., Release]) -> None:
    r = running("--set-json", f"maintenanceWindows=[{json.dumps(WINDOW)}]")
    r.guide("kubectl create job manual-pause --from=cronjob/pause-agent-maintenance")
    r.guide("kubectl wait --for=condition=complete job/manual-pause --timeout=300s")
    expect_state(r, "paused")
    assert r.configmap()["reason"] == "nightly backup"
    r.guide("kubectl create job manual-resume --from=cronjob/resume-agent-maintenance")
    r.guide("kubectl wait --for=condition=complete job/manual-resume --timeout=300s")
    expect_state(r, "running")
