"""Object names and labels (kube-state-metrics' naming cases)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import Chart, Rendered

pytestmark = pytest.mark.chart

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# (release, values, fullname, app label)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("default", "pulling-agent", {}, "pulling-agent", "pulling-agent"),
    ("other release", "prod", {}, "prod-pulling-agent", "pulling-agent"),
    (
        "release containing the chart name",
        "pulling-agent-eu",
        {},
        "pulling-agent-eu",
        "pulling-agent",
    ),
    ("nameOverride", "prod", {"nameOverride": "worker"}, "prod-worker", "worker"),
    (
        "fullnameOverride",
        "prod",
        {"fullnameOverride": "queue-worker"},
        "queue-worker",
        "pulling-agent",
    ),
]


@pytest.mark.parametrize(
    ("release", "values", "fullname", "app"),
    [pytest.param(r, v, f, a, id=i) for i, r, v, f, a in CASES],
)
def test_names(chart: Chart, release: str, values: dict[str, Any], fullname: str, app: str) -> None:
    r = chart.render(values, release=release)
    # The guide's install keeps the guide's ConfigMap name; any other release has its own.
    configmap = "agent-control" if fullname == "pulling-agent" else f"{fullname}-control"
    assert r.names() == sorted(
        [
            f"ConfigMap/{configmap}",
            f"ConfigMap/{configmap}-status",
            f"CronJob/pause-{fullname}",
            f"CronJob/resume-{fullname}",
            f"Deployment/{fullname}",
            f"Role/{fullname}-agent",
            f"Role/{fullname}-control",
            f"RoleBinding/{fullname}-agent",
            f"RoleBinding/{fullname}-control",
            f"Service/{fullname}",
            f"ServiceAccount/{fullname}",
            f"ServiceAccount/{fullname}-control",
        ]
    )
    pod = r.deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app"] == app
    assert pod["spec"]["serviceAccountName"] == fullname
    name = values.get("nameOverride", "pulling-agent")
    for obj in r.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == name, obj["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == release
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    for kind in ("CronJob",):
        for cj in r.of_kind(kind):
            job = cj["spec"]["jobTemplate"]
            assert job["metadata"]["labels"]["app"] == f"{app}-control"
            assert job["spec"]["template"]["metadata"]["labels"]["app"] == f"{app}-control"
            assert job["spec"]["template"]["spec"]["serviceAccountName"] == f"{fullname}-control"


WINDOWS = [
    {"name": "agent-maintenance", "pause": "0 2 * * *", "resume": "0 4 * * *"},
    {"name": "weekend", "pause": "0 18 * * 5", "resume": "0 18 * * 0"},
]
EVERYTHING = {
    "maintenanceWindows": WINDOWS,
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "control": {"jobs": {"signalPods": True}},
}


@pytest.mark.parametrize("other", ["pulling-agent-b", "prod", "agent"])
def test_two_releases_in_one_namespace_share_no_name(chart: Chart, other: str) -> None:
    """A second release next to the guide's install, same values, every object on."""
    first = chart.render(EVERYTHING)
    second = chart.render(EVERYTHING, release=other)
    assert set(first.names()).isdisjoint(second.names())
    # ...and each release's pods and Jobs use its own ConfigMap and accounts.
    for r in (first, second):
        configmap, status = r.of_kind("ConfigMap")
        name = configmap["metadata"]["name"]
        assert status["metadata"]["name"] == f"{name}-status"
        assert r.agent_env()["PULLING_AGENT_CONFIGMAP"] == name
        assert r.agent_env()["PULLING_AGENT_STATUS_CONFIGMAP"] == f"{name}-status"
        for role in r.of_kind("Role"):
            assert role["rules"][0]["resourceNames"] == [name]
            assert role["rules"][1]["resourceNames"] == [f"{name}-status"]
        for cj in r.of_kind("CronJob"):
            command = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            assert command["command"][command["command"].index("--configmap") + 1] == name
    # The first keeps the guide's names.
    assert first.has("ConfigMap", "agent-control")
    assert first.has("CronJob", "pause-agent-maintenance")
    assert first.has("CronJob", "pause-pulling-agent")


