"""Fixtures for the e2e tier: tests through a real Kubernetes API.

Provider (chosen once per session, see testkit/clusters/__init__.py)
    PULLING_AGENT_CLUSTER=node|controlplane|kind|existing; by default node when this machine
    can run it (root, Debian's containerd/runc/CNI plugins, ./bin from `make tools`), else
    controlplane when `make tools` has built ./bin, else every e2e test skips with a one-line
    reason.  kind only when asked for.  The cluster's start-up time is printed at the end of
    the run ("e2e cluster: ...").  A cluster that cannot start is one error (the first test);
    the other e2e tests then skip, pointing at it.

    node          the control plane below plus kube-scheduler, kube-proxy, a kubelet and its
                  own containerd, CNI bridge networking; the agent image built here
                  (tools/build-image.sh) and loaded: pods run.
    controlplane  real etcd + kube-apiserver + kube-controller-manager from ./bin (RBAC,
                  PodSecurity and the other default admission plugins, TokenRequest, every
                  default controller); no kubelet and no scheduler: pods stay Pending.
    kind          a kind cluster with the agent image `pulling-agent:e2e` loaded.
    existing      whatever $KUBECONFIG points at (PULLING_AGENT_IMAGE names the image).

Fixtures
    cluster                  (session) `testkit.clusters.base.Cluster`, started:
                             .provider       "node" | "controlplane" | "kind" | "existing"
                             .kubeconfig     Path of the admin kubeconfig (system:masters)
                             .runs_pods      False on controlplane
                             .agent_image    image the cluster can run, or None
                             .api_client(kubeconfig=None) -> new kubernetes.client.ApiClient
                             .kubectl(*args, kubeconfig=None, input=None, check=True,
                                      timeout=180) -> CompletedProcess[str] (./bin/kubectl;
                                      a failure raises ProviderError with stdout/stderr)
                             .env(kubeconfig=None) -> os.environ + KUBECONFIG + ./bin on PATH,
                                      for helm, kubectl or the agent as a subprocess
    api_client               (session) the admin kubernetes.client.ApiClient
    controlplane             (session) the `ControlPlane` (node is one too), or a skip:
                             .stop_apiserver(graceful=False), .start_apiserver(),
                             .restart_apiserver(down_for=0.0, graceful=False) — same port,
                             etcd and controller manager keep running; .apiserver_url,
                             .log_dir (component logs), .startup_seconds
    make_namespace           (function) make_namespace(prefix=None, *, pod_security=None,
                             labels=None) -> name.  A fresh namespace, deleted after the
                             test; pod_security="restricted" (or "baseline", "privileged")
                             sets the pod-security.kubernetes.io/enforce, warn and audit
                             labels.  Returns once its "default" ServiceAccount exists.
    namespace                (function) make_namespace() with no Pod Security labels.
    make_release, release, running
                             (function) a helm release of the chart in a fresh `restricted`
                             namespace: not installed / installed / installed and RUNNING
                             (see tests/e2e/release.py)
    service_account_access   (function) service_account_access(namespace, name, *,
                             create=True, expiration_seconds=3600, audiences=()) ->
                             `access.ServiceAccountAccess` with .token, .kubeconfig,
                             .username, .api_client(), .kubectl(...), .env(): a real token
                             from the TokenRequest API, so RBAC applies exactly as in a pod.
    kube_config, cluster_type  overrides of pytest-helm-charts' fixtures, so its
                             `kube_cluster` (pykube-ng HTTPClient + .kubectl()) and
                             namespace fixtures work against the chosen cluster.

    While an e2e test runs, KUBECONFIG is the admin kubeconfig and ./bin leads PATH, so a
    stray `kubectl`/`helm` can only reach the test cluster (never a developer's own).

Helpers: `testkit.clusters.wait_until(predicate, timeout=, interval=, what=)` polls (exceptions
count as "not yet"); use it instead of sleeps, and never assert on durations.

Markers
    requires_pods  needs running pods (exec, probes, logs): skipped on controlplane with
                   "needs running pods (a kubelet); the controlplane provider has none".
    e2e            added to every test in this directory.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from kubernetes import client

from testkit.clusters import Choice, Cluster, ControlPlane, ProviderError, choose, wait_until
from testkit.clusters.base import BIN_DIR
from tests.e2e.access import ServiceAccountAccess, mint_service_account_access
from tests.e2e.release import RELEASE, Release, expect_state

RUNS_PODS_ENV = "PULLING_AGENT_RUNS_PODS"
NO_KUBELET = "needs running pods (a kubelet); the controlplane provider has none"
HERE = Path(__file__).parent
_STARTED = pytest.StashKey[Cluster]()
_FAILED = pytest.StashKey[str]()

MakeNamespace = Callable[..., str]
ServiceAccountAccessFactory = Callable[..., ServiceAccountAccess]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    started = terminalreporter.config.stash.get(_STARTED, None)
    if started is None:
        return
    line = f"e2e cluster: {started.describe()}"
    seconds = getattr(started, "startup_seconds", None)
    if seconds is not None:
        line += f"; started in {seconds:.1f}s"
    terminalreporter.write_line(line)


_CHOICE = pytest.StashKey[Choice]()


def _choice(config: pytest.Config) -> Choice:
    if _CHOICE not in config.stash:
        config.stash[_CHOICE] = choose()
    return config.stash[_CHOICE]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or fail) before any fixture, so no cluster starts for a test that cannot run.

    (A fixture would be too late: pytest sets up the session-scoped `cluster` first.)
    """
    choice = _choice(item.config)
    if _FAILED in item.config.stash:
        pytest.skip(f"the e2e cluster is unusable: {item.config.stash[_FAILED]}")
    if choice.error:
        _fail_once(item.config, choice.error)
    if choice.skip:
        pytest.skip(choice.skip)
    if item.get_closest_marker("requires_pods"):
        if choice.provider == "controlplane":
            pytest.skip(NO_KUBELET)
        if choice.provider == "existing" and os.environ.get(RUNS_PODS_ENV) == "0":
            pytest.skip(f"needs running pods; {RUNS_PODS_ENV}=0 says the cluster has none")


