"""Every key of values.yaml reaches the manifests.

For each leaf of values.yaml, SAMPLES holds a value to set, the values it
needs besides (a ServiceMonitor's interval needs the ServiceMonitor), and a
needle: a string whose count in the rendered manifests must change when the
value is set.  A new key without a sample fails `test_every_key_has_a_sample`.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Chart, deep_merge, value_leaves, values_yaml

pytestmark = pytest.mark.chart

MONITOR = {"metrics": {"serviceMonitor": {"enabled": True}}}
RULES = {"metrics": {"prometheusRule": {"enabled": True}}}
DASHBOARD = {"metrics": {"dashboard": {"enabled": True}}}
DASHBOARD_FOLDER = {"metrics": {"dashboard": {"enabled": True, "folder": "Queues"}}}
PAUSED = {"control": {"state": "pause"}}
WINDOW = {"name": "nightly", "pause": "0 2 * * *", "resume": "0 4 * * *"}
WINDOWS = {"maintenanceWindows": [WINDOW]}

# path: (value, needle, prerequisites)
SAMPLES: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "replicaCount": (0, "replicas: 0", {}),
    "image.repository": ("registry.example/agent", "registry.example/agent:", {}),
    "image.tag": ("9.9.9", ":9.9.9", {}),
    "image.digest": ("sha256:" + "b" * 64, "@sha256:bbbb", {}),
    "image.pullPolicy": ("Always", "imagePullPolicy: Always", {}),
    "imagePullSecrets": ([{"name": "regcred"}], "regcred", {}),
    "nameOverride": ("worker", "worker", {}),
    "fullnameOverride": ("queue-worker", "queue-worker", {}),
    "commonLabels": ({"team": "ops"}, "team: ops", {}),
    "control.state": ("pause", 'state: "pause"', {}),
    "control.configMapName": ("queue-control", "queue-control", {}),
    "control.reason": ("db-migration", "db-migration", PAUSED),
    "control.requestedBy": ("ops-team", "ops-team", PAUSED),
    "control.watch": (False, "PULLING_AGENT_CONFIGMAP", {}),
    "control.reports": (False, "PULLING_AGENT_STATUS_CONFIGMAP", {}),
    "control.reportInterval": (17, '"17"', {}),
    "control.jobs.waitTimeoutSeconds": (77, '"77s"', {}),
    "control.jobs.enabled": (False, "kind: CronJob", {}),
    "control.jobs.serviceAccount.create": (
        False,
        "kind: ServiceAccount",
        {"control": {"jobs": {"serviceAccount": {"name": "queue-control"}}}},
    ),
    "control.jobs.serviceAccount.name": ("queue-control", "queue-control", {}),
    "control.jobs.serviceAccount.annotations": (
        {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/control"},
        "role/control",
        {},
    ),
    "control.jobs.signalPods": (True, "pods/exec", {}),
    "control.jobs.reason": ("pipeline-deploy", "pipeline-deploy", {}),
    "control.jobs.backoffLimit": (9, "backoffLimit: 9", {}),
    "control.jobs.activeDeadlineSeconds": (77, "activeDeadlineSeconds: 77", {}),
    "control.jobs.successfulJobsHistoryLimit": (11, "successfulJobsHistoryLimit: 11", {}),
    "control.jobs.failedJobsHistoryLimit": (12, "failedJobsHistoryLimit: 12", {}),
    "control.jobs.pauseStartingDeadlineSeconds": (123, "startingDeadlineSeconds: 123", WINDOWS),
    "control.jobs.resumeStartingDeadlineSeconds": (
        4567,
        "startingDeadlineSeconds: 4567",
        WINDOWS,
    ),
    "control.jobs.resources.requests.cpu": ("33m", "cpu: 33m", {}),
    "control.jobs.resources.requests.memory": ("33Mi", "memory: 33Mi", {}),
    "control.jobs.resources.limits.memory": ("333Mi", "memory: 333Mi", {}),
    "maintenanceWindows": ([WINDOW], "pause-nightly", {}),
    "agent.processor": ("noop", '"noop"', {}),
    "agent.batchSize": (77, '"77"', {}),
    "agent.leaseSeconds": (78, '"78"', {}),
    "agent.pollInterval": (0.25, '"0.25"', {}),
    "agent.heartbeatInterval": (3, 'HEARTBEAT_INTERVAL\n              value: "3"', {}),
    "agent.stopGraceSeconds": (31, '"31"', {}),
    "agent.maxAttempts": (9, 'MAX_ATTEMPTS\n              value: "9"', {}),
    "agent.logFormat": ("text", '"text"', {}),
    "agent.logLevel": ("debug", '"debug"', {}),
    "agent.processorOptions": ({"delay": "1"}, "--processor-option=delay=1", {}),
    "agent.seed": (42, "PULLING_AGENT_SEED", {}),
    "agent.extraEnv": ([{"name": "EXTRA_THING", "value": "1"}], "EXTRA_THING", {}),
    "source.url": ("postgresql://db/queue", "postgresql://db/queue", {}),
    "source.existingSecret": ("agent-db", "secretKeyRef", {}),
    "source.existingSecretKey": ("dsn", "key: dsn", {"source": {"existingSecret": "agent-db"}}),
    "persistence.existingClaim": ("agent-data", "claimName: agent-data", {}),
    "terminationGracePeriodSeconds": (99, "terminationGracePeriodSeconds: 99", {}),
    "health.readyWhilePaused": (True, "= paused", {}),
    "health.livenessMaxAgeSeconds": (91, "-lt 91", {}),
    "health.periodSeconds": (13, "periodSeconds: 13", {}),
    "health.startupSeconds": (300, "failureThreshold: 150", {}),
    "metrics.enabled": (False, "kind: Service\n", {}),
    "metrics.port": (9300, "9300", {}),
    "metrics.serviceMonitor.enabled": (True, "kind: ServiceMonitor", {}),
    "metrics.serviceMonitor.interval": ("17s", "interval: 17s", MONITOR),
    "metrics.serviceMonitor.labels": ({"release": "kps1"}, "release: kps1", MONITOR),
    "metrics.prometheusRule.enabled": (True, "kind: PrometheusRule", {}),
    "metrics.prometheusRule.labels": ({"release": "kps2"}, "release: kps2", RULES),
    "metrics.prometheusRule.severity": ("page", "severity: page", RULES),
    "metrics.prometheusRule.unexpectedPauseFor": ("7m", "for: 7m", RULES),
    "metrics.prometheusRule.pausedTooLongSeconds": (4321, "> 4321", RULES),
    "metrics.prometheusRule.stalledFor": ("21m", "[21m]", RULES),
    "metrics.prometheusRule.notReportingFor": ("3m", "for: 3m", RULES),
    "metrics.dashboard.enabled": (True, "grafana_dashboard", {}),
    "metrics.dashboard.label": ("dashboards", "dashboards: ", DASHBOARD),
    "metrics.dashboard.labelValue": ("pulling", 'grafana_dashboard: "pulling"', DASHBOARD),
    "metrics.dashboard.folder": ("Queues", 'grafana_folder: "Queues"', DASHBOARD),
    "metrics.dashboard.folderAnnotation": ("dash-dir", "dash-dir", DASHBOARD_FOLDER),
    "metrics.dashboard.namespace": ("monitoring", "namespace: monitoring", DASHBOARD),
    "metrics.dashboard.labels": ({"team": "queues"}, "team: queues", DASHBOARD),
    "metrics.dashboard.annotations": ({"note": "generated"}, "note: generated", DASHBOARD),
    "serviceAccount.create": (False, "kind: ServiceAccount", {"serviceAccount": {"name": "q"}}),
    "serviceAccount.name": ("queue-agent", "queue-agent", {}),
    "serviceAccount.annotations": (
        {"iam.gke.io/gcp-service-account": "agent@project.iam.gserviceaccount.com"},
        "agent@project.iam",
        {},
    ),
    "rbac.create": (False, "kind: Role", {}),
    "podSecurityContext.runAsNonRoot": (False, "runAsNonRoot: false", {}),
    "podSecurityContext.runAsUser": (20001, "runAsUser: 20001", {}),
    "podSecurityContext.runAsGroup": (20002, "runAsGroup: 20002", {}),
    "podSecurityContext.fsGroup": (20003, "fsGroup: 20003", {}),
    "podSecurityContext.seccompProfile.type": ("Unconfined", "type: Unconfined", {}),
    "securityContext.allowPrivilegeEscalation": (True, "allowPrivilegeEscalation: true", {}),
    "securityContext.readOnlyRootFilesystem": (False, "readOnlyRootFilesystem: false", {}),
    "securityContext.runAsNonRoot": (False, "runAsNonRoot: false", {}),
    "securityContext.capabilities.drop": (["NET_RAW"], "- NET_RAW", {}),
    "resources.requests.cpu": ("44m", "cpu: 44m", {}),
    "resources.requests.memory": ("44Mi", "memory: 44Mi", {}),
    "resources.limits.memory": ("444Mi", "memory: 444Mi", {}),
    "strategy": ({"type": "Recreate"}, "type: Recreate", {}),
    "podAnnotations": ({"note": "hello"}, "note: hello", {}),
    "podLabels": ({"tier": "batch"}, "tier: batch", {}),
    "nodeSelector": ({"pool": "batch"}, "pool: batch", {}),
    "tolerations": ([{"key": "dedicated", "operator": "Exists"}], "key: dedicated", {}),
    "affinity": ({"nodeAffinity": {}}, "nodeAffinity", {}),
    "priorityClassName": ("low-priority", "priorityClassName: low-priority", {}),
}


def _nest(path: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return dict(out)


def test_every_key_has_a_sample() -> None:
    leaves = value_leaves(values_yaml())
    assert len(leaves) > 50
    assert sorted(set(leaves) - set(SAMPLES)) == [], "values without a sample"
    assert sorted(set(SAMPLES) - set(leaves)) == [], "samples for values that do not exist"


@pytest.mark.parametrize("path", sorted(SAMPLES))
def test_value_reaches_the_manifests(chart: Chart, path: str) -> None:
    value, needle, prerequisites = SAMPLES[path]
    base = chart.render(prerequisites)
    changed = chart.render(deep_merge(prerequisites, _nest(path, value)))
    assert base.text.count(needle) != changed.text.count(needle), (
        f"{path}={value!r}: {needle!r} appears {base.text.count(needle)} times either way"
    )
