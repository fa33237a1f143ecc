"""The metrics Service, the ServiceMonitor, and the PrometheusRule's PromQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import Chart, Rendered, agent_series_names, assert_labels_exist, check_promql

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
            "notReportingFor": "2m",
        },
    }
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
        "PullingAgentDown",
        "PullingAgentMetricsAbsent",
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
    assert 'up{namespace="default", job="pulling-agent"} == 0' in rules["PullingAgentDown"]["expr"]
    assert rules["PullingAgentDown"]["for"] == "2m"
    assert rules["PullingAgentMetricsAbsent"]["for"] == "2m"
    exported = agent_series_names()
    for rule in rules.values():
        assert rule["labels"] == {"severity": "critical"}
        assert rule["annotations"]["summary"]
        # Per-replica alerts name the pod; the absent one names the release.
        assert re.search(r"\{\{ \$labels\.(pod|job) \}\}", rule["annotations"]["summary"])
        used = set(re.findall(r"\b(pulling_agent_[a-z_]+)\b", rule["expr"]))
        assert used <= exported, used - exported
        assert_labels_exist(rule["alert"], rule["expr"])


def test_promql_is_valid(chart: Chart, promql_check: Path) -> None:
    """Prometheus's own parser accepts every expression and duration."""
    rules = _rules(chart.render(MONITORING)) + _rules(
        chart.render({"metrics": {"prometheusRule": {"enabled": True}}}, namespace="ops")
    )
    payload = [{"name": r["alert"], "expr": r["expr"], "for": r["for"]} for r in rules]
    proc = check_promql(promql_check, payload)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promql_check_refuses_bad_promql(promql_check: Path) -> None:
    payload = [
        {"name": "unclosed", "expr": "max by (pod) (pulling_agent_state", "for": "5m"},
        {"name": "bad-for", "expr": "up == 0", "for": "5 minutes"},
    ]
    proc = check_promql(promql_check, payload)
    assert proc.returncode == 1
    assert "unclosed:" in proc.stdout and "bad-for:" in proc.stdout
