"""Smoke tests that prove the e2e cluster is a real Kubernetes control plane, not a fake.

Each test checks a behaviour that only the real components have: RBAC on TokenRequest tokens,
PodSecurity admission, kubectl's CronJob instantiation, the controllers of
kube-controller-manager, watch semantics, and clients reconnecting after an apiserver restart.
They run on every provider; the restart test needs the controlplane provider.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from testkit.clusters import Cluster, ControlPlane, wait_until
from testkit.clusters.base import REPO_ROOT
from tests.e2e.access import ServiceAccountAccess

pytestmark = pytest.mark.e2e

MakeNamespace = Callable[..., str]
SAFactory = Callable[..., ServiceAccountAccess]
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # never pulled on controlplane (no kubelet)


def _pinned(key: str) -> str:
    for line in (REPO_ROOT / "tools" / "versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"{key} not in tools/versions.env")


def _status(call: Callable[[], Any]) -> int:
    """The HTTP status of an API call: 200 when it succeeds, else the ApiException's."""
    try:
        call()
    except client.ApiException as exc:
        return int(exc.status)
    return 200


def _reachable(core: client.CoreV1Api) -> bool:
    try:
        core.list_namespace(limit=1, _request_timeout=5)
    except client.ApiException:
        return True  # an HTTP answer, even an error, means the server is up
    except Exception:  # urllib3 connection errors
        return False
    return True