def test_window_cronjobs_carry_the_fullname_outside_the_guide_install(chart: Chart) -> None:
    r = chart.render({"maintenanceWindows": WINDOWS}, release="prod")
    windows = sorted(
        c["metadata"]["name"]
        for c in r.of_kind("CronJob")
        if "pulling-agent.io/maintenance-window" in c["metadata"]["labels"]
    )
    assert windows == [
        "pause-prod-pulling-agent-agent-maintenance",
        "pause-prod-pulling-agent-weekend",
        "resume-prod-pulling-agent-agent-maintenance",
        "resume-prod-pulling-agent-weekend",
    ]
    job = r.get("CronJob", "pause-prod-pulling-agent-weekend")["spec"]["jobTemplate"]["spec"]
    command = job["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--by") + 1] == "cronjob/pause-prod-pulling-agent-weekend"


def test_an_explicit_configmap_name_wins(chart: Chart) -> None:
    for release in ("pulling-agent", "prod"):
        r = chart.render({"control": {"configMapName": "queue-control"}}, release=release)
        assert [c["metadata"]["name"] for c in r.of_kind("ConfigMap")] == [
            "queue-control",
            "queue-control-status",
        ]


def test_long_release_names_are_cut_to_the_api_limits(chart: Chart) -> None:
    release = "a-very-long-release-name-for-a-team-with-many-envs-x1"  # 53 characters, the maximum
    assert len(release) > 52
    r = chart.render(release=release)
    for obj in r.objects:
        name = obj["metadata"]["name"]
        # The status ConfigMap is `<control ConfigMap>-status`, uncut (the CLI derives the
        # name): ConfigMap names may be DNS subdomains of up to 253 characters.
        limit = {"CronJob": 52, "ConfigMap": 253}.get(obj["kind"], 63)
        assert len(name) <= limit, f"{obj['kind']}/{name} is {len(name)} characters"
        label = name.removesuffix("-status") if obj["kind"] == "ConfigMap" else name
        assert DNS_LABEL.match(label), f"{obj['kind']}/{name} is not a DNS label"
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
    cronjobs = sorted(c["metadata"]["name"] for c in r.of_kind("CronJob"))
    assert len(set(cronjobs)) == 2
    assert cronjobs[0].startswith("pause-a-very-long") and cronjobs[1].startswith("resume-a-very")


def test_fullname_override_is_cut_to_63(chart: Chart) -> None:
    r = chart.render({"fullnameOverride": "x" * 63})
    assert r.deployment["metadata"]["name"] == "x" * 63
    assert all(len(c["metadata"]["name"]) <= 52 for c in r.of_kind("CronJob"))


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors(default_render: Rendered) -> None:
    dep = default_render.deployment
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "pulling-agent",
        "app.kubernetes.io/instance": "pulling-agent",
        "app.kubernetes.io/component": "agent",
    }
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert _matches(selector, pod_labels)
    # The guide selects the agent pods with -l app=pulling-agent.
    assert pod_labels["app"] == "pulling-agent"
    service = default_render.get("Service", "pulling-agent")
    assert service["spec"]["selector"] == selector
    # Control Job pods match neither the Deployment, the Service nor the guide's
    # `-l app=pulling-agent` (whose jsonpath takes .items[0]).
    for cj in default_render.of_kind("CronJob"):
        job_pod = cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert not _matches(selector, job_pod)
        assert job_pod["app"] != "pulling-agent"


def test_selector_is_stable_across_upgrades(chart: Chart, default_render: Rendered) -> None:
    """The Deployment selector is immutable: nothing a user changes may alter it."""
    changed = chart.render(
        {
            "image": {"tag": "9.9.9"},
            "commonLabels": {"team": "ops"},
            "podLabels": {"tier": "batch"},
            "replicaCount": 3,
            "source": {"existingSecret": "db"},
            "control": {"state": "pause"},
        },
    )
    assert changed.deployment["spec"]["selector"] == default_render.deployment["spec"]["selector"]
    assert (
        changed.get("Service", "pulling-agent")["spec"]["selector"]
        == default_render.get("Service", "pulling-agent")["spec"]["selector"]
    )


def test_common_and_pod_labels(chart: Chart) -> None:
    r = chart.render({"commonLabels": {"team": "ops"}, "podLabels": {"tier": "batch"}})
    for obj in r.objects:
        assert obj["metadata"]["labels"]["team"] == "ops", obj["metadata"]["name"]
    pod_labels = r.deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["tier"] == "batch"
    assert pod_labels["team"] == "ops"
