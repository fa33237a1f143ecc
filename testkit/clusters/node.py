"""The `node` provider: the control plane plus a real node that runs the chart's pods.

On top of `ControlPlane` (etcd, kube-apiserver, kube-controller-manager), all on this host:

* kube-scheduler, kube-proxy (iptables mode) and a kubelet, built by `make tools` from the same
  pinned Kubernetes;
* a containerd of the node's own (not Docker's: its own socket, root and runc root), with its
  CRI plugin, runc and the CNI plugins from Debian's packages;
* a pod bridge (`pa-node0`, 10.244.0.0/24 by default) whose first address is the node's IP;
  kube-apiserver listens and advertises there, so the `kubernetes` Service (10.96.0.1) reaches
  it through kube-proxy.  A FORWARD guard drops whatever a pod sends anywhere but another pod:
  pod traffic never leaves the machine.  Pods resolve names with 127.0.0.1 only;
* the agent image and the sandbox ("pause") image, built here by `tools/build-image.sh` (no
  registry) and imported into the node's containerd: pods use them without any pull.

The machine's facts this relies on (measured in the node proof of concept): no
CAP_SYS_RESOURCE, so containerd clamps oom_score_adj (`restrict_oom_score_adj`); cgroup v1, so
the kubelet runs with `failCgroupV1: false`; the kubelet's pods live under their own cgroup root
so that a stop can remove them.

Needs root, Linux, ./bin/{kubelet,kube-scheduler,kube-proxy} and the Debian packages
containerd, runc, containernetworking-plugins, iptables (and docker.io, debootstrap, gcc for
the images); `node_problem()` says in one line what is missing.  One node cluster per machine
(see nodehost.py); `stop()` removes every process, mount, network namespace, chain, bridge
and cgroup it made, and fails naming anything that is still there.

Run it for people: `make cluster-up` / `make cluster-down` (`python -m testkit.clusters
up|down|status`, see __main__.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from .base import BIN_DIR, REPO_ROOT, ProviderError, kubeconfig_dict, write_kubeconfig
from .controlplane import (
    Component,
    ControlPlane,
    free_ports,
    missing_binaries,
    wait_or_explain,
)
from .nodehost import (
    DEFAULT_POD_SUBNET,
    DEFAULT_SERVICE_RANGE,
    RECORD,
    HostError,
    NodeLayout,
    Record,
    check_addresses,
    host_lock,
    kill_node_processes,
    leftovers,
    netns_names,
    prepare_cgroups,
    prepare_network,
    processes_where,
    stop_pids,
    teardown_host,
)

NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy")
HOST_COMMANDS = ("containerd", "ctr", "runc", "ip", "iptables", "iptables-save", "ip6tables-save")
CNI_BIN_DIR = Path(os.environ.get("PULLING_AGENT_CNI_BIN_DIR", "/usr/lib/cni"))
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
IMAGE_BUILDER = REPO_ROOT / "tools" / "build-image.sh"
CLUSTER_DIR = Path(os.environ.get("PULLING_AGENT_CLUSTER_DIR", "/var/tmp/pulling-agent-cluster"))
#: the order processes are stopped in: the node first, the control plane last
STOP_ORDER = (
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "containerd",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)


def node_problem() -> str | None:
    """None when this machine can run a node cluster, else a one-line reason."""
    if not sys.platform.startswith("linux"):
        return "the node provider needs Linux"
    if os.geteuid() != 0:
        return "the node provider needs root (kubelet, containerd, bridges, iptables)"
    missing = missing_binaries() + [n for n in NODE_BINARIES if not os.access(BIN_DIR / n, os.X_OK)]
    if missing:
        return f"{', '.join(missing)} missing from {BIN_DIR} (run 'make tools')"
    commands = [c for c in HOST_COMMANDS if shutil.which(c) is None]
    plugins = [p for p in CNI_PLUGINS if not (CNI_BIN_DIR / p).exists()]
    if commands or plugins:
        what = commands + [f"{CNI_BIN_DIR}/{p}" for p in plugins]
        return (
            f"the node provider needs {', '.join(what)} (apt-get install containerd runc "
            "containernetworking-plugins iptables; make system-deps)"
        )
    if shutil.which("docker") is None and shutil.which("dockerd") is None:
        return "the node provider builds its images with Docker (apt-get install docker.io)"
    return None


def build_images() -> dict[str, str]:
    """Run tools/build-image.sh; its KEY=value lines (IMAGE, IMAGE_ARCHIVE, PAUSE_...)."""
    try:
        proc = subprocess.run(
            [str(IMAGE_BUILDER)], capture_output=True, text=True, timeout=3600, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ProviderError("tools/build-image.sh took over an hour") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise ProviderError(f"building the images failed (tools/build-image.sh):\n{tail}")
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    for key in ("IMAGE", "IMAGE_ARCHIVE", "PAUSE_IMAGE", "PAUSE_ARCHIVE"):
        if key not in found:
            raise ProviderError(f"tools/build-image.sh printed no {key}=")
    return found


def _qualified(image: str) -> str:
    """What containerd calls an image that Docker calls `name:tag`."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


