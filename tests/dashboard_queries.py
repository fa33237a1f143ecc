"""The queries of the chart's Grafana dashboard, as a Prometheus would receive them.

Grafana substitutes its variables before it sends a query; so does
`dashboard_queries()`: `$namespace`, `$release`, and `$__rate_interval`
(Grafana's choice: four scrape intervals at least).  The JSON is the one the
chart ships (charts/pulling-agent/dashboards/pulling-agent.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

DASHBOARD_JSON = (
    Path(__file__).resolve().parents[1]
    / "charts"
    / "pulling-agent"
    / "dashboards"
    / "pulling-agent.json"
)


class PanelQuery(NamedTuple):
    panel: str
    ref: str
    expr: str


def dashboard_queries(
    namespace: str, release: str, rate_interval: str, model: dict[str, Any] | None = None
) -> list[PanelQuery]:
    """Every query of `model` (default: the chart's JSON), variables substituted."""
    if model is None:
        model = json.loads(DASHBOARD_JSON.read_text())
    out = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$namespace", namespace)
                .replace("$release", release)
                .replace("$__rate_interval", rate_interval)
            )
            assert "$" not in expr, f"{panel['title']}: unsubstituted variable in {expr}"
            out.append(PanelQuery(panel["title"], target["refId"], expr))
    return out
