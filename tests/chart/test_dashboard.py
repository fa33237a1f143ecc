"""The Grafana dashboard: generated from tools/grafana_dashboard.py, shipped in a ConfigMap."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_queries import PanelQuery, dashboard_queries
from tools import grafana_dashboard

from .conftest import CHART, Chart, Rendered, agent_series_names, assert_labels_exist, check_promql

pytestmark = pytest.mark.chart

JSON_FILE = CHART / "dashboards" / "pulling-agent.json"
DASHBOARD = {"metrics": {"dashboard": {"enabled": True}}}
#: What the README's panel list names, in the dashboard's order.
PANELS = [
    "Replica state",
    "Current control request",
    "Desired vs actual",
    "Paused against their desired state",
    "Paused for",
    "Replicas reporting",
    "Documents per second",
    "Batch duration percentiles",
    "Time since the last batch",
    "Backlog",
    "Backlog trend (5m)",
    "Estimated time to drain",
    "Failed and retried documents",
    "Errors",
    "Control commands by channel and outcome",
]


def dashboard() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(JSON_FILE.read_text())
    return model


def queries() -> list[PanelQuery]:
    return dashboard_queries("default", "pulling-agent", rate_interval="1m")


def dashboard_configmap(r: Rendered) -> dict[str, Any]:
    (cm,) = [o for o in r.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]
    return cm


def test_committed_json_is_the_generators() -> None:
    """charts/pulling-agent/dashboards/pulling-agent.json is exactly what
    tools/grafana_dashboard.py builds: `make dashboard` after any change."""
    assert JSON_FILE.read_text() == grafana_dashboard.render(), (
        f"{JSON_FILE} drifted from tools/grafana_dashboard.py: run `make dashboard`"
    )


def test_generator_check_mode_reports_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "pulling-agent.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(grafana_dashboard, "OUTPUT", stale)
    monkeypatch.setattr(grafana_dashboard, "ROOT", tmp_path)
    assert grafana_dashboard.main(["--check"]) == 1
    assert grafana_dashboard.main([]) == 0
    assert grafana_dashboard.main(["--check"]) == 0


def test_panels() -> None:
    model = dashboard()
    titles = [p["title"] for p in model["panels"] if p["type"] != "row"]
    assert titles == PANELS
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    kinds = {p["title"]: p["type"] for p in model["panels"]}
    assert kinds["Replica state"] == "state-timeline"
    mapped = {
        option["text"]
        for mapping in model["panels"][1]["fieldConfig"]["defaults"]["mappings"]
        for option in mapping["options"].values()
    }
    assert {"running", "paused", "stopping"} <= mapped
    for panel in model["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel.get("description"), panel["title"]


def test_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "release"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "namespace" in variables["namespace"]["query"]
    assert variables["release"]["query"].endswith(", job)")


def test_every_query_is_scoped_to_the_release() -> None:
    for q in queries():
        selectors = re.findall(r"\b[a-z_]+\{([^}]*)\}", q.expr)
        assert selectors, q
        for sel in selectors:
            assert sel.startswith('namespace="default", job="pulling-agent"'), q


def test_queries_use_only_exported_series() -> None:
    exported = agent_series_names() | {"up"}
    for q in queries():
        used = set(re.findall(r"\b([a-z_]+)\{", q.expr))
        assert used <= exported, (q.panel, used - exported)


def test_queries_use_only_labels_the_series_carry() -> None:
    for q in queries():
        assert_labels_exist(f"{q.panel} [{q.ref}]", q.expr)


def test_queries_parse(promql_check: Path) -> None:
    """Prometheus's parser accepts every query once Grafana's variables are substituted."""
    payload = [{"name": f"{q.panel} [{q.ref}]", "expr": q.expr, "for": ""} for q in queries()]
    proc = check_promql(promql_check, payload)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_off_by_default(default_render: Rendered) -> None:
    assert not [
        o for o in default_render.of_kind("ConfigMap") if "dashboard" in o["metadata"]["name"]
    ]


def test_configmap(chart: Chart) -> None:
    r = chart.render(DASHBOARD, release="billing", namespace="queues")
    cm = dashboard_configmap(r)
    assert cm["metadata"]["name"] == "billing-pulling-agent-dashboard"
    assert cm["metadata"]["namespace"] == "queues"
    labels = cm["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"
    assert labels["app.kubernetes.io/instance"] == "billing"
    assert "annotations" not in cm["metadata"]
    assert json.loads(cm["data"]["pulling-agent.json"]) == dashboard()


def test_configmap_for_another_grafana(chart: Chart) -> None:
    """Label, value, folder annotation and namespace are the sidecar's settings."""
    r = chart.render(
        {
            "metrics": {
                "dashboard": {
                    "enabled": True,
                    "label": "example.com/dashboard",
                    "labelValue": "queues",
                    "folder": "Queues / Agents",
                    "folderAnnotation": "k8s-sidecar-target-directory",
                    "namespace": "monitoring",
                }
            }
        }
    )
    cm = dashboard_configmap(r)
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["example.com/dashboard"] == "queues"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "Queues / Agents"}


def test_dashboard_needs_metrics(chart: Chart) -> None:
    message = chart.fail({"metrics": {"enabled": False, "dashboard": {"enabled": True}}})
    assert "metrics.dashboard.enabled needs metrics.enabled" in message


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"label": "grafana dashboard"}, "/metrics/dashboard/label"),
        ({"labelValue": "yes please"}, "/metrics/dashboard/labelValue"),
        ({"namespace": "Monitoring"}, "/metrics/dashboard/namespace"),
        ({"enable": True}, "/metrics/dashboard"),
    ],
)
def test_schema_refuses(chart: Chart, values: dict[str, Any], field: str) -> None:
    message = chart.fail({"metrics": {"dashboard": values}})
    assert field in message