class NodeCluster(ControlPlane):
    """ControlPlane + containerd + kube-scheduler + kube-proxy + kubelet on this host."""

    provider = "node"
    runs_pods = True

    def __init__(self, workdir: Path, bin_dir: Path = BIN_DIR, *, detach: bool = False) -> None:
        self.layout = NodeLayout(
            workdir=str(workdir.resolve()),
            pod_subnet=os.environ.get("PULLING_AGENT_NODE_POD_SUBNET", DEFAULT_POD_SUBNET),
            service_range=os.environ.get("PULLING_AGENT_NODE_SERVICE_RANGE", DEFAULT_SERVICE_RANGE),
        )
        self.host = self.layout.node_ip
        self.service_range = self.layout.service_range
        self.detach = detach
        super().__init__(workdir.resolve(), bin_dir)
        self.record = Record(
            self.layout, owner="make cluster-up" if detach else f"pid {os.getpid()}"
        )
        self.node_components: dict[str, Component] = {}
        self.images: dict[str, str] = {}
        self.agent_image: str | None = None
        self.scheduler_port, self.proxy_healthz_port, self.proxy_metrics_port = free_ports(3)
        #: set once this cluster holds the host's node resources (bridge, chains, record)
        self.owns_host = False

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        problem = node_problem()
        if problem:
            raise ProviderError(problem)
        began = time.monotonic()
        self.images = build_images()
        try:
            check_addresses(self.layout)  # a bad setting is said first, whatever runs
            with host_lock():
                clear_stale_cluster()
                self.owns_host = True
                self.layout = NodeLayout(**{**self.layout.__dict__, "netns_before": netns_names()})
                self.record.layout = self.layout
                self.record.save()
                prepare_network(self.layout)
                prepare_cgroups(self.layout)
        except HostError as exc:
            self.stop()
            raise ProviderError(str(exc)) from exc
        try:
            super().start()  # certificates, etcd, kube-apiserver, kube-controller-manager
            self._start_containerd()
            self._import_images()
            self._start_scheduler()
            self._start_kube_proxy()
            self._start_kubelet()
            self._wait_for_node()
        except BaseException:
            self.stop()
            raise
        self.agent_image = self.images["IMAGE"]
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        if not self.owns_host:  # another cluster's, or nothing was made
            super().stop()
            return
        with host_lock():
            teardown_recorded(self.record, self.bin_dir)
        for component in self.node_components.values():
            component.stop()  # reap, close the logs
        super().stop()
        self.owns_host = False
        if not self.detach:
            shutil.rmtree(self.workdir / "containerd", ignore_errors=True)
        left = leftovers(self.layout)
        if left:
            raise ProviderError(f"the node cluster left behind: {'; '.join(left)}")

    def started(self, component: Component) -> None:
        if component.pid is not None:
            self.record.pids[component.name] = component.pid
            self.record.save()

    def pod_processes(self, pod_uid: str) -> dict[int, str]:
        """Host pids (with command lines) of a pod's containers, the sandbox's pause included.

        For what only the host can do: a container's init ignores SIGSTOP sent from inside
        its own PID namespace (`kubectl exec POD -- kill -STOP 1` does nothing).
        """
        marker = f"/pod{pod_uid}/"
        return {
            pid: cmd
            for pid, cmd in processes_where(cgroup_has=marker).items()
            if f"/{self.layout.cgroup_root}/" in Path(f"/proc/{pid}/cgroup").read_text()
        }

    def describe(self) -> str:
        return (
            f"node {self.layout.node_name} at {self.apiserver_url} "
            f"(pods {self.layout.pod_subnet} on {self.layout.bridge}, work dir {self.workdir})"
        )

    # -- certificates ----------------------------------------------------------------------
    def apiserver_flags(self) -> dict[str, str]:
        assert self.ca is not None
        flags = super().apiserver_flags()
        del flags["endpoint-reconciler-type"]  # the `kubernetes` Service gets the node IP
        flags.update(
            {
                "authorization-mode": "Node,RBAC",
                "enable-admission-plugins": "NodeRestriction",
                "kubelet-client-certificate": str(self.kubelet_client.cert),
                "kubelet-client-key": str(self.kubelet_client.key),
                "kubelet-certificate-authority": str(self.ca.ca.cert),
                "kubelet-preferred-address-types": "InternalIP",
            }
        )
        return flags

    def _make_certificates(self) -> None:
        super()._make_certificates()
        assert self.ca is not None
        ca, name, ca_pem = self.ca, self.layout.node_name, self.ca.ca.cert.read_bytes()
        self.kubelet_client = ca.issue(
            "apiserver-kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organizations=("system:masters",),
            client=True,
        )
        self.kubelet_serving = ca.issue(
            "kubelet-serving",
            common_name=name,
            server_names=(name,),
            server_ips=(self.layout.node_ip,),
        )
        users = {
            "kubelet": ca.issue(
                "kubelet", common_name=f"system:node:{name}", organizations=("system:nodes",),
                client=True,
            ),
            "kube-scheduler": ca.issue(
                "kube-scheduler", common_name="system:kube-scheduler", client=True
            ),
            "kube-proxy": ca.issue("kube-proxy", common_name="system:kube-proxy", client=True),
        }  # fmt: skip
        self.kubeconfigs = {
            user: write_kubeconfig(
                self.workdir / f"{user}.kubeconfig",
                kubeconfig_dict(
                    server=self.apiserver_url,
                    ca_pem=ca_pem,
                    user={"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                    name=user,
                ),
            )
            for user, pair in users.items()
        }

    # -- the node's processes --------------------------------------------------------------
    def _node_component(self, name: str, argv: list[str]) -> Component:
        component = self.component(name, argv)
        self.node_components[name] = component
        component.start()
        self.started(component)
        return component

    def _start_containerd(self) -> None:
        run = Path(self.layout.run_dir) / "containerd"
        run.mkdir(parents=True, exist_ok=True)
        cni_dir = self.workdir / "cni"
        cni_dir.mkdir(exist_ok=True)
        (cni_dir / "10-pulling-agent.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        config = self.workdir / "containerd.toml"
        config.write_text(self._containerd_config(run, cni_dir))
        containerd = self._node_component(
            "containerd", [shutil.which("containerd") or "containerd", "--config", str(config)]
        )

        def answers() -> bool:
            containerd.check_alive()
            return self._ctr("version", check=False).returncode == 0

        wait_or_explain(answers, containerd, "containerd to answer on its socket")

    def _containerd_config(self, run: Path, cni_dir: Path) -> str:
        root = self.workdir / "containerd"
        pause = _qualified(self.images["PAUSE_IMAGE"])
        return f"""\
# Generated by testkit/clusters/node.py: the node's own containerd (not Docker's).
version = 2
root = "{root}"
state = "{run}/state"

[grpc]
  address = "{self.layout.containerd_socket}"
[ttrpc]
  address = "{self.layout.containerd_socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{root}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{pause}"
    enable_selinux = false
    # No CAP_SYS_RESOURCE on this kind of machine: runc cannot lower oom_score_adj (the
    # kubelet asks -998 for sandboxes); clamp to containerd's own value instead.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "{shutil.which("runc") or "runc"}"
          Root = "{run}/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{CNI_BIN_DIR}"
      conf_dir = "{cni_dir}"
      max_conf_num = 1
"""

    def _cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "0.4.0",
            "name": "pulling-agent-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.layout.bridge,
                    "isGateway": True,
                    "ipMasq": False,  # no NAT: nothing from a pod is meant to leave
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.layout.pod_subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni-ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _ctr(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return _ctr(self.layout, *args, check=check, timeout=timeout)

    def _import_images(self) -> None:
        for key in ("PAUSE_ARCHIVE", "IMAGE_ARCHIVE"):
            self._ctr("images", "import", self.images[key])
        listed = self._ctr("images", "ls", "-q").stdout.split()
        for key in ("PAUSE_IMAGE", "IMAGE"):
            if _qualified(self.images[key]) not in listed:
                raise ProviderError(
                    f"{self.images[key]} is not in the node's containerd after the import "
                    f"(it has: {', '.join(listed)})"
                )

    def _start_scheduler(self) -> None:
        kubeconfig = str(self.kubeconfigs["kube-scheduler"])
        self._node_component(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.scheduler_port}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.kubeconfigs["kube-proxy"])},
            "hostnameOverride": self.layout.node_name,
            "clusterCIDR": self.layout.pod_subnet,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": f"127.0.0.1:{self.proxy_healthz_port}",
            "metricsBindAddress": f"127.0.0.1:{self.proxy_metrics_port}",
            "nodePortAddresses": ["127.0.0.1/32"],
            # Leave the host's conntrack settings alone.
            "conntrack": {
                "maxPerCore": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }
        path = self.workdir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._node_component(
            "kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={path}", "--v=1"]
        )

    def _start_kubelet(self) -> None:
        assert self.ca is not None
        resolv = self.workdir / "pod-resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")  # pods ask nobody outside the pod
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.layout.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.layout.cgroup_root}",
            "failSwapOn": False,
            "failCgroupV1": False,  # kubelet >= 1.35 refuses cgroup v1 hosts otherwise
            "address": self.layout.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "tlsCertFile": str(self.kubelet_serving.cert),
            "tlsPrivateKeyFile": str(self.kubelet_serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "podLogsDir": str(self.workdir / "pod-logs"),
            # A shared test machine: never evict for a disk or memory that is merely busy.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
        }
        path = self.workdir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        root = self.workdir / "kubelet"
        root.mkdir(exist_ok=True)
        self._node_component(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={path}",
                f"--kubeconfig={self.kubeconfigs['kubelet']}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={self.layout.node_name}",
                f"--node-ip={self.layout.node_ip}",
                "--v=1",
            ],
        )

    def _wait_for_node(self) -> None:
        kubelet = self.node_components["kubelet"]
        with self.api_client() as api:
            core = client.CoreV1Api(api)

            def ready() -> bool:
                for component in self.node_components.values():
                    component.check_alive()
                node = core.read_node(self.layout.node_name)
                return any(
                    c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
                )

            wait_or_explain(ready, kubelet, f"node {self.layout.node_name} to be Ready")

        def service_programmed() -> bool:
            self.node_components["kube-proxy"].check_alive()
            nat = subprocess.run(
                ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False
            ).stdout
            return f"{self.layout.service_ip}/32" in nat

        wait_or_explain(
            service_programmed,
            self.node_components["kube-proxy"],
            f"kube-proxy to program the kubernetes Service ({self.layout.service_ip})",
        )


