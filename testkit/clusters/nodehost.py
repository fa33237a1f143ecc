"""What a node cluster changes on the host, and how to undo all of it.

A `NodeLayout` names every host-wide thing one node cluster owns: its pod bridge and subnet,
its iptables chain, its cgroup root, its containerd's runtime directory, its work directory.
`prepare()` makes them; `teardown()` removes them, and also whatever the kubelet, kube-proxy
and containerd left (mounts, network namespaces, KUBE-* chains, cgroups, log symlinks);
`leftovers()` lists what is still there, so that a stop can prove it left the host clean.

Everything is a function of the layout, which is saved as JSON beside the process ids
(`RECORD`): `make cluster-down`, a later test session after a crash, and the session that
started the cluster all clean up the same way.

Only one node cluster runs on a machine at a time: kube-proxy's and the kubelet's KUBE-*
chains are machine-wide, whatever the subnet.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUN_ROOT = Path("/run/pulling-agent-node")
RECORD = RUN_ROOT / "cluster.json"
LOCK = Path("/run/pulling-agent-node.lock")
CGROUP_FS = Path("/sys/fs/cgroup")
CONTAINER_LOG_LINKS = Path("/var/log/containers")

DEFAULT_POD_SUBNET = "10.244.0.0/24"
DEFAULT_SERVICE_RANGE = "10.96.0.0/24"
#: every chain name the kubelet and kube-proxy create starts with this
KUBE_CHAIN_PREFIX = "KUBE-"


class HostError(RuntimeError):
    """The host cannot be prepared or cleaned as asked."""


@dataclass(frozen=True)
class NodeLayout:
    """Names and paths one node cluster owns on this host."""

    workdir: str
    pod_subnet: str = DEFAULT_POD_SUBNET
    service_range: str = DEFAULT_SERVICE_RANGE
    bridge: str = "pa-node0"
    chain: str = "PULLING-AGENT-NODE"
    cgroup_root: str = "pulling-agent-node"
    node_name: str = "pulling-agent-node"
    run_dir: str = str(RUN_ROOT)
    #: network namespaces present before the cluster started (not ours to remove)
    netns_before: list[str] = field(default_factory=list)

    @property
    def node_ip(self) -> str:
        """The bridge's address: the node's InternalIP and the pods' gateway."""
        return str(next(ipaddress.ip_network(self.pod_subnet).hosts()))

    @property
    def service_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP (the first address of the range)."""
        return str(next(ipaddress.ip_network(self.service_range).hosts()))

    @property
    def prefix_length(self) -> int:
        return ipaddress.ip_network(self.pod_subnet).prefixlen

    @property
    def containerd_socket(self) -> Path:
        return Path(self.run_dir) / "containerd" / "containerd.sock"

    def owned_paths(self) -> tuple[str, ...]:
        """Directories under which every mount of this cluster lives."""
        return (self.workdir, self.run_dir)


# -- the record: layout + process ids ---------------------------------------------------------
@dataclass
class Record:
    layout: NodeLayout
    owner: str
    pids: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        tmp = RECORD.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"layout": asdict(self.layout), "owner": self.owner, "pids": self.pids})
        )
        tmp.replace(RECORD)

    @staticmethod
    def load() -> Record | None:
        try:
            doc = json.loads(RECORD.read_text())
            return Record(NodeLayout(**doc["layout"]), doc["owner"], dict(doc["pids"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise HostError(f"{RECORD} is not a node cluster record ({exc}); remove it") from exc

    def alive(self) -> dict[str, int]:
        return {name: pid for name, pid in self.pids.items() if pid_alive(pid)}


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialise start and stop of node clusters on this machine."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_pids(pids: dict[str, int], *, timeout: float = 5.0) -> None:
    """SIGTERM each process (newest first), then SIGKILL what is left after `timeout`."""
    for pid in reversed(list(pids.values())):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def processes_where(*, cmdline_has: str = "", cgroup_has: str = "") -> dict[int, str]:
    """Processes whose command line or cgroup path contains the given text, with their
    command lines (cut to 120 characters)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if (cmdline_has and cmdline_has in cmdline) or (cgroup_has and cgroup_has in cgroups):
            found[int(entry.name)] = cmdline.strip()[:120]
    return found


