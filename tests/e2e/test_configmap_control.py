"""The ConfigMap watch and `pulling-agent ctl` through a real API server.

The agent runs as a local process (testkit.agentproc) whose kubeconfig carries
a TokenRequest token of the chart's own agent ServiceAccount, in a namespace
where the chart is installed: RBAC is exactly the chart's Role (get, list,
watch on `agent-control` only). `ctl` runs with the control Jobs' account.
Every wait is bounded polling on the agent's liveness file or log; nothing
asserts on a duration (the latency is `make bench`'s job).

Also in tests/e2e/test_chart_api.py: the guide's `state=pause` / `state=resume`
commands followed by the agent with the chart's Role.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.agentproc import AgentProcess, cli, write_kubelet_style
from testkit.clusters import Cluster, ControlPlane, wait_until
from tests.conftest import AgentFactory
from tests.e2e.conftest import MakeNamespace, ServiceAccountAccessFactory
from tests.e2e.release import Release

GUIDE = (
    "kubectl create configmap agent-control --from-literal=state={} "
    "-o yaml --dry-run=client | kubectl apply -f -"
)
AGENT_ACCOUNT = "pulling-agent"  # the chart's agent ServiceAccount (release pulling-agent)
CONTROL_ACCOUNT = "pulling-agent-control"  # the chart's control Jobs' ServiceAccount
WAIT = 120.0  # generous: the machine is shared


@pytest.fixture
def release(cluster: Cluster, make_namespace: MakeNamespace, tmp_path: Path) -> Iterator[Release]:
    """The chart, default values, in a fresh namespace enforcing `restricted`."""
    r = Release(cluster, make_namespace("cm", pod_security="restricted"), tmp_path)
    r.install()
    yield r
    r.close()


def ctl(*args: str, kubeconfig: Path, check: bool = False) -> tuple[int, str, str]:
    """`pulling-agent ctl ARGS` with this kubeconfig and no stray PULLING_AGENT_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULLING_AGENT_")}
    env["KUBECONFIG"] = str(kubeconfig)
    proc = cli("ctl", *args, env=env, check=check)
    return proc.returncode, proc.stdout, proc.stderr


def start_agent(
    agent_factory: AgentFactory,
    namespace: str,
    kubeconfig: Path,
    *,
    name: str = "agent",
    control: str | None = None,
    extra: tuple[str, ...] = (),
) -> AgentProcess:
    """A local agent watching `namespace/agent-control` with `kubeconfig`.

    `control`: the word its control directory holds (kubelet-style) at start;
    None leaves the directory absent, so only the watch can change its state.
    """
    agent = agent_factory(
        name,
        args=[
            "--seed",
            "200",
            "--processor",
            "slow",
            "--processor-option",
            "seconds=0.01",
            "--configmap",
            "agent-control",
            "--namespace",
            namespace,
            "--kubeconfig",
            str(kubeconfig),
            *extra,
        ],
    )
    if control is not None:
        write_kubelet_style(agent.control_dir, {"state": f"{control}\n"})
    return agent.start("running")


def wait_message(agent: AgentProcess, text: str, count: int = 1) -> None:
    agent.wait_for(
        lambda: sum(text in m for m in agent.messages()) >= count, f"log line {text!r}", WAIT
    )


def local_status(agent: AgentProcess) -> dict[str, object]:
    out = cli("status", "--health-dir", str(agent.health_dir), "--output", "json").stdout
    return dict(json.loads(out))


# ------------------------------------------------------------------- watch
def test_guide_command_pauses_and_state_running_resumes(
    release: Release,
    service_account_access: ServiceAccountAccessFactory,
    agent_factory: AgentFactory,
) -> None:
    access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    agent = start_agent(agent_factory, release.namespace, access.kubeconfig)
    release.guide(GUIDE.format("pause"))
    agent.wait_state("paused", WAIT)
    assert agent.liveness()["channel"] == "configmap"
    assert "ConfigMap command detected: pause" in agent.messages()
    release.guide(GUIDE.format("running"))
    agent.wait_state("running", WAIT)
    assert agent.stop() == 0