def _restricted_pod(name: str, image: str = PAUSE_IMAGE) -> client.V1Pod:
    """A Pod that passes Pod Security `restricted` (non-root, no escalation, RuntimeDefault)."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=65532,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[
                client.V1Container(
                    name="main",
                    image=image,
                    security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False,
                        capabilities=client.V1Capabilities(drop=["ALL"]),
                    ),
                )
            ],
        ),
    )


def _create_deployment(apps: client.AppsV1Api, ns: str, app: str, *, replicas: int) -> None:
    """A Deployment `app` of restricted-compliant pods labelled app=<app>."""
    labels = {"app": app}
    apps.create_namespaced_deployment(
        ns,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=app),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=_restricted_pod("unused").spec,
                ),
            ),
        ),
    )


def test_versions_are_the_pinned_ones(cluster: Cluster, api_client: client.ApiClient) -> None:
    """The binaries report the versions pinned in tools/versions.env (ldflags worked)."""
    if not isinstance(cluster, ControlPlane):
        pytest.skip(f"the {cluster.provider} provider does not run the pinned kube-apiserver")
    server = client.VersionApi(api_client).get_code()
    assert server.git_version == _pinned("KUBERNETES_VERSION")
    out = json.loads(cluster.kubectl("version", "--output=json").stdout)
    assert out["clientVersion"]["gitVersion"] == _pinned("KUBERNETES_VERSION")
    assert out["serverVersion"]["gitVersion"] == _pinned("KUBERNETES_VERSION")


def test_tokenrequest_token_is_bound_by_rbac(
    api_client: client.ApiClient,
    make_namespace: MakeNamespace,
    service_account_access: SAFactory,
) -> None:
    """A TokenRequest token gets what its Role grants and a 403 for everything else."""
    ns = make_namespace("rbac")
    other_ns = make_namespace("rbac-other")
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        ns,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=ns)],
        ),
    )
    access = service_account_access(ns, "reader")
    assert access.token.count(".") == 2  # a signed JWT, not a static token

    with access.api_client() as sa_api:
        core = client.CoreV1Api(sa_api)
        # Granted (polled: the RBAC authorizer's cache may take a moment to see the binding).
        wait_until(
            lambda: core.list_namespaced_config_map(ns) is not None,
            timeout=120,
            what="the Role to allow listing configmaps",
        )
        assert _status(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns)) == 200
        # Not granted: 403 Forbidden (not 401: the token itself is valid).
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"), data={"a": "b"})
        assert _status(lambda: core.create_namespaced_config_map(ns, cm)) == 403
        assert _status(lambda: core.list_namespaced_secret(ns)) == 403
        assert _status(lambda: core.list_namespaced_config_map(other_ns)) == 403
        assert _status(lambda: core.list_namespace()) == 403

    # The same through kubectl, as that ServiceAccount.
    whoami = json.loads(access.kubectl("auth", "whoami", "--output=json").stdout)
    assert whoami["status"]["userInfo"]["username"] == access.username
    assert access.kubectl("auth", "can-i", "list", "configmaps", "-n", ns).stdout.strip() == "yes"
    denied = access.kubectl("auth", "can-i", "delete", "configmaps", "-n", ns, check=False)
    assert denied.stdout.strip() == "no"
    refused = access.kubectl("get", "secrets", "-n", ns, check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()


def test_pod_security_restricted_is_enforced(
    api_client: client.ApiClient, make_namespace: MakeNamespace
) -> None:
    """PodSecurity admission rejects a privileged Pod and admits a restricted-compliant one."""
    ns = make_namespace("psa", pod_security="restricted")
    core = client.CoreV1Api(api_client)
    privileged = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image=PAUSE_IMAGE,
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ]
        ),
    )
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(ns, privileged)
    assert refused.value.status == 403
    assert "violates PodSecurity" in str(refused.value.body)
    assert "restricted:latest" in str(refused.value.body)

    created = core.create_namespaced_pod(ns, _restricted_pod("compliant"))
    assert created.metadata.name == "compliant"
    # Also refused: a pod that omits the restricted settings (root allowed, no seccomp).
    lax = client.V1Pod(
        metadata=client.V1ObjectMeta(name="lax"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image=PAUSE_IMAGE)]),
    )
    assert _status(lambda: core.create_namespaced_pod(ns, lax)) == 403


def test_kubectl_creates_a_job_from_a_cronjob(
    cluster: Cluster, api_client: client.ApiClient, make_namespace: MakeNamespace
) -> None:
    """`kubectl create job --from=cronjob/...` makes a Job; the Job controller makes its Pod."""
    ns = make_namespace("cronjob")
    batch = client.BatchV1Api(api_client)
    template = _restricted_pod("unused")
    template.spec.restart_policy = "Never"
    batch.create_namespaced_cron_job(
        ns,
        client.V1CronJob(
            metadata=client.V1ObjectMeta(name="nightly"),
            spec=client.V1CronJobSpec(
                schedule="0 3 1 1 *",
                suspend=True,  # only the manual run below
                job_template=client.V1JobTemplateSpec(
                    spec=client.V1JobSpec(
                        backoff_limit=0,
                        template=client.V1PodTemplateSpec(
                            metadata=client.V1ObjectMeta(labels={"app": "nightly"}),
                            spec=template.spec,
                        ),
                    )
                ),
            ),
        ),
    )
    out = cluster.kubectl("create", "job", "--from=cronjob/nightly", "manual-1", "-n", ns)
    assert "job.batch/manual-1 created" in out.stdout

    job = batch.read_namespaced_job("manual-1", ns)
    owners = job.metadata.owner_references or []
    assert [(o.kind, o.name) for o in owners] == [("CronJob", "nightly")]
    assert (job.metadata.annotations or {}).get("cronjob.kubernetes.io/instantiate") == "manual"

    core = client.CoreV1Api(api_client)
    pods = wait_until(
        lambda: core.list_namespaced_pod(ns, label_selector="job-name=manual-1").items,
        timeout=180,
        what="the Job controller to create the Job's Pod",
    )
    assert pods[0].metadata.owner_references[0].kind == "Job"


def test_controller_manager_turns_a_deployment_into_replicaset_and_pods(
    api_client: client.ApiClient, make_namespace: MakeNamespace, cluster: Cluster
) -> None:
    """Deployment -> ReplicaSet -> Pods, by kube-controller-manager.

    On controlplane there is no scheduler and no kubelet: the Pods exist, unscheduled and
    Pending, and the Deployment never becomes available.  That is all this tier can show.
    """
    ns = make_namespace("deploy")
    apps = client.AppsV1Api(api_client)
    _create_deployment(apps, ns, "smoke", replicas=2)
    replica_sets = wait_until(
        lambda: apps.list_namespaced_replica_set(ns, label_selector="app=smoke").items,
        timeout=180,
        what="the Deployment controller to create a ReplicaSet",
    )
    rs = replica_sets[0]
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.owner_references[0].name == "smoke"

    core = client.CoreV1Api(api_client)
    pods = wait_until(
        lambda: (
            items
            if len(items := core.list_namespaced_pod(ns, label_selector="app=smoke").items) == 2
            else None
        ),
        timeout=180,
        what="the ReplicaSet controller to create 2 Pods",
    )
    for pod in pods:
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert pod.metadata.owner_references[0].name == rs.metadata.name
    if not cluster.runs_pods:
        for pod in pods:
            assert pod.status.phase == "Pending"
            assert not pod.spec.node_name  # no scheduler, no kubelet


def _watch_configmap(
    api: client.ApiClient, ns: str, name: str, resource_version: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """(event type, data) from one watch request that starts at `resource_version`."""
    core = client.CoreV1Api(api)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        ns,
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=120,
        allow_watch_bookmarks=False,
    )
    for event in stream:
        yield event["type"], dict(event["object"].data or {})


def test_configmap_watch_sees_modified_events(api_client: client.ApiClient, namespace: str) -> None:
    """A watch from the ConfigMap's resourceVersion delivers each change as MODIFIED, live."""
    core = client.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="control"), data={"state": "run"}),
    )
    events: queue.Queue[tuple[str, dict[str, str]] | BaseException] = queue.Queue()

    def consume() -> None:
        try:
            for item in _watch_configmap(
                api_client, namespace, "control", cm.metadata.resource_version
            ):
                events.put(item)
        except BaseException as exc:  # reported to the test thread
            events.put(exc)

    watcher = threading.Thread(target=consume, daemon=True)
    watcher.start()

    def next_event() -> tuple[str, dict[str, str]]:
        item = events.get(timeout=120)
        if isinstance(item, BaseException):
            raise item
        return item

    core.patch_namespaced_config_map("control", namespace, {"data": {"state": "pause"}})
    # Starting at the creation's resourceVersion: no ADDED replay, only the change.
    assert next_event() == ("MODIFIED", {"state": "pause"})
    # And the same stream, still open, sees the next change as it happens.
    core.patch_namespaced_config_map("control", namespace, {"data": {"state": "run"}})
    assert next_event() == ("MODIFIED", {"state": "run"})


