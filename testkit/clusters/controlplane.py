"""The `controlplane` provider: a real etcd, kube-apiserver and kube-controller-manager.

Started from the binaries `make tools` builds into ./bin, the way controller-runtime's envtest
runs a control plane, with a little more switched on:

* etcd on free loopback ports, data in the session's temporary directory (no fsync: the data
  is thrown away);
* kube-apiserver on a free loopback port with certificates from a throw-away CA
  (`pki.TestCA`), RBAC authorization, the default admission plugins (PodSecurity among them),
  client-certificate authentication (the admin kubeconfig's user is in `system:masters`),
  ServiceAccount issuer, verification and signing keys (so TokenRequest works);
* kube-controller-manager, authenticated as `system:kube-controller-manager`, with every
  on-by-default controller (Deployment -> ReplicaSet -> Pod, CronJob -> Job, the namespace,
  ServiceAccount and root-CA publisher controllers...), each using its own ServiceAccount
  credentials, and the same signing key.

There is no kubelet and no scheduler: pods are created but stay Pending.

Every process is a child of the test session; `stop()` ends them (SIGTERM, then SIGKILL), and
on Linux each is also given a parent-death signal so that none outlives a killed pytest.
Logs stay in the work directory (`<workdir>/logs/*.log`); start-up failures quote their tail.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from kubernetes import client

from .base import (
    BIN_DIR,
    Cluster,
    ProviderError,
    kubeconfig_dict,
    wait_until,
    write_kubeconfig,
)
from .pki import TestCA

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"  # allocations only; nothing is routed
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = float(os.environ.get("PULLING_AGENT_CONTROLPLANE_TIMEOUT", "300"))


def missing_binaries(bin_dir: Path = BIN_DIR) -> list[str]:
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: SIGKILL this child if the test session dies (Linux prctl)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Component:
    """One cluster process: its command line, its log and its life.

    `detach=True` (for a cluster that outlives its starter, `make cluster-up`): no
    parent-death signal, so the process lives on after the Python process that started it.
    """

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, *, detach: bool = False
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.detach = detach
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"\n==== start {time.strftime('%H:%M:%S')}: {self.argv}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C to pytest reaches us, not the children directly
            preexec_fn=None if self.detach else _die_with_parent,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise ProviderError quoting the log if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProviderError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, *, graceful: bool = True, timeout: float = 10.0) -> None:
        """End the process: SIGTERM and up to `timeout` seconds, then SIGKILL; or SIGKILL now.

        (kube-apiserver waits up to a minute for clients' open connections on SIGTERM; the
        data is in etcd, so a SIGKILL loses nothing.)
        """
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            if graceful:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
            proc.wait(60)
        if self._log is not None:
            self._log.write(f"==== stopped {time.strftime('%H:%M:%S')}\n".encode())
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ControlPlane(Cluster):
    """etcd + kube-apiserver + kube-controller-manager from ./bin, in `workdir`."""

    provider = "controlplane"
    runs_pods = False
    agent_image = None

    #: the address kube-apiserver listens on and advertises
    host = "127.0.0.1"
    #: ClusterIPs; on controlplane allocations only, nothing is routed
    service_range = SERVICE_CLUSTER_IP_RANGE
    #: processes outlive the Python process that started them (see Component)
    detach = False

    def __init__(self, workdir: Path, bin_dir: Path = BIN_DIR) -> None:
        super().__init__(workdir / "admin.kubeconfig")
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.log_dir = workdir / "logs"
        self.etcd_port, self.etcd_peer_port, self.apiserver_port = free_ports(3)
        self.apiserver_url = f"https://{self.host}:{self.apiserver_port}"
        self.etcd: Component | None = None
        self.apiserver: Component | None = None
        self.controller_manager: Component | None = None
        self.ca: TestCA | None = None
        #: seconds from start() to a usable plane (API ready, controllers running)
        self.startup_seconds: float | None = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        missing = missing_binaries(self.bin_dir)
        if missing:
            raise ProviderError(
                f"controlplane needs {', '.join(missing)} in {self.bin_dir}: run 'make tools'"
            )
        began = time.monotonic()
        try:
            self._make_certificates()
            self._start_etcd()
            self._start_apiserver_component()
            self._start_controller_manager()
            self._wait_for_controllers()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        for component in (self.controller_manager, self.apiserver, self.etcd):
            if component is not None:
                component.stop()

    def component(self, name: str, argv: Sequence[str]) -> Component:
        """A Component logging to <log_dir>/<name>.log, detached if this cluster is."""
        return Component(name, argv, self.log_dir / f"{name}.log", detach=self.detach)

    def started(self, component: Component) -> None:
        """Called after each component (re)starts; subclasses record its pid."""

    # -- outages ---------------------------------------------------------------------------
    def stop_apiserver(self, *, graceful: bool = False) -> None:
        """Stop kube-apiserver; etcd and the controller manager keep running.

        By default it is killed (SIGKILL: a crash, and quick); `graceful=True` sends SIGTERM
        first, which can take the apiserver's shutdown timeout while clients hold watches.
        """
        if self.apiserver is not None:
            self.apiserver.stop(graceful=graceful)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again, same port, flags and data; return when it is ready."""
        if self.apiserver is None:
            raise ProviderError("start_apiserver() before start()")
        self.apiserver.start()
        self.started(self.apiserver)
        self._wait_for_apiserver()

    def restart_apiserver(self, *, down_for: float = 0.0, graceful: bool = False) -> None:
        """Stop kube-apiserver, stay down `down_for` seconds, start it on the same port."""
        self.stop_apiserver(graceful=graceful)
        if down_for > 0:
            time.sleep(down_for)
        self.start_apiserver()

    def describe(self) -> str:
        return f"controlplane at {self.apiserver_url} (work dir {self.workdir})"

    # -- steps -----------------------------------------------------------------------------
    def _make_certificates(self) -> None:
        self.ca = ca = TestCA(self.workdir / "pki")
        self.serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=tuple(
                dict.fromkeys(("127.0.0.1", self.host, _first_ip(self.service_range)))
            ),
        )
        self.admin = ca.issue(
            "admin", common_name="e2e-admin", organizations=("system:masters",), client=True
        )
        self.kcm_cert = ca.issue(
            "kube-controller-manager", common_name="system:kube-controller-manager", client=True
        )
        self.sa_key = ca.service_account_key()
        ca_pem = ca.ca.cert.read_bytes()
        write_kubeconfig(
            self.kubeconfig,
            kubeconfig_dict(
                server=self.apiserver_url,
                ca_pem=ca_pem,
                user=_cert_user(self.admin.cert, self.admin.key),
                name="pulling-agent-e2e",
            ),
        )
        self.kcm_kubeconfig = write_kubeconfig(
            self.workdir / "kube-controller-manager.kubeconfig",
            kubeconfig_dict(
                server=self.apiserver_url,
                ca_pem=ca_pem,
                user=_cert_user(self.kcm_cert.cert, self.kcm_cert.key),
                name="kube-controller-manager",
            ),
        )

    def _start_etcd(self) -> None:
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd = self.component(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        etcd = self.etcd
        etcd.start()
        self.started(etcd)

        def healthy() -> bool:
            etcd.check_alive()
            with urllib.request.urlopen(f"{client_url}/health", timeout=5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")

        wait_or_explain(healthy, etcd, "etcd /health")

    def _start_apiserver_component(self) -> None:
        assert self.ca is not None
        flags = self.apiserver_flags()
        self.apiserver = self.component(
            "kube-apiserver",
            [str(self.bin_dir / "kube-apiserver"), *(f"--{k}={v}" for k, v in flags.items())],
        )
        self.start_apiserver()

    def apiserver_flags(self) -> dict[str, str]:
        """kube-apiserver's flags (subclasses add to them)."""
        assert self.ca is not None
        return {
            "etcd-servers": f"http://127.0.0.1:{self.etcd_port}",
            "bind-address": self.host,
            "advertise-address": self.host,
            "secure-port": str(self.apiserver_port),
            "tls-cert-file": str(self.serving.cert),
            "tls-private-key-file": str(self.serving.key),
            "client-ca-file": str(self.ca.ca.cert),
            "authorization-mode": "RBAC",
            "allow-privileged": "true",  # so PodSecurity, not this flag, refuses them
            "service-cluster-ip-range": self.service_range,
            "service-account-issuer": SERVICE_ACCOUNT_ISSUER,
            "service-account-key-file": str(self.sa_key),
            "service-account-signing-key-file": str(self.sa_key),
            "endpoint-reconciler-type": "none",  # no real endpoint on loopback
            "profiling": "false",
            "v": "1",
        }

    def _wait_for_apiserver(self) -> None:
        assert self.apiserver is not None and self.ca is not None
        context = ssl.create_default_context(cafile=str(self.ca.ca.cert))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        apiserver = self.apiserver

        def ready() -> bool:
            apiserver.check_alive()
            url = f"{self.apiserver_url}/readyz"
            try:
                with urllib.request.urlopen(url, context=context, timeout=10) as resp:
                    return resp.status == 200
            except urllib.error.HTTPError:
                return False  # 500 while post-start hooks (RBAC bootstrap...) run

        wait_or_explain(ready, apiserver, "kube-apiserver /readyz")

    def _start_controller_manager(self) -> None:
        assert self.ca is not None
        self.controller_manager = self.component(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kcm_kubeconfig}",
                "--secure-port=0",  # no HTTPS endpoint of its own: nothing to collide with
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.sa_key}",
                f"--root-ca-file={self.ca.ca.cert}",
                f"--cluster-signing-cert-file={self.ca.ca.cert}",
                f"--cluster-signing-key-file={self.ca.ca.key}",
                f"--service-cluster-ip-range={self.service_range}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        self.controller_manager.start()
        self.started(self.controller_manager)

    def _wait_for_controllers(self) -> None:
        """Ready when the ServiceAccount and root-CA controllers have done the default namespace."""
        assert self.controller_manager is not None
        kcm = self.controller_manager
        with self.api_client() as api:
            core = client.CoreV1Api(api)

            def default_namespace_done() -> bool:
                kcm.check_alive()
                core.read_namespaced_service_account("default", "default")
                core.read_namespaced_config_map("kube-root-ca.crt", "default")
                return True

            wait_or_explain(
                default_namespace_done,
                kcm,
                "kube-controller-manager to create ServiceAccount default/default "
                "and ConfigMap default/kube-root-ca.crt",
            )


def _first_ip(cidr: str) -> str:
    """The first host address of a range: the `kubernetes` Service's ClusterIP."""
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _cert_user(cert: Path, key: Path) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }


def wait_or_explain(predicate: Callable[[], bool], component: Component, what: str) -> None:
    """wait_until with the component's log tail in the error."""
    try:
        wait_until(predicate, timeout=START_TIMEOUT, interval=0.25, what=what)
    except TimeoutError as exc:
        component.check_alive()  # an exit explains more than the time-out
        raise ProviderError(
            f"{exc}; last lines of {component.log_path}:\n{component.log_tail()}"
        ) from exc
