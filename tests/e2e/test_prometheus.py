"""A real Prometheus scrapes the chart's pods through the chart's own discovery.

On the node provider: the chart is installed (metrics Service, dashboard ConfigMap); its
ServiceMonitor and PrometheusRule are rendered with the same values by `helm template` (the
test cluster has no Prometheus Operator CRDs).  ./bin/prometheus runs on this host with the
scrape job the Operator generates for that ServiceMonitor (kubernetes_sd on EndpointSlices
through the admin kubeconfig, kept by the Service's labels and port name) and the rendered
rules, scraping every second; the pods answer over the pod bridge.

It proves: the state series follow a signal's pause and a ConfigMap's pause; the
unexpected-pause alert (a 5 s `for` here) goes pending then firing for the signal's and
never for the ConfigMap's; every query of the dashboard, read from the installed ConfigMap,
returns data over the test's time range, as Grafana would ask; and it records what a scrape
of one pod costs (bytes and series; `make bench` gives the same figures for a local agent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.clusters import Cluster
from testkit.prometheus_server import (
    PrometheusServer,
    scrape_config_for_service_monitor,
)
from tests.dashboard_queries import dashboard_queries
from tests.e2e.release import CHART, RELEASE, Release, agent_pods

pytestmark = [pytest.mark.e2e, pytest.mark.requires_pods]

RunningFactory = Callable[..., Release]
UNEXPECTED_PAUSE_FOR = "5s"
VALUES = (
    "--set", "agent.seed=5000",
    "--set", "agent.processor=slow",
    "--set-string", "agent.processorOptions.seconds=0.02",
    "--set-string", "agent.processorOptions.fail_every=9",
    "--set", "agent.batchSize=5",
    "--set", "agent.heartbeatInterval=1",
    "--set", "health.periodSeconds=2",
    "--set", "metrics.dashboard.enabled=true",
    "--set", f"metrics.prometheusRule.unexpectedPauseFor={UNEXPECTED_PAUSE_FOR}",
)  # fmt: skip
MONITORING = (
    "--set", "metrics.serviceMonitor.enabled=true",
    "--set", "metrics.prometheusRule.enabled=true",
)  # fmt: skip
GUIDE_CONFIGMAP = (
    "kubectl create configmap agent-control --from-literal=state={word} "
    "-o yaml --dry-run=client | kubectl apply -f -"
)


def rendered(release: Release, kind: str) -> dict[str, Any]:
    """The chart's object of `kind`, rendered with the install's values."""
    text = release.helm("template", RELEASE, str(CHART), *VALUES, *MONITORING)
    (obj,) = [o for o in yaml.safe_load_all(text) if o and o["kind"] == kind]
    return dict(obj)


def test_prometheus_scrapes_the_chart_pods(
    prometheus_binary: None,
    running: RunningFactory,
    cluster: Cluster,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    started = time.time()
    r = running(*VALUES)
    (pod,) = [p.metadata.name for p in agent_pods(r.core, r.namespace)]
    rules = tmp_path / "pulling-agent.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rendered(r, "PrometheusRule")["spec"]["groups"]}))
    job = scrape_config_for_service_monitor(
        rendered(r, "ServiceMonitor"), kubeconfig=cluster.kubeconfig, scrape_interval="1s"
    )
    sel = f'namespace="{r.namespace}", job="{RELEASE}"'
    this_pod = f'{sel}, pod="{pod}"'

    with PrometheusServer(tmp_path / "prometheus", [job], [rules]) as prom:
        # Discovered through the Service's EndpointSlice, labelled as the Operator does.
        (up,) = prom.wait_for(lambda: prom.query(f"up{{{sel}}} == 1"), "the pod to be scraped")
        labels = up["metric"]
        assert labels["pod"] == pod
        assert labels["service"] == RELEASE and labels["endpoint"] == "metrics"
        assert labels["container"] == "agent"

        def state_is(state: str) -> bool:
            return prom.value(f'pulling_agent_state{{{this_pod}, state="{state}"}}') == 1

        def alert_states() -> dict[str, str]:
            return prom.alert_states("PullingAgentUnexpectedlyPaused")

        # A signal pauses the pod (the guide's emergency method): pending, then firing.
        r.guide(f"kubectl exec {pod} -- kill -USR1 1")
        prom.wait_for(lambda: state_is("paused"), "Prometheus to see the signal's pause")
        assert prom.value(f'pulling_agent_declared_state{{{this_pod}, state="running"}}') == 1
        prom.wait_for(lambda: alert_states().get(pod) == "pending", "the alert to be pending")
        prom.wait_for(lambda: alert_states().get(pod) == "firing", "the alert to fire")
        r.guide(f"kubectl exec {pod} -- kill -USR2 1")
        prom.wait_for(lambda: state_is("running"), "Prometheus to see the resume")
        prom.wait_for(lambda: pod not in alert_states(), "the alert to resolve")

        # The ConfigMap pauses it (the guide's declarative method): never unexpected.
        r.guide(GUIDE_CONFIGMAP.format(word="pause"))
        prom.wait_for(lambda: state_is("paused"), "Prometheus to see the ConfigMap's pause")
        assert prom.value(f'pulling_agent_declared_state{{{this_pod}, state="paused"}}') == 1
        paused_at = time.monotonic()
        seen: list[dict[str, str]] = []
        prom.wait_for(
            lambda: seen.append(alert_states()) or time.monotonic() - paused_at > 15,
            "three times the alert's `for` with the ConfigMap's pause",
        )
        assert all(pod not in states for states in seen), seen

        # A word the agent refuses (counted), then the ConfigMap resumes it.
        r.guide(GUIDE_CONFIGMAP.format(word="halt"))
        prom.wait_for(
            lambda: prom.value(
                f'pulling_agent_control_errors_total{{{this_pod}, channel="configmap", '
                'kind="invalid"}'
            ),
            "the refused word to be counted",
        )
        r.guide(GUIDE_CONFIGMAP.format(word="running"))
        prom.wait_for(lambda: state_is("running"), "Prometheus to see the ConfigMap's resume")

        # Every dashboard query, from the installed ConfigMap, returns data over the test's
        # range (as Grafana asks: a range query, $__rate_interval = 4 scrapes at least).
        (cm,) = [
            c
            for c in r.core.list_namespaced_config_map(r.namespace).items
            if c.metadata.name.endswith("-dashboard")
        ]
        model = json.loads(cm.data["pulling-agent.json"])
        queries = dashboard_queries(r.namespace, RELEASE, rate_interval="10s", model=model)
        empty: list[str] = []

        def every_panel_has_data() -> bool:
            now = time.time()
            empty[:] = [
                f"{q.panel} [{q.ref}]: {q.expr}"
                for q in queries
                if not prom.query_range(q.expr, started, now)
            ]
            return not empty

        try:
            prom.wait_for(every_panel_has_data, "data in every dashboard query", timeout=120)
        except AssertionError:
            raise AssertionError("dashboard queries without data:\n" + "\n".join(empty)) from None

        # What one scrape of the pod costs its Prometheus.
        size = prom.value(f"max_over_time(scrape_body_size_bytes{{{this_pod}}}[1m])")
        series = prom.value(
            f"max_over_time(scrape_samples_post_metric_relabeling{{{this_pod}}}[1m])"
        )
        assert size and series
        record_property("scrape_bytes_per_pod", size)
        record_property("series_per_pod", series)
        print(f"scrape cost of {pod}: {size:.0f} bytes, {series:.0f} series a scrape")