def test_ctl_pause_reason_and_requester_reach_status_log_and_metrics(
    release: Release,
    cluster: Cluster,
    service_account_access: ServiceAccountAccessFactory,
    agent_factory: AgentFactory,
    unused_tcp_port: int,
) -> None:
    agent_access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    control = service_account_access(release.namespace, CONTROL_ACCOUNT, create=False)
    agent = start_agent(
        agent_factory,
        release.namespace,
        agent_access.kubeconfig,
        extra=("--metrics-port", str(unused_tcp_port), "--metrics-address", "127.0.0.1"),
    )
    ns = release.namespace

    code, out, err = ctl(
        "pause", "--configmap", "agent-control", "--namespace", ns,
        "--reason", "database maintenance", "--by", "alice",
        kubeconfig=control.kubeconfig,
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("Pausing agent...\nConfigMap updated to 'pause'")
    agent.wait_state("paused", WAIT)
    status = local_status(agent)
    assert status["state"] == "PAUSED"
    assert status["reason"] == "database maintenance"
    assert status["requested_by"] == "alice"
    assert status["channel"] == "configmap"
    pausing = [e for e in agent.logs() if e.get("message") == "Pausing agent"]
    assert pausing and pausing[-1].get("reason") == "database maintenance", agent.log_tail()
    with urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=30) as r:
        metrics = r.read().decode()
    assert (
        'pulling_agent_control_info{channel="configmap",reason="database maintenance",'
        'requested_by="alice"} 1.0'
    ) in metrics

    # ctl status (as the admin: the control account may not list pods).
    wait_until(
        lambda: release.core.list_namespaced_pod(ns, label_selector="app=pulling-agent").items,
        timeout=WAIT,
        what="the chart's agent pod",
    )
    code, out, err = ctl("status", "-n", ns, "-o", "json", kubeconfig=cluster.kubeconfig)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["declared"]["state"] == "pause"
    assert shown["declared"]["reason"] == "database maintenance"
    assert shown["declared"]["requested_by"] == "alice"
    # The chart's Deployment made a pod; nothing runs it on this provider.
    if not cluster.runs_pods:
        assert [p["phase"] for p in shown["pods"]] == ["Pending"]
        assert [p["ready"] for p in shown["pods"]] == [False]

    code, out, err = ctl(
        "resume", "-n", ns, "--reason", "maintenance over", "--by", "bob",
        kubeconfig=control.kubeconfig,
    )  # fmt: skip
    assert code == 0, err
    agent.wait_state("running", WAIT)
    status = local_status(agent)
    assert (status["reason"], status["requested_by"]) == ("maintenance over", "bob")
    assert release.configmap()["state"] == "resume"


def test_the_files_late_copy_does_not_undo_a_later_sigusr2(
    release: Release,
    service_account_access: ServiceAccountAccessFactory,
    agent_factory: AgentFactory,
) -> None:
    """Watch pauses -> operator's SIGUSR2 resumes -> the kubelet's late copy of
    `pause` lands in the mounted file: the agent stays running."""
    access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    agent = start_agent(
        agent_factory,
        release.namespace,
        access.kubeconfig,
        control="running",
        extra=("--log-level", "debug"),
    )
    release.guide(GUIDE.format("pause"))
    agent.wait_state("paused", WAIT)
    agent.signal(signal.SIGUSR2)
    agent.wait_state("running", WAIT)
    write_kubelet_style(agent.control_dir, {"state": "pause\n"})
    wait_message(agent, "Control file says pause, already observed")
    assert agent.state() == "running"
    assert agent.liveness()["desired_state"] == "running"


