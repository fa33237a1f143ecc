"""The metrics Service, the ServiceMonitor, and the PrometheusRule's PromQL."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pulling_agent.metrics import Metrics

from .conftest import Chart, Rendered

pytestmark = pytest.mark.chart

MONITORING = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kps"},
            "severity": "critical",
            "unexpectedPauseFor": "10m",
            "pausedTooLongSeconds": 7200,
            "stalledFor": "30m",
        },
    }
}
# The series the agent exports (pulling_agent/metrics.py), as PromQL names them.
AGENT_METRICS = {
    metric.name + ("_total" if metric.type == "counter" else "")
    for metric in Metrics().registry.collect()
}


def test_service(default_render: Rendered) -> None:
    svc = default_render.get("Service", "pulling-agent")
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == default_render.deployment["spec"]["selector"]["matchLabels"]
    assert not default_render.of_kind("ServiceMonitor")
    assert not default_render.of_kind("PrometheusRule")


def test_metrics_off(chart: Chart) -> None:
    r = chart.render({"metrics": {"enabled": False}})
    assert not r.of_kind("Service")
    assert "ports" not in r.agent_container
    assert r.agent_env()["PULLING_AGENT_METRICS_PORT"] == "0"


def test_service_monitor(chart: Chart) -> None:
    r = chart.render(MONITORING)
    sm = r.get("ServiceMonitor", "pulling-agent")
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    svc = r.get("Service", "pulling-agent")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["name"] == "metrics"


def _rules(r: Rendered) -> list[dict[str, str]]:
    rule = r.get("PrometheusRule", "pulling-agent")
    (group,) = rule["spec"]["groups"]
    return group["rules"]


def test_prometheus_rule(chart: Chart) -> None:
    r = chart.render(MONITORING)
    assert r.get("PrometheusRule", "pulling-agent")["metadata"]["labels"]["release"] == "kps"
    rules = {rule["alert"]: rule for rule in _rules(r)}
    assert set(rules) == {
        "PullingAgentUnexpectedlyPaused",
        "PullingAgentPausedTooLong",
        "PullingAgentStalled",
    }
    paused = rules["PullingAgentUnexpectedlyPaused"]
    assert paused["for"] == "10m"
    assert (
        'pulling_agent_state{namespace="default", job="pulling-agent", state="paused"}'
        in (paused["expr"])
    )
    assert (
        'pulling_agent_declared_state{namespace="default", job="pulling-agent", state="running"}'
        in (paused["expr"])
    )
    assert "> 7200" in rules["PullingAgentPausedTooLong"]["expr"]
    assert "[30m]" in rules["PullingAgentStalled"]["expr"]
    assert "pulling_agent_backlog_documents" in rules["PullingAgentStalled"]["expr"]
    for rule in rules.values():
        assert rule["labels"] == {"severity": "critical"}
        assert rule["annotations"]["summary"]
        assert "{{ $labels.pod }}" in rule["annotations"]["summary"]
        used = set(re.findall(r"\b(pulling_agent_[a-z_]+)\b", rule["expr"]))
        assert used and used <= AGENT_METRICS, used - AGENT_METRICS


def _check(promql_check: Path, payload: list[dict[str, str]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promql_check)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promql_is_valid(chart: Chart, promql_check: Path) -> None:
    """Prometheus's own parser accepts every expression and duration."""
    rules = _rules(chart.render(MONITORING)) + _rules(
        chart.render({"metrics": {"prometheusRule": {"enabled": True}}}, namespace="ops")
    )
    payload = [{"name": r["alert"], "expr": r["expr"], "for": r["for"]} for r in rules]
    proc = _check(promql_check, payload)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promql_check_refuses_bad_promql(promql_check: Path) -> None:
    payload = [
        {"name": "unclosed", "expr": "max by (pod) (pulling_agent_state", "for": "5m"},
        {"name": "bad-for", "expr": "up == 0", "for": "5 minutes"},
    ]
    proc = _check(promql_check, payload)
    assert proc.returncode == 1
    assert "unclosed:" in proc.stdout and "bad-for:" in proc.stdout
