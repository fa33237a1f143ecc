"""The control ConfigMap and the control CronJobs (on-demand and maintenance windows)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import CHART, Chart, Rendered

pytestmark = pytest.mark.chart

WINDOWS = [
    {
        "name": "agent-maintenance",
        "pause": "0 2 * * *",
        "resume": "0 4 * * *",
        "timeZone": "Europe/Paris",
        "reason": "nightly backup",
    },
    {"name": "weekend-only", "pause": "0 18 * * 5", "resume": "0 18 * * 0", "suspend": True},
]


def _job_pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


# --- the ConfigMap ---


def test_configmap_defaults_to_running_without_a_live_object(default_render: Rendered) -> None:
    """`helm template` has no cluster: lookup is empty, so the first-install branch."""
    cm = default_render.get("ConfigMap", "agent-control")
    assert cm["data"] == {"state": "running"}
    assert cm["metadata"]["namespace"] == "default"


@pytest.mark.parametrize("state", ["pause", "resume", "running"])
def test_explicit_state_is_written_with_its_audit_trail(chart: Chart, state: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    cm = chart.render({"control": {"state": state, "reason": "db migration", "requestedBy": "ops"}})
    data = cm.get("ConfigMap", "agent-control")["data"]
    assert set(data) == {"state", "reason", "requested-by", "requested-at"}
    assert data["state"] == state
    assert data["reason"] == "db migration"
    assert data["requested-by"] == "ops"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["requested-at"])
    at = datetime.strptime(data["requested-at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)


def test_explicit_state_without_reason(chart: Chart) -> None:
    data = chart.render({"control": {"state": "pause"}}).get("ConfigMap", "agent-control")["data"]
    assert data["state"] == "pause"
    assert data["requested-by"] == "helm"
    assert "reason" not in data


def test_configmap_name(chart: Chart) -> None:
    r = chart.render({"control": {"configMapName": "queue-control"}})
    assert r.has("ConfigMap", "queue-control") and not r.has("ConfigMap", "agent-control")
    for cj in r.of_kind("CronJob"):
        command = _job_pod(cj)["containers"][0]["command"]
        assert command[command.index("--configmap") + 1] == "queue-control"
    for role in r.of_kind("Role"):
        assert role["rules"][0]["resourceNames"] == ["queue-control"]


# --- the on-demand CronJobs ---


def test_on_demand_cronjobs(default_render: Rendered) -> None:
    for action in ("pause", "resume"):
        cj = default_render.get("CronJob", f"{action}-pulling-agent")
        spec = cj["spec"]
        assert spec["suspend"] is True
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["successfulJobsHistoryLimit"] == 5
        assert spec["failedJobsHistoryLimit"] == 5
        assert "timeZone" not in spec
        job = spec["jobTemplate"]
        # kubectl create job --from=cronjob copies these labels to the Job.
        assert job["metadata"]["labels"]["app"] == "pulling-agent-control"
        assert job["spec"]["backoffLimit"] == 4
        assert job["spec"]["activeDeadlineSeconds"] == 600
        pod = _job_pod(cj)
        assert pod["serviceAccountName"] == "pulling-agent-control"
        assert pod["automountServiceAccountToken"] is True
        assert pod["restartPolicy"] == "Never"
        (container,) = pod["containers"]
        # The agent image's own CLI, no kubectl image.
        assert container["image"] == default_render.agent_container["image"]
        assert container["command"] == [
            "pulling-agent",
            "ctl",
            action,
            "--configmap",
            "agent-control",
            "--namespace",
            "default",
            "--reason",
            "on-demand control Job",
            "--by",
            f"cronjob/{action}-pulling-agent",
            "--wait",
            "--timeout",
            "120s",
            "--selector",
            "app.kubernetes.io/component=agent,"
            "app.kubernetes.io/instance=pulling-agent,app.kubernetes.io/name=pulling-agent",
        ]
        # Exit 3 (an agent did not report the state) fails the Job at once: no retry.
        assert job["spec"]["podFailurePolicy"] == {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "ctl", "operator": "In", "values": [3]},
                }
            ]
        }
        assert "env" not in container  # the command is complete in itself
        assert container["resources"]["limits"] == {"memory": "128Mi"}


def test_on_demand_cronjobs_follow_the_release_namespace(chart: Chart) -> None:
    r = chart.render(namespace="batch")
    for cj in r.of_kind("CronJob"):
        assert cj["metadata"]["namespace"] == "batch"
        command = _job_pod(cj)["containers"][0]["command"]
        assert command[command.index("--namespace") + 1] == "batch"


def test_schedules_are_quoted(chart: Chart) -> None:
    r = chart.render({"maintenanceWindows": WINDOWS})
    assert 'schedule: "0 0 1 1 *"' in r.text
    assert 'schedule: "0 2 * * *"' in r.text
    assert 'schedule: "0 18 * * 0"' in r.text
    assert 'timeZone: "Europe/Paris"' in r.text


def test_jobs_disabled(chart: Chart) -> None:
    r = chart.render({"control": {"jobs": {"enabled": False}}})
    assert not r.of_kind("CronJob")
    assert not r.has("ServiceAccount", "pulling-agent-control")
    assert not r.has("Role", "pulling-agent-control")
    assert not r.has("RoleBinding", "pulling-agent-control")
    # Windows still get their account.
    r = chart.render({"control": {"jobs": {"enabled": False}}, "maintenanceWindows": WINDOWS})
    assert sorted(c["metadata"]["name"] for c in r.of_kind("CronJob")) == [
        "pause-agent-maintenance",
        "pause-weekend-only",
        "resume-agent-maintenance",
        "resume-weekend-only",
    ]
    assert r.has("Role", "pulling-agent-control")


def test_job_settings(chart: Chart) -> None:
    r = chart.render(
        {
            "control": {
                "jobs": {
                    "reason": "pipeline deploy",
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 60,
                    "successfulJobsHistoryLimit": 10,
                    "failedJobsHistoryLimit": 2,
                    "resources": {"limits": {"memory": "64Mi"}},
                }
            }
        }
    )
    cj = r.get("CronJob", "pause-pulling-agent")
    assert cj["spec"]["successfulJobsHistoryLimit"] == 10
    assert cj["spec"]["failedJobsHistoryLimit"] == 2
    assert cj["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 1
    assert cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 60
    container = _job_pod(cj)["containers"][0]
    assert container["command"][container["command"].index("--reason") + 1] == "pipeline deploy"
    assert container["resources"]["limits"] == {"memory": "64Mi"}


# --- maintenance windows ---


def test_maintenance_windows(chart: Chart) -> None:
    r = chart.render(
        {
            "maintenanceWindows": WINDOWS,
            "control": {
                "jobs": {"pauseStartingDeadlineSeconds": 300, "resumeStartingDeadlineSeconds": 7200}
            },
        }
    )
    pause = r.get("CronJob", "pause-agent-maintenance")["spec"]
    resume = r.get("CronJob", "resume-agent-maintenance")["spec"]
    assert pause["schedule"] == "0 2 * * *"
    assert resume["schedule"] == "0 4 * * *"
    assert pause["timeZone"] == resume["timeZone"] == "Europe/Paris"
    assert pause["suspend"] is False and resume["suspend"] is False
    assert pause["concurrencyPolicy"] == resume["concurrencyPolicy"] == "Forbid"
    assert pause["startingDeadlineSeconds"] == 300
    # A missed resume must still run: its deadline is the longer one.
    assert resume["startingDeadlineSeconds"] == 7200
    for spec, action in ((pause, "pause"), (resume, "resume")):
        assert spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
        command = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:3] == ["pulling-agent", "ctl", action]
        assert command[command.index("--reason") + 1] == "nightly backup"
        assert command[command.index("--by") + 1] == f"cronjob/{action}-agent-maintenance"
        labels = spec["jobTemplate"]["metadata"]["labels"]
        assert labels["app"] == "pulling-agent-control"
        assert labels["pulling-agent.io/action"] == action
    weekend = r.get("CronJob", "pause-weekend-only")["spec"]
    assert weekend["suspend"] is True
    assert "timeZone" not in weekend
    command = weekend["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--reason") + 1] == "maintenance window weekend-only"
    assert r.get("CronJob", "resume-weekend-only")["spec"]["suspend"] is True
    # The on-demand pair is still there.
    assert r.has("CronJob", "pause-pulling-agent") and r.has("CronJob", "resume-pulling-agent")


def test_default_deadlines_favour_the_resume(default_render: Rendered, chart: Chart) -> None:
    r = chart.render({"maintenanceWindows": WINDOWS[:1]})
    pause = r.get("CronJob", "pause-agent-maintenance")["spec"]["startingDeadlineSeconds"]
    resume = r.get("CronJob", "resume-agent-maintenance")["spec"]["startingDeadlineSeconds"]
    assert resume > pause >= 60
    # The on-demand CronJobs never fire, so they carry no deadline.
    assert (
        "startingDeadlineSeconds"
        not in default_render.get("CronJob", "pause-pulling-agent")["spec"]
    )


def test_status_configmap_holds_no_data_and_names_the_agent_pods(default_render: Rendered) -> None:
    """The reports are runtime data: the chart renders no `data` (Helm's three-way merge
    then never wipes nor restores them on upgrade) and annotates the pods' selector."""
    status = default_render.get("ConfigMap", "agent-control-status")
    assert "data" not in status
    assert status["metadata"]["annotations"] == {
        "pulling-agent.io/agent-selector": "app.kubernetes.io/component=agent,"
        "app.kubernetes.io/instance=pulling-agent,app.kubernetes.io/name=pulling-agent"
    }
    template = (CHART / "templates" / "configmap-status.yaml").read_text()
    assert "lookup" not in template.replace("(no `lookup`", "")