# ------------------------------------------------------------------ outages
def test_apiserver_down_for_20s_keeps_state_and_the_file_channel_works(
    release: Release,
    controlplane: ControlPlane,
    service_account_access: ServiceAccountAccessFactory,
    agent_factory: AgentFactory,
) -> None:
    access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    control = service_account_access(release.namespace, CONTROL_ACCOUNT, create=False)
    agent = start_agent(agent_factory, release.namespace, access.kubeconfig, control="running")

    down_since = time.monotonic()
    controlplane.stop_apiserver()
    try:
        wait_message(agent, "Kubernetes API unreachable for ConfigMap")
        assert agent.state() == "running"  # the outage changes nothing by itself
        agent.write_control("pause")  # the file channel still works
        agent.wait_state("paused", WAIT)
        # Stay down 20 s in all (the back-off retries several times meanwhile).
        time.sleep(max(0.0, 20.0 - (time.monotonic() - down_since)))
    finally:
        controlplane.start_apiserver()
    wait_message(agent, "watching again")
    unreachable = [m for m in agent.messages() if "Kubernetes API unreachable" in m]
    assert len(unreachable) == 1, unreachable  # one warning per outage, not per retry
    # Reconnecting re-lists the same request (state=running): it is not re-applied.
    assert agent.state() == "paused"
    # The watch is back: a change through the API reaches the agent.
    code, _, err = ctl("resume", "-n", release.namespace, kubeconfig=control.kubeconfig)
    assert code == 0, err
    agent.wait_state("running", WAIT)
    assert agent.liveness()["channel"] == "configmap"


def test_the_status_report_uses_the_agents_account_and_survives_an_outage(
    release: Release,
    controlplane: ControlPlane,
    service_account_access: ServiceAccountAccessFactory,
    agent_factory: AgentFactory,
) -> None:
    """Issue 13: the agent reports its state to `agent-control-status` with the chart's agent
    account (patch on that one ConfigMap); a pause made while the API server is down (a
    signal) is in the report once it is back; the last report at stop says stopped."""
    access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    agent = start_agent(
        agent_factory, release.namespace, access.kubeconfig,
        extra=("--status-configmap", "agent-control-status", "--pod-name", "local-1",
               "--node-name", "this-host"),
    )  # fmt: skip

    def report() -> dict[str, Any]:
        data = release.configmap("agent-control-status")
        return dict(json.loads(data["local-1"])) if "local-1" in data else {}

    wait_until(lambda: report().get("state") == "running", timeout=WAIT, what="a report")
    assert (report()["pod"], report()["node"]) == ("local-1", "this-host")
    controlplane.stop_apiserver()
    try:
        agent.signal(signal.SIGUSR1)
        agent.wait_state("paused", WAIT)
        wait_message(agent, "Cannot write the status report to ConfigMap")
    finally:
        controlplane.start_apiserver()
    wait_until(lambda: report().get("state") == "paused", timeout=WAIT, what="the report after")
    assert report()["channel"] == "signal"
    wait_message(agent, "written again")
    assert agent.stop() == 0
    assert report()["state"] == "stopped"


