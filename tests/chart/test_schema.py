"""values.schema.json and the chart's own checks refuse bad values, naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import CHART, Chart

pytestmark = pytest.mark.chart

WINDOW = {"name": "agent-maintenance", "pause": "0 2 * * *", "resume": "0 4 * * *"}

# (values, what helm's message must contain)
SCHEMA_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("misspelt top-level key", {"replicas": 2}, ["additional properties", "replicas"]),
    ("misspelt nested key", {"agent": {"batchSze": 3}}, ["/agent", "batchSze"]),
    ("misspelt control key", {"control": {"configmapName": "x"}}, ["/control", "configmapName"]),
    ("unknown control state", {"control": {"state": "paused"}}, ["/control/state", "pause"]),
    ("negative replicas", {"replicaCount": -1}, ["/replicaCount"]),
    ("string where an int goes", {"agent": {"batchSize": "ten"}}, ["/agent/batchSize"]),
    ("zero batch size", {"agent": {"batchSize": 0}}, ["/agent/batchSize"]),
    ("unknown log format", {"agent": {"logFormat": "xml"}}, ["/agent/logFormat"]),
    ("bad processor", {"agent": {"processor": "my module"}}, ["/agent/processor"]),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
    ("bad digest", {"image": {"digest": "latest"}}, ["/image/digest"]),
    ("port out of range", {"metrics": {"port": 70000}}, ["/metrics/port"]),
    (
        "bad scrape interval",
        {"metrics": {"serviceMonitor": {"interval": "30 seconds"}}},
        ["/metrics/serviceMonitor/interval"],
    ),
    (
        "bad alert duration",
        {"metrics": {"prometheusRule": {"stalledFor": "a while"}}},
        ["/metrics/prometheusRule/stalledFor"],
    ),
    ("bool as string", {"health": {"readyWhilePaused": "yes"}}, ["/health/readyWhilePaused"]),
    ("unsupported source", {"source": {"url": "mysql://db/queue"}}, ["/source/url"]),
    (
        "window without resume",
        {"maintenanceWindows": [{"name": "w", "pause": "0 2 * * *"}]},
        ["/maintenanceWindows/0", "resume"],
    ),
    (
        "misspelt window key",
        {"maintenanceWindows": [{**WINDOW, "timezone": "UTC"}]},
        ["/maintenanceWindows/0", "timezone"],
    ),
    (
        "four-field schedule",
        {"maintenanceWindows": [{**WINDOW, "pause": "0 2 * *"}]},
        ["/maintenanceWindows/0/pause"],
    ),
    (
        "TZ inside the schedule",
        {"maintenanceWindows": [{**WINDOW, "resume": "CRON_TZ=UTC 0 4 * * *"}]},
        ["/maintenanceWindows/0/resume"],
    ),
    (
        "window name not a DNS label",
        {"maintenanceWindows": [{**WINDOW, "name": "Nightly_Backup"}]},
        ["/maintenanceWindows/0/name"],
    ),
    (
        "window name too long for a CronJob",
        {"maintenanceWindows": [{**WINDOW, "name": "w" * 46}]},
        ["/maintenanceWindows/0/name"],
    ),
    (
        "bad time zone",
        {"maintenanceWindows": [{**WINDOW, "timeZone": "Europe Paris"}]},
        ["/maintenanceWindows/0/timeZone"],
    ),
    (
        "suspend as string",
        {"maintenanceWindows": [{**WINDOW, "suspend": "true"}]},
        ["/maintenanceWindows/0/suspend"],
    ),
    (
        "bad configmap name",
        {"control": {"configMapName": "Agent_Control"}},
        ["/control/configMapName"],
    ),
    ("misspelt jobs key", {"control": {"jobs": {"enable": False}}}, ["/control/jobs", "enable"]),
    (
        "bad resource quantity",
        {"resources": {"limits": {"memory": "lots"}}},
        ["/resources/limits/memory"],
    ),
    ("misspelt resources key", {"resources": {"limit": {}}}, ["/resources", "limit"]),
    ("unknown strategy", {"strategy": {"type": "BlueGreen"}}, ["/strategy/type"]),
    (
        "misspelt env var key",
        {"agent": {"extraEnv": [{"name": "A", "vaule": "1"}]}},
        ["/agent/extraEnv/0", "vaule"],
    ),
]


@pytest.mark.parametrize(
    ("values", "needles"),
    [pytest.param(v, n, id=i) for i, v, n in SCHEMA_CASES],
)
def test_schema_refuses(chart: Chart, values: dict[str, Any], needles: list[str]) -> None:
    message = chart.fail(values)
    assert "values don't meet the specifications of the schema" in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


# Checks that need two values at once live in the templates (helpers: pulling-agent.validate).
TEMPLATE_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "grace period not above the stop grace",
        {"terminationGracePeriodSeconds": 25, "agent": {"stopGraceSeconds": 25}},
        ["terminationGracePeriodSeconds (25)", "agent.stopGraceSeconds (25)"],
    ),
    (
        "liveness age below the heartbeat",
        {"health": {"livenessMaxAgeSeconds": 10}, "agent": {"heartbeatInterval": 5}},
        ["health.livenessMaxAgeSeconds (10)", "agent.heartbeatInterval (5)"],
    ),
    (
        "password in source.url",
        {"source": {"url": "postgresql://agent:s3cret@db:5432/queue"}},
        ["source.url contains a password", "source.existingSecret"],
    ),
    ("many replicas on SQLite", {"replicaCount": 2}, ["replicaCount (2)", "postgresql"]),
    (
        "ServiceMonitor without metrics",
        {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
        ["metrics.serviceMonitor.enabled needs metrics.enabled"],
    ),
    (
        "PrometheusRule without metrics",
        {"metrics": {"enabled": False, "prometheusRule": {"enabled": True}}},
        ["metrics.prometheusRule.enabled needs metrics.enabled"],
    ),
    (
        "two windows with one name",
        {"maintenanceWindows": [WINDOW, WINDOW]},
        ['"agent-maintenance" is used twice'],
    ),
    (
        "window named like the release",
        {"maintenanceWindows": [{**WINDOW, "name": "pulling-agent"}]},
        ["collide", "pause-pulling-agent"],
    ),
]


@pytest.mark.parametrize(
    ("values", "needles"),
    [pytest.param(v, n, id=i) for i, v, n in TEMPLATE_CASES],
)
def test_template_checks_refuse(chart: Chart, values: dict[str, Any], needles: list[str]) -> None:
    message = chart.fail(values)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_the_refused_values_are_accepted_when_fixed(chart: Chart) -> None:
    """The template checks are not over-eager: the neighbouring good values pass."""
    chart.render({"terminationGracePeriodSeconds": 26, "agent": {"stopGraceSeconds": 25}})
    chart.render({"health": {"livenessMaxAgeSeconds": 11}, "agent": {"heartbeatInterval": 5}})
    chart.render({"source": {"url": "postgresql://agent@db:5432/queue"}, "replicaCount": 3})
    chart.render({"replicaCount": 2, "source": {"existingSecret": "db"}})
    chart.render({"maintenanceWindows": [WINDOW, {**WINDOW, "name": "other"}]})
    chart.render(
        {
            "maintenanceWindows": [{**WINDOW, "name": "pulling-agent"}],
            "control": {"jobs": {"enabled": False}},
        }
    )


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if schema.get("type") == "object" and "properties" in schema:
        out.append((path or "/", schema))
        for key, sub in schema["properties"].items():
            out.extend(_objects(sub, f"{path}/{key}"))
    if "items" in schema:
        out.extend(_objects(schema["items"], f"{path}/*"))
    return out


def test_every_schema_object_refuses_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = _objects(schema)
    assert len(objects) > 10
    for path, obj in objects:
        assert obj.get("additionalProperties") is False, f"{path} accepts unknown keys"