def node_processes(layout: NodeLayout) -> dict[int, str]:
    """Processes of the node that its components do not stop: the pods' processes (in the
    kubelet's cgroup root) and containerd's shims (they name its socket)."""
    return processes_where(
        cmdline_has=str(layout.containerd_socket), cgroup_has=f"/{layout.cgroup_root}/"
    )


def kill_node_processes(layout: NodeLayout) -> None:
    for _ in range(3):
        found = node_processes(layout)
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


# -- commands ---------------------------------------------------------------------------------
def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


# -- network ----------------------------------------------------------------------------------
def host_routes(*, except_device: str = "") -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes (not default, local or broadcast ones), but those through
    `except_device`."""
    out = _run("ip", "-4", "-o", "route", "show", "table", "all", check=False).stdout
    nets = []
    for line in out.splitlines():
        words = line.split()
        if not words or words[0] in ("default", "broadcast", "local", "unreachable"):
            continue
        if except_device and "dev" in words and words[words.index("dev") + 1] == except_device:
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(words[0], strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network) and not n.is_loopback]


def check_addresses(layout: NodeLayout) -> None:
    """Refuse a pod subnet or service range that overlaps a network this host already uses
    (the pod bridge's own route, from an earlier run, is not in the way)."""
    ours = {
        "pod subnet": ipaddress.ip_network(layout.pod_subnet),
        "service range": ipaddress.ip_network(layout.service_range),
    }
    for route in host_routes(except_device=layout.bridge):
        for what, net in ours.items():
            if net.overlaps(route):
                raise HostError(
                    f"the node cluster's {what} {net} overlaps the host's route {route}; "
                    "choose others with PULLING_AGENT_NODE_POD_SUBNET / "
                    "PULLING_AGENT_NODE_SERVICE_RANGE"
                )


def _is_our_bridge(layout: NodeLayout) -> bool:
    return Path(f"/sys/class/net/{layout.bridge}").exists()


def _iptables(table: str, *args: str, family: str = "iptables", check: bool = True) -> bool:
    return _run(family, "-w", "-t", table, *args, check=check).returncode == 0


def prepare_network(layout: NodeLayout) -> None:
    """The pod bridge carrying the node IP, and a FORWARD guard: pod traffic stays local."""
    if not _is_our_bridge(layout):
        _run("ip", "link", "add", layout.bridge, "type", "bridge")
    _run("ip", "addr", "replace", f"{layout.node_ip}/{layout.prefix_length}", "dev", layout.bridge)
    _run("ip", "link", "set", layout.bridge, "up")
    subnet = layout.pod_subnet
    if not _iptables("filter", "-n", "-L", layout.chain, check=False):
        _iptables("filter", "-N", layout.chain)
    _iptables("filter", "-F", layout.chain)
    # Pod to pod (also after a Service's DNAT) is fine; anything else a pod sends through
    # this host, and anything forwarded towards the pods from elsewhere, is dropped.
    _iptables("filter", "-A", layout.chain, "-s", subnet, "-d", subnet, "-j", "ACCEPT")
    _iptables("filter", "-A", layout.chain, "-s", subnet, "-j", "DROP")
    _iptables("filter", "-A", layout.chain, "-d", subnet, "-j", "DROP")
    if not _iptables("filter", "-C", "FORWARD", "-j", layout.chain, check=False):
        _iptables("filter", "-I", "FORWARD", "1", "-j", layout.chain)


def _chains(family: str) -> dict[str, list[str]]:
    """Chain names by table, from `iptables-save` (or ip6tables-save)."""
    out = _run(f"{family}-save", check=False).stdout
    chains: dict[str, list[str]] = {}
    table = ""
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
            chains[table] = []
        elif line.startswith(":") and table:
            chains[table].append(line[1:].split()[0])
    return chains


def _our_chain(name: str, layout: NodeLayout) -> bool:
    return name.startswith(KUBE_CHAIN_PREFIX) or name == layout.chain


def remove_chains(layout: NodeLayout) -> None:
    """Delete this cluster's chain and every KUBE-* chain, with the rules that jump to them."""
    for family in ("iptables", "ip6tables"):
        for table, names in _chains(family).items():
            ours = [n for n in names if _our_chain(n, layout)]
            if not ours:
                continue
            # Rules in built-in chains that jump to ours: delete them by their spec.
            rules = _run(f"{family}-save", "-t", table, check=False).stdout.splitlines()
            for rule in rules:
                if not rule.startswith("-A "):
                    continue
                words = rule.split()
                if _our_chain(words[1], layout):
                    continue
                if "-j" in words and _our_chain(words[words.index("-j") + 1], layout):
                    _iptables(table, "-D", *words[1:], family=family, check=False)
            for name in ours:
                _iptables(table, "-F", name, family=family, check=False)
            for name in ours:
                _iptables(table, "-X", name, family=family, check=False)


def remove_bridge(layout: NodeLayout) -> None:
    if _is_our_bridge(layout):
        _run("ip", "link", "del", layout.bridge, check=False)


def netns_names() -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(p.name for p in Path("/run/netns").iterdir())
    return []


def remove_netns(layout: NodeLayout) -> None:
    """The pod sandboxes' network namespaces (CNI's cni-* pins) made while the cluster ran."""
    for name in netns_names():
        if name.startswith("cni-") and name not in layout.netns_before:
            path = Path("/run/netns") / name
            _run("umount", "-l", str(path), check=False)
            with contextlib.suppress(OSError):
                path.unlink()


# -- cgroups ----------------------------------------------------------------------------------
def _cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, or the v2 unified tree)."""
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        words = line.split()
        if len(words) > 2 and words[2] in ("cgroup", "cgroup2"):
            found.append(Path(words[1]))
    return found


def prepare_cgroups(layout: NodeLayout) -> None:
    """The kubelet's cgroup root, in every hierarchy (the kubelet wants it to exist)."""
    for hierarchy in _cgroup_hierarchies():
        path = hierarchy / layout.cgroup_root
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise HostError(f"cannot create the kubelet's cgroup {path}: {exc}") from exc