def _ctr(
    layout: NodeLayout, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    argv = ["ctr", "-a", str(layout.containerd_socket), "-n", "k8s.io", *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"{' '.join(argv)}: no answer after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        raise ProviderError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def teardown_recorded(record: Record, bin_dir: Path = BIN_DIR) -> None:
    """Stop a recorded cluster's processes in order and undo its changes to the host."""
    pids = record.pids
    node_first = [n for n in STOP_ORDER[:3] if n in pids]
    stop_pids({n: pids[n] for n in node_first})
    # The pods' processes and containerd's shims: nothing stops them once the kubelet is gone.
    kill_node_processes(record.layout)
    rest = [n for n in STOP_ORDER[3:] if n in pids]
    stop_pids({n: pids[n] for n in rest})
    stop_pids({n: p for n, p in pids.items() if n not in STOP_ORDER})
    teardown_host(record.layout, bin_dir / "kube-proxy")
    if RECORD.exists():
        current = Record.load()
        if current is not None and current.layout.workdir == record.layout.workdir:
            RECORD.unlink()


def clear_stale_cluster() -> None:
    """Refuse to start beside a running node cluster; clean up after a dead one."""
    found = Record.load()
    if found is None:
        return
    alive = found.alive()
    if alive:
        raise HostError(
            f"a node cluster is already running on this machine (started by {found.owner}, "
            f"work dir {found.layout.workdir}; processes {', '.join(sorted(alive))}): "
            "stop it first ('make cluster-down'), or use PULLING_AGENT_CLUSTER=existing "
            f"with KUBECONFIG={found.layout.workdir}/admin.kubeconfig"
        )
    teardown_recorded(found)
