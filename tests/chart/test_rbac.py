"""ServiceAccounts and Roles: exactly least privilege."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .conftest import CHART, Chart, Rendered

pytestmark = pytest.mark.chart

WATCH_RULE = {
    "apiGroups": [""],
    "resources": ["configmaps"],
    "resourceNames": ["agent-control"],
    "verbs": ["get", "list", "watch"],
}
#: The agent's only write: its own report, a patch of the one status ConfigMap.
REPORT_RULE = {
    "apiGroups": [""],
    "resources": ["configmaps"],
    "resourceNames": ["agent-control-status"],
    "verbs": ["patch"],
}
AGENT_RULES = [WATCH_RULE, REPORT_RULE]
CONTROL_CONFIGMAP_RULE = {
    "apiGroups": [""],
    "resources": ["configmaps"],
    "resourceNames": ["agent-control"],
    "verbs": ["get", "patch"],
}
LIST_PODS_RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
CONTROL_RULES = [
    CONTROL_CONFIGMAP_RULE,
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["agent-control-status"],
        "verbs": ["get", "patch"],
    },
    LIST_PODS_RULE,
]
SIGNAL_RULES = [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]


def test_default_rules_exactly(default_render: Rendered) -> None:
    assert default_render.get("Role", "pulling-agent-agent")["rules"] == AGENT_RULES
    assert default_render.get("Role", "pulling-agent-control")["rules"] == CONTROL_RULES
    assert len(default_render.of_kind("Role")) == 2


def test_bindings(default_render: Rendered) -> None:
    for duty, account in (("agent", "pulling-agent"), ("control", "pulling-agent-control")):
        binding = default_render.get("RoleBinding", f"pulling-agent-{duty}")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"pulling-agent-{duty}",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": "default"}
        ]
        sa = default_render.get("ServiceAccount", account)
        assert sa["automountServiceAccountToken"] is False  # only pods that need it mount it
    pod = default_render.deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "pulling-agent"


def test_signalling_adds_pods_exec_to_the_control_role_only(chart: Chart) -> None:
    r = chart.render({"control": {"jobs": {"signalPods": True}}})
    assert r.get("Role", "pulling-agent-control")["rules"] == CONTROL_RULES + SIGNAL_RULES
    assert r.get("Role", "pulling-agent-agent")["rules"] == AGENT_RULES
    # The Jobs are told which pods to signal: the agent pods only.
    for cj in r.of_kind("CronJob"):
        container = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        command = container["command"]
        assert command[command.index("--signal-selector") + 1] == (
            "app.kubernetes.io/component=agent,"
            "app.kubernetes.io/instance=pulling-agent,app.kubernetes.io/name=pulling-agent"
        )


def test_watch_off_leaves_the_report_rule(chart: Chart) -> None:
    r = chart.render({"control": {"watch": False}})
    assert r.get("Role", "pulling-agent-agent")["rules"] == [REPORT_RULE]


def test_watch_and_reports_off_have_no_agent_role(chart: Chart) -> None:
    r = chart.render({"control": {"watch": False, "reports": False}})
    assert not r.has("Role", "pulling-agent-agent")
    assert not r.has("RoleBinding", "pulling-agent-agent")
    assert r.has("ServiceAccount", "pulling-agent")
    assert not r.has("ConfigMap", "agent-control-status")
    pod = r.deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False


def test_reports_off_drop_the_status_rules_and_the_pod_list(chart: Chart) -> None:
    r = chart.render({"control": {"reports": False}})
    assert r.get("Role", "pulling-agent-agent")["rules"] == [WATCH_RULE]
    assert r.get("Role", "pulling-agent-control")["rules"] == [CONTROL_CONFIGMAP_RULE]
    for cj in r.of_kind("CronJob"):
        job = cj["spec"]["jobTemplate"]["spec"]
        assert "podFailurePolicy" not in job
        command = job["template"]["spec"]["containers"][0]["command"]
        assert "--no-wait" in command and "--wait" not in command


def test_never_broad(chart: Chart, ci_values_files: list[Path]) -> None:
    renders = [chart.render()] + [
        chart.render(yaml.safe_load(p.read_text())) for p in ci_values_files
    ]
    for r in renders:
        kinds = {o["kind"] for o in r.objects}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        for role in r.of_kind("Role"):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"]
                assert rule["apiGroups"] == [""]
                assert "secrets" not in rule["resources"]
                if rule["resources"] == ["configmaps"]:
                    # RBAC cannot scope create by name: it is never granted.
                    assert "create" not in rule["verbs"] and "update" not in rule["verbs"]
                    assert "delete" not in rule["verbs"]
                    assert rule["resourceNames"], "ConfigMap rules are always name-scoped"
                if "pods/exec" in rule["resources"] or "pods" in rule["resources"]:
                    assert role["metadata"]["name"].endswith("-control")


def test_every_rule_has_a_comment() -> None:
    lines = (CHART / "templates" / "role.yaml").read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if re.match(r"\s*- apiGroups:", line)]
    assert len(rules) == 6
    for i in rules:
        above = lines[i - 1].strip()
        assert above.startswith("#"), f"role.yaml line {i + 1}: rule without a comment"


# --- existing accounts, workload identity, rbac.create ---


def _pod_accounts(r: Rendered) -> dict[str, str]:
    return {where: spec["serviceAccountName"] for where, spec in r.pod_specs()}


def test_existing_accounts(chart: Chart) -> None:
    r = chart.render(
        {
            "serviceAccount": {"create": False, "name": "queue-agent"},
            "control": {"jobs": {"serviceAccount": {"create": False, "name": "queue-control"}}},
        }
    )
    assert r.of_kind("ServiceAccount") == []
    accounts = _pod_accounts(r)
    assert accounts.pop("Deployment/pulling-agent") == "queue-agent"
    assert set(accounts.values()) == {"queue-control"} and len(accounts) == 2
    # The chart's Roles are bound to the accounts it was given.
    for duty, account in (("agent", "queue-agent"), ("control", "queue-control")):
        subjects = r.get("RoleBinding", f"pulling-agent-{duty}")["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": account, "namespace": "default"}]
    assert r.get("Role", "pulling-agent-agent")["rules"] == AGENT_RULES


def test_named_accounts_created_with_annotations(chart: Chart) -> None:
    """Workload identity: the annotations go on the accounts the pods run as."""
    agent_id = {"iam.gke.io/gcp-service-account": "agent@p.iam.gserviceaccount.com"}
    control_id = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/control"}
    r = chart.render(
        {
            "serviceAccount": {"name": "queue-agent", "annotations": agent_id},
            "control": {
                "jobs": {"serviceAccount": {"name": "queue-control", "annotations": control_id}}
            },
        }
    )
    assert r.get("ServiceAccount", "queue-agent")["metadata"]["annotations"] == agent_id
    assert r.get("ServiceAccount", "queue-control")["metadata"]["annotations"] == control_id
    accounts = _pod_accounts(r)
    assert accounts.pop("Deployment/pulling-agent") == "queue-agent"
    assert set(accounts.values()) == {"queue-control"}
    # No annotations by default.
    for sa in chart.render().of_kind("ServiceAccount"):
        assert "annotations" not in sa["metadata"]


def test_rbac_off_renders_no_role(chart: Chart) -> None:
    r = chart.render({"rbac": {"create": False}, "control": {"jobs": {"signalPods": True}}})
    assert r.of_kind("Role") == [] and r.of_kind("RoleBinding") == []
    # Everything else is unchanged: the accounts, and the pods running as them.
    default = chart.render({"control": {"jobs": {"signalPods": True}}})
    assert [n for n in default.names() if not n.startswith("Role")] == r.names()
    assert _pod_accounts(r) == _pod_accounts(default)


def test_control_account_only_with_control_jobs(chart: Chart) -> None:
    r = chart.render({"control": {"jobs": {"enabled": False}}})
    assert [sa["metadata"]["name"] for sa in r.of_kind("ServiceAccount")] == ["pulling-agent"]
    assert not r.has("Role", "pulling-agent-control")