def remove_cgroups(layout: NodeLayout) -> None:
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / layout.cgroup_root
        if not root.is_dir():
            continue
        # Deepest first; a cgroup with processes in it refuses (they are killed before this).
        for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


# -- mounts -----------------------------------------------------------------------------------
def mounts_under(prefixes: tuple[str, ...]) -> list[str]:
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            found.append(point)
    return found


def unmount_all(prefixes: tuple[str, ...]) -> None:
    for _ in range(3):  # stacked mounts come back one layer at a time
        points = mounts_under(prefixes)
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            if _run("umount", point, check=False).returncode != 0:
                _run("umount", "-l", point, check=False)


# -- teardown and proof -----------------------------------------------------------------------
def remove_log_links(layout: NodeLayout) -> None:
    """The kubelet's /var/log/containers symlinks into this cluster's pod logs (and the
    directory, when that leaves it empty)."""
    with contextlib.suppress(FileNotFoundError):
        for link in CONTAINER_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(layout.workdir):
                    link.unlink()
        with contextlib.suppress(OSError):
            CONTAINER_LOG_LINKS.rmdir()


def teardown_host(layout: NodeLayout, kube_proxy: Path | None) -> None:
    """Undo everything `prepare_*` and the node's components did (processes already stopped)."""
    kill_node_processes(layout)
    unmount_all(layout.owned_paths())
    remove_netns(layout)
    if kube_proxy is not None and kube_proxy.exists():
        _run(str(kube_proxy), "--cleanup", check=False)
    remove_chains(layout)
    remove_bridge(layout)
    remove_cgroups(layout)
    remove_log_links(layout)


def leftovers(layout: NodeLayout) -> list[str]:
    """What of this cluster is still on the host (empty after a clean stop)."""
    found = [f"process {pid} ({cmd})" for pid, cmd in node_processes(layout).items()]
    found += [f"mount {m}" for m in mounts_under(layout.owned_paths())]
    found += [
        f"network namespace {n}"
        for n in netns_names()
        if n.startswith("cni-") and n not in layout.netns_before
    ]
    if _is_our_bridge(layout):
        found.append(f"bridge {layout.bridge}")
    for family in ("iptables", "ip6tables"):
        for table, names in _chains(family).items():
            found += [f"{family} chain {table}/{n}" for n in names if _our_chain(n, layout)]
    found += [
        f"cgroup {h / layout.cgroup_root}"
        for h in _cgroup_hierarchies()
        if (h / layout.cgroup_root).exists()
    ]
    return found