class Relay:
    """A TCP relay from a local port to the API server: close() cuts the agent
    off the API (while everyone else still reaches it), open() reconnects."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                inbound, _ = listener.accept()
            except OSError:
                return
            try:
                outbound = socket.create_connection(self.target, timeout=10)
            except OSError:
                inbound.close()
                continue
            outbound.settimeout(None)
            with self._lock:
                self._conns += [inbound, outbound]
            for src, dst in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def test_a_change_made_while_the_agent_could_not_reach_the_api_is_applied_after(
    release: Release,
    controlplane: ControlPlane,
    service_account_access: ServiceAccountAccessFactory,
    agent_factory: AgentFactory,
    tmp_path: Path,
) -> None:
    """The API server stays up for everyone else; the agent's path to it is cut
    (a relay it connects through is closed), the ConfigMap changes, the path
    comes back: the re-list after reconnecting brings the change."""
    access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    control = service_account_access(release.namespace, CONTROL_ACCOUNT, create=False)
    relay = Relay(controlplane.host, controlplane.apiserver_port)
    doc = yaml.safe_load(access.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    relayed = tmp_path / "agent-through-relay.kubeconfig"
    relayed.write_text(yaml.safe_dump(doc))
    relay.open()
    try:
        agent = start_agent(agent_factory, release.namespace, relayed)
        relay.close()
        wait_message(agent, "Kubernetes API unreachable for ConfigMap")
        code, _, err = ctl(
            "pause", "-n", release.namespace, "--reason", "during the outage",
            kubeconfig=control.kubeconfig,
        )  # fmt: skip
        assert code == 0, err
        assert agent.state() == "running"  # it cannot know yet
        relay.open()
        agent.wait_state("paused", WAIT)
        assert agent.liveness()["reason"] == "during the outage"
        assert agent.liveness()["channel"] == "configmap"
    finally:
        relay.close()


# --------------------------------------------------------------- ctl errors
def test_ctl_signal_selector_reports_each_pod_it_could_not_signal(
    release: Release, cluster: Cluster
) -> None:
    """What the chart's Jobs do with control.jobs.signalPods: patch, then exec
    `kill -USR1 1` in each agent pod; a pod that cannot be reached is reported,
    and the ConfigMap alone carries the request (exit 0)."""
    ns = release.namespace
    pods = wait_until(
        lambda: release.core.list_namespaced_pod(ns, label_selector="app=pulling-agent").items,
        timeout=WAIT,
        what="the chart's agent pod",
    )
    names = sorted(p.metadata.name for p in pods)
    if cluster.runs_pods:  # a pod still being created cannot be exec'ed into yet
        release.guide("kubectl rollout status deployment/pulling-agent --timeout=300s")
    code, out, err = ctl(
        "pause", "-n", ns, "--signal-selector", "app=pulling-agent", "-o", "json",
        kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["state"] == "pause"
    if cluster.runs_pods:
        assert sorted(result["signalled"]) == names
    else:
        assert result["signalled"] == []
        assert sorted(result["signal_errors"]) == names
        for name in names:
            assert f"pod {name} does not have a host assigned" in result["signal_errors"][name]


def test_ctl_missing_configmap_is_created_like_the_guides_apply(
    release: Release, cluster: Cluster, service_account_access: ServiceAccountAccessFactory
) -> None:
    """Changed with issue 13 (one behaviour for the three front ends): a missing ConfigMap is
    created, as the guide's `kubectl apply` and control-agent.sh do; `ctl` used to refuse.
    The chart's control account cannot create ConfigMaps (RBAC cannot scope create by name):
    for it, exit 1 with the API's refusal, nothing changed."""
    ns = release.namespace
    release.core.delete_namespaced_config_map("agent-control", ns)
    control = service_account_access(ns, CONTROL_ACCOUNT, create=False)
    code, out, err = ctl("pause", "-n", ns, kubeconfig=control.kubeconfig)
    assert code == 1, out
    assert err.startswith(
        f"Error: ConfigMap agent-control does not exist in namespace {ns}, and creating it failed: "
    )
    assert 'cannot create resource "configmaps"' in err and err.count("\n") == 1
    # --no-wait: no agent watches `absent` (nor reports to `absent-status`).
    code, out, err = ctl(
        "pause", "-n", ns, "--configmap", "absent", "--no-wait", kubeconfig=cluster.kubeconfig
    )
    assert code == 0, err
    assert f"Warning: ConfigMap {ns}/absent did not exist; created it" in err
    assert "ConfigMap updated to 'pause'" in out
    assert release.configmap("absent")["state"] == "pause"


def test_ctl_forbidden_names_the_verb_and_the_resource(
    release: Release, service_account_access: ServiceAccountAccessFactory
) -> None:
    """The agent's account may read its ConfigMap but not patch it."""
    access = service_account_access(release.namespace, AGENT_ACCOUNT, create=False)
    code, _, err = ctl("pause", "-n", release.namespace, kubeconfig=access.kubeconfig)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f'User "{access.username}" cannot patch resource "configmaps"' in err
    assert release.configmap()["state"] == "running"
    # The control Jobs' account may patch it, and (since the status reports, issue 13) list
    # the pods and read their reports: `status` works for it.
    control = service_account_access(release.namespace, CONTROL_ACCOUNT, create=False)
    code, out, err = ctl("status", "-n", release.namespace, kubeconfig=control.kubeconfig)
    assert code == 0, err
    assert "Declared state: running" in out


def test_ctl_unreachable_api(cluster: Cluster, tmp_path: Path, unused_tcp_port: int) -> None:
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{unused_tcp_port}"
    closed = tmp_path / "closed.kubeconfig"
    closed.write_text(yaml.safe_dump(doc))
    code, _, err = ctl("pause", "-n", "default", kubeconfig=closed)
    assert code == 1
    assert err == (
        f"Error: cannot reach the Kubernetes API at https://127.0.0.1:{unused_tcp_port}: "
        "Connection refused\n"
    )