@pytest.mark.requires_pods
def test_agent_image_runs_as_a_pod(
    cluster: Cluster, api_client: client.ApiClient, namespace: str
) -> None:
    """Where pods run (kind, existing), the agent image starts and its output is readable."""
    if cluster.agent_image is None:
        pytest.skip("no agent image for this cluster (set PULLING_AGENT_IMAGE)")
    pod = _restricted_pod("hello", image=cluster.agent_image)
    pod.spec.restart_policy = "Never"
    pod.spec.containers[0].command = ["python", "-c", "print('hello from the agent image')"]
    pod.spec.containers[0].image_pull_policy = "IfNotPresent"  # loaded by kind, not pulled
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, pod)
    wait_until(
        lambda: core.read_namespaced_pod("hello", namespace).status.phase == "Succeeded",
        timeout=300,
        what="the pod to run to completion",
    )
    assert "hello from the agent image" in core.read_namespaced_pod_log("hello", namespace)


def test_pytest_helm_charts_kube_cluster_uses_this_cluster(
    kube_cluster: Any, cluster: Cluster
) -> None:
    """pytest-helm-charts' `kube_cluster` (pykube-ng, kubectl) points at the same cluster."""
    assert kube_cluster.kube_config_path == str(cluster.kubeconfig)
    namespaces = {ns["metadata"]["name"] for ns in kube_cluster.kubectl("get namespaces")}
    assert {"default", "kube-system"} <= namespaces


def test_client_reconnects_after_apiserver_restart(
    controlplane: ControlPlane, make_namespace: MakeNamespace, tmp_path: Path
) -> None:
    """After kube-apiserver is killed and restarted on the same port, the same ApiClient and
    kube-controller-manager carry on; the data (in etcd) is intact."""
    with controlplane.api_client() as api:
        core = client.CoreV1Api(api)
        ns = make_namespace("restart")
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept"), data={"k": "v"})
        )

        controlplane.stop_apiserver()
        assert not _reachable(core)  # really down: connection refused
        controlplane.start_apiserver()

        # The same client object, no re-configuration: reconnects on its own.
        kept = wait_until(
            lambda: core.read_namespaced_config_map("kept", ns),
            timeout=120,
            what="the old ApiClient to reach the restarted apiserver",
        )
        assert kept.data == {"k": "v"}

        # kube-controller-manager reconnected too: it still makes ReplicaSets.
        apps = client.AppsV1Api(api)
        _create_deployment(apps, ns, "after", replicas=1)
        wait_until(
            lambda: apps.list_namespaced_replica_set(ns, label_selector="app=after").items,
            timeout=300,
            what="kube-controller-manager (reconnected) to create a ReplicaSet",
        )