def _fail_once(config: pytest.Config, message: str) -> NoReturn:
    """Fail this test with `message`; every later e2e test skips, pointing at it."""
    config.stash[_FAILED] = message.splitlines()[0][:200] + " (the first e2e test has it all)"
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def cluster_choice(pytestconfig: pytest.Config) -> Choice:
    """The provider for this session (cheap: nothing is started)."""
    return _choice(pytestconfig)


@pytest.fixture(scope="session")
def cluster(
    cluster_choice: Choice,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Cluster]:
    """The started cluster (see the module docstring); stopped at the end of the session."""
    try:
        made = cluster_choice.create(tmp_path_factory.mktemp(cluster_choice.provider or "cluster"))
        made.start()
    except ProviderError as exc:
        failure = f"{cluster_choice.provider} cluster did not start: {exc}"
    else:
        failure = ""
    if failure:  # outside the except: the reason once, not thrice through chained tracebacks
        _fail_once(pytestconfig, failure)
    pytestconfig.stash[_STARTED] = made
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(autouse=True)
def _cluster_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """During each e2e test: KUBECONFIG = the admin kubeconfig, ./bin first on PATH."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("PATH", str(BIN_DIR), prepend=os.pathsep)


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    """The admin ApiClient (official `kubernetes` client), shared by the session."""
    with cluster.api_client() as api:
        yield api


@pytest.fixture(scope="session")
def controlplane(cluster: Cluster) -> ControlPlane:
    """The ControlPlane (stop/start kube-apiserver); skips on the other providers."""
    if not isinstance(cluster, ControlPlane):
        pytest.skip(f"needs the controlplane provider (this run uses {cluster.provider})")
    return cluster


def _namespace_name(prefix: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40].strip("-") or "e2e"
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def make_namespace(
    request: pytest.FixtureRequest, api_client: client.ApiClient
) -> Iterator[MakeNamespace]:
    """Factory of fresh namespaces (optionally with Pod Security labels); deleted afterwards."""
    core = client.CoreV1Api(api_client)
    made: list[str] = []

    def make(
        prefix: str | None = None,
        *,
        pod_security: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        name = _namespace_name(prefix or f"e2e-{request.node.name}")
        all_labels = dict(labels or {})
        if pod_security is not None:
            for mode in ("enforce", "warn", "audit"):
                all_labels[f"pod-security.kubernetes.io/{mode}"] = pod_security
                all_labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=all_labels))
        )
        made.append(name)
        wait_until(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=120,
            what=f"ServiceAccount {name}/default (kube-controller-manager)",
        )
        return name

    yield make
    for name in made:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def make_release(
    cluster: Cluster, make_namespace: MakeNamespace, tmp_path: Path
) -> Iterator[Callable[..., Release]]:
    """Factory: make_release(name=RELEASE, namespace=None, *, prefix="chart") -> a `Release`
    (not installed yet) in a fresh namespace enforcing Pod Security `restricted`, or in
    `namespace` (a second release beside the first)."""
    made: list[Release] = []

    def make(
        name: str = RELEASE, namespace: str | None = None, *, prefix: str = "chart"
    ) -> Release:
        namespace = namespace or make_namespace(prefix, pod_security="restricted")
        release = Release(cluster, namespace, tmp_path, name)
        made.append(release)
        return release

    yield make
    for release in made:
        release.close()


@pytest.fixture
def release(make_release: Callable[..., Release]) -> Release:
    """The chart installed with default values in a namespace enforcing `restricted`."""
    r = make_release()
    r.install()
    return r


@pytest.fixture
def running(make_release: Callable[..., Release]) -> Callable[..., Release]:
    """Factory: running(*helm_args) installs (with 200 demo documents) and waits until the
    agent pods are Ready and RUNNING (needs pods)."""

    def make(*args: str) -> Release:
        r = make_release()
        r.install("--set", "agent.seed=200", *args)
        r.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
        expect_state(r, "running")
        return r

    return make


@pytest.fixture
def namespace(make_namespace: MakeNamespace) -> str:
    """A fresh namespace without Pod Security labels, deleted after the test."""
    return make_namespace()


@pytest.fixture
def service_account_access(
    cluster: Cluster, api_client: client.ApiClient, tmp_path: Path
) -> ServiceAccountAccessFactory:
    """Factory: a TokenRequest token and kubeconfig for a ServiceAccount (created if missing).

    service_account_access(namespace, name, *, create=True, expiration_seconds=3600,
    audiences=()) -> ServiceAccountAccess
    """
    return functools.partial(mint_service_account_access, cluster, api_client, tmp_path)


# -- pytest-helm-charts: point its fixtures at our cluster ---------------------------------
@pytest.fixture(scope="session")
def kube_config(cluster: Cluster) -> str:
    """pytest-helm-charts' kubeconfig path (its `kube_cluster` fixture builds on it)."""
    return str(cluster.kubeconfig)


@pytest.fixture(scope="session")
def cluster_type(cluster: Cluster) -> str:
    """pytest-helm-charts' cluster type: our provider name."""
    return cluster.provider
