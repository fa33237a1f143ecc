"""A real Prometheus scraping real agent processes, with the chart's rules and dashboard.

Two agents share one queue on this host; Prometheus (./bin/prometheus) scrapes
them every second with the labels a ServiceMonitor gives the chart's pods
(`namespace`, `job` = the release's Service, `pod`) and evaluates the chart's
rendered PrometheusRule (`helm template`, a 5 s `unexpectedPauseFor`).  The
e2e tier does the same with the chart's pods on a node, discovered through
the chart's Service (tests/e2e/test_prometheus.py).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.agentproc import AgentProcess
from testkit.clusters.controlplane import free_ports
from testkit.prometheus_server import PrometheusServer
from tests.conftest import AgentFactory
from tests.dashboard_queries import dashboard_queries

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "bin" / "helm"
NAMESPACE = "default"
RELEASE = "pulling-agent"
UNEXPECTED_PAUSE_FOR = "5s"


def rendered_rules(tmp_path: Path) -> Path:
    """The chart's PrometheusRule as a rule file."""
    if not HELM.exists():
        pytest.skip("./bin/helm missing: run `make tools`")
    values = {
        "metrics": {"prometheusRule": {"enabled": True, "unexpectedPauseFor": UNEXPECTED_PAUSE_FOR}}
    }
    proc = subprocess.run(
        [
            str(HELM),
            "template",
            RELEASE,
            str(ROOT / "charts" / "pulling-agent"),
            "--namespace",
            NAMESPACE,
            "--show-only",
            "templates/prometheusrule.yaml",
            "--values",
            "-",
        ],
        input=yaml.safe_dump(values),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rule = yaml.safe_load(proc.stdout)
    path = tmp_path / "pulling-agent.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def static_job(agents: dict[str, int]) -> dict[str, Any]:
    """What the Operator's job for the chart's ServiceMonitor yields, pods given by hand."""
    return {
        "job_name": RELEASE,
        "static_configs": [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {"namespace": NAMESPACE, "pod": pod, "service": RELEASE},
            }
            for pod, port in agents.items()
        ],
    }


def test_prometheus_sees_pauses_alerts_and_every_panel(
    prometheus_binary: None,
    agent_factory: AgentFactory,
    seeded_queue: Any,
    tmp_path: Path,
) -> None:
    queue = seeded_queue(4000)
    ports = dict(zip(("agent-a", "agent-b"), free_ports(2), strict=True))
    agents: dict[str, AgentProcess] = {}
    for pod, port in ports.items():
        agents[pod] = agent_factory(
            pod,
            source=queue,
            args=(
                "--metrics-port",
                str(port),
                "--metrics-address",
                "127.0.0.1",
                "--processor",
                "slow",
                "--processor-option",
                "seconds=0.01",
                "--processor-option",
                "fail_every=9",
                "--batch-size",
                "5",
            ),
        ).start("running")
    a, b = agents["agent-a"], agents["agent-b"]
    with PrometheusServer(
        tmp_path / "prometheus", [static_job(ports)], [rendered_rules(tmp_path)]
    ) as prom:
        sel = f'namespace="{NAMESPACE}", job="{RELEASE}"'
        prom.wait_for(lambda: prom.value(f"sum(up{{{sel}}})") == 2, "both agents to be scraped")

        # A signal pauses agent-a: its ConfigMap (control file) still says running.
        a.signal(signal.SIGUSR1)
        prom.wait_for(
            lambda: prom.value(f'pulling_agent_state{{{sel}, pod="agent-a", state="paused"}}') == 1,
            "Prometheus to see agent-a paused",
        )
        declared = f'pulling_agent_declared_state{{{sel}, pod="agent-a", state="running"}}'
        assert prom.value(declared) == 1
        # The control file asks agent-b to pause: declared, so never unexpected.
        b.write_control("pause")
        prom.wait_for(
            lambda: (
                prom.value(f'pulling_agent_declared_state{{{sel}, pod="agent-b", state="paused"}}')
                == 1
            ),
            "Prometheus to see agent-b's declared pause",
        )

        seen: list[dict[str, str]] = []

        def alert(state: str) -> bool:
            states = prom.alert_states("PullingAgentUnexpectedlyPaused")
            seen.append(states)
            return states.get("agent-a") == state

        prom.wait_for(lambda: alert("pending"), "the unexpected-pause alert to be pending")
        prom.wait_for(lambda: alert("firing"), "the unexpected-pause alert to fire")
        # agent-b was paused for as long, by its ConfigMap: never in the alert.
        assert all("agent-b" not in states for states in seen), seen

        # Resume agent-b, after a word the agent must refuse (a control error).
        b.write_control("halt")
        prom.wait_for(
            lambda: prom.value(
                f'pulling_agent_control_errors_total{{{sel}, pod="agent-b", kind="invalid"}}'
            ),
            "the refused control word to be counted",
        )
        b.write_control("running")
        prom.wait_for(
            lambda: (
                prom.value(f'pulling_agent_state{{{sel}, pod="agent-b", state="running"}}') == 1
            ),
            "agent-b to run again",
        )

        # Every dashboard query returns data from these agents.
        queries = dashboard_queries(NAMESPACE, RELEASE, rate_interval="10s")
        empty: list[str] = []

        def all_answer() -> bool:
            empty[:] = [f"{q.panel} [{q.ref}]: {q.expr}" for q in queries if not prom.query(q.expr)]
            return not empty

        try:
            prom.wait_for(all_answer, "every dashboard query to return data", timeout=90)
        except AssertionError:
            raise AssertionError("dashboard queries without data:\n" + "\n".join(empty)) from None
