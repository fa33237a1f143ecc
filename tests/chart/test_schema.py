"""values.schema.json and the chart's own checks refuse bad values, naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import CHART, Chart, values_yaml

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
    ("misspelt account key", {"serviceAccount": {"crate": False}}, ["/serviceAccount", "crate"]),
    ("bad account name", {"serviceAccount": {"name": "Queue_Agent"}}, ["/serviceAccount/name"]),
    (
        "annotation that is not a string",
        {"serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": 1}}},
        ["/serviceAccount/annotations/iam.gke.io~1gcp-service-account"],
    ),
    (
        "misspelt control account key",
        {"control": {"jobs": {"serviceAccount": {"nmae": "x"}}}},
        ["/control/jobs/serviceAccount", "nmae"],
    ),
    ("rbac switch as string", {"rbac": {"create": "no"}}, ["/rbac/create"]),
    (
        "misspelt pod security key",
        {"podSecurityContext": {"runAsUsr": 1000}},
        ["/podSecurityContext", "runAsUsr"],
    ),
    (
        "user as a name",
        {"podSecurityContext": {"runAsUser": "agent"}},
        ["/podSecurityContext/runAsUser"],
    ),
    (
        "unknown seccomp profile",
        {"podSecurityContext": {"seccompProfile": {"type": "Default"}}},
        ["/podSecurityContext/seccompProfile/type"],
    ),
    (
        "misspelt capabilities key",
        {"securityContext": {"capabilities": {"dorp": ["ALL"]}}},
        ["/securityContext/capabilities", "dorp"],
    ),
    (
        "privileged as string",
        {"securityContext": {"privileged": "false"}},
        ["/securityContext/privileged"],
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
    (
        "no agent account",
        {"serviceAccount": {"create": False}},
        ["serviceAccount.create is false", "set serviceAccount.name"],
    ),
    (
        "no control account",
        {"control": {"jobs": {"serviceAccount": {"create": False}}}},
        ["control.jobs.serviceAccount.create is false", "set control.jobs.serviceAccount.name"],
    ),
    (
        "one account created twice",
        {
            "serviceAccount": {"name": "queue"},
            "control": {"jobs": {"serviceAccount": {"name": "queue"}}},
        },
        ['both "queue"', "twice"],
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
    chart.render({"serviceAccount": {"create": False, "name": "queue"}})
    # No control Jobs at all: their account is not needed.
    chart.render({"control": {"jobs": {"enabled": False, "serviceAccount": {"create": False}}}})
    # One existing account for both duties is the platform's choice.
    chart.render(
        {
            "serviceAccount": {"create": False, "name": "queue"},
            "control": {"jobs": {"serviceAccount": {"create": False, "name": "queue"}}},
        }
    )


def test_window_cronjob_names_are_never_cut(chart: Chart) -> None:
    """Outside the guide's install a window's CronJobs carry the fullname; too long fails.

    Cutting the name instead could give two releases the same CronJob.
    """
    fits = {**WINDOW, "name": "w" * 26}  # resume-prod-pulling-agent-<26> is 52 characters
    r = chart.render({"maintenanceWindows": [fits]}, release="prod")
    assert r.has("CronJob", f"resume-prod-pulling-agent-{'w' * 26}")
    message = chart.fail({"maintenanceWindows": [{**WINDOW, "name": "w" * 27}]}, release="prod")
    assert "maintenanceWindows[0]" in message and "over the 52" in message
    assert "at most 26 characters" in message


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if schema.get("type") == "object" and "properties" in schema:
        out.append((path or "/", schema))
        for key, sub in schema["properties"].items():
            out.extend(_objects(sub, f"{path}/{key}"))
    if "items" in schema:
        out.extend(_objects(schema["items"], f"{path}/*"))
    for i, sub in enumerate(schema.get("allOf", [])):
        out.extend(_objects(sub, f"{path}/allOf/{i}"))
    for name, sub in schema.get("definitions", {}).items():
        out.extend(_objects(sub, f"#/definitions/{name}"))
    return out


def _schema() -> dict[str, Any]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


def test_every_schema_object_refuses_unknown_keys() -> None:
    objects = _objects(_schema())
    assert len(objects) > 10
    assert any(path.startswith("#/definitions/") for path, _ in objects)
    for path, obj in objects:
        assert obj.get("additionalProperties") is False, f"{path} accepts unknown keys"


# --- the hand-written schema cannot drift from values.yaml ---------------------------------

JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
JSON_TYPES.update({list: "array", dict: "object", type(None): "null"})


def _at(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


def _schema_node(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in key.split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def _canonical(value: Any) -> str:
    """JSON with sorted keys: 1 and true, or 2 and 2.0, are not the same default."""
    return json.dumps(value, sort_keys=True)


def _type_accepts(declared: str | list[str], value: Any) -> bool:
    types = [declared] if isinstance(declared, str) else declared
    actual = JSON_TYPES[type(value)]
    return actual in types or (actual == "integer" and "number" in types)


def schema_drift(schema: dict[str, Any], values: dict[str, Any], docs: dict[str, str]) -> list[str]:
    """Every difference between the schema and values.yaml, one line each.

    `docs` is helm-docs' reading of values.yaml (key -> description).  A documented
    key's schema node must carry that description, values.yaml's value as its
    `default`, and a `type` that accepts it.  Between the root and the documented
    keys the schema's objects are values.yaml's sections: the same keys, and no
    description or default (values.yaml has no comment to take them from).
    Inside a documented value (`resources`, `podSecurityContext`, ...) the schema
    describes the Kubernetes shape on its own.
    """
    problems: list[str] = []
    for key, description in sorted(docs.items()):
        node = _schema_node(schema, key)
        if node is None:
            problems.append(f"{key}: in values.yaml, not in values.schema.json")
            continue
        default = _at(values, key)
        if node.get("description") != description:
            problems.append(f"{key}: the description must be {json.dumps(description)}")
        if _canonical(node.get("default")) != _canonical(default):
            problems.append(f"{key}: the default must be {_canonical(default)}")
        if "type" not in node or not _type_accepts(node["type"], default):
            problems.append(f"{key}: the type {node.get('type')!r} does not fit {default!r}")

    def sections(node: dict[str, Any], tree: dict[str, Any], prefix: str) -> None:
        properties = node.get("properties", {})
        for key in sorted(set(tree) - set(properties)):
            problems.append(f"{prefix}{key}: in values.yaml, not in values.schema.json")
        for key, sub in properties.items():
            path = f"{prefix}{key}"
            if path in docs:
                continue
            if key not in tree:
                problems.append(f"{path}: in values.schema.json, not in values.yaml")
            elif not isinstance(tree[key], dict) or "properties" not in sub:
                problems.append(f"{path}: no `# --` comment in values.yaml")
            else:
                for word in ("description", "default"):
                    if word in sub:
                        problems.append(f"{path}: a section has no {word} in values.yaml")
                sections(sub, tree[key], f"{path}.")

    sections(schema, values, "")
    return problems


def test_schema_matches_values_yaml(values_docs: dict[str, str]) -> None:
    problems = schema_drift(_schema(), values_yaml(), values_docs)
    assert problems == [], "values.schema.json drifted from values.yaml:\n" + "\n".join(problems)


Change = Callable[[dict[str, Any], dict[str, Any], dict[str, str]], Any]
DRIFTS: list[tuple[str, Change, str]] = [
    (
        "description",
        lambda s, v, d: s["properties"]["image"]["properties"]["tag"].update(description="x"),
        "image.tag: the description must be",
    ),
    (
        "default",
        lambda s, v, d: v["control"]["jobs"].update(backoffLimit=5),
        "control.jobs.backoffLimit: the default must be 5",
    ),
    (
        "type",
        lambda s, v, d: s["properties"]["replicaCount"].update(type="string"),
        "replicaCount: the type 'string' does not fit 1",
    ),
    (
        "key missing from the schema",
        lambda s, v, d: s["properties"]["health"]["properties"].pop("periodSeconds"),
        "health.periodSeconds: in values.yaml, not in values.schema.json",
    ),
    (
        "key missing from values.yaml",
        lambda s, v, d: (v["health"].pop("periodSeconds"), d.pop("health.periodSeconds")),
        "health.periodSeconds: in values.schema.json, not in values.yaml",
    ),
    (
        "key without a comment",
        lambda s, v, d: d.pop("health.periodSeconds"),
        "health.periodSeconds: no `# --` comment in values.yaml",
    ),
    (
        "section with a description",
        lambda s, v, d: s["properties"]["rbac"].update(description="RBAC."),
        "rbac: a section has no description in values.yaml",
    ),
]


@pytest.mark.parametrize(("change", "expected"), [pytest.param(c, e, id=i) for i, c, e in DRIFTS])
def test_schema_drift_is_caught(values_docs: dict[str, str], change: Change, expected: str) -> None:
    """Each kind of drift is reported (the check above can fail)."""
    schema, values, docs = _schema(), values_yaml(), dict(values_docs)
    assert schema_drift(schema, values, docs) == []
    change(schema, values, docs)
    problems = schema_drift(schema, values, docs)
    assert any(p.startswith(expected) for p in problems), problems
