"""The agent's Deployment: settings, control mount, probes, Pod Security."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Chart, Rendered

pytestmark = pytest.mark.chart


def test_agent_settings_reach_the_environment(default_render: Rendered) -> None:
    env = default_render.agent_env()
    assert {k: v for k, v in env.items() if isinstance(v, str)} == {
        "PULLING_AGENT_SOURCE": "sqlite:////data/agent.db",
        "PULLING_AGENT_PROCESSOR": "digest",
        "PULLING_AGENT_BATCH_SIZE": "25",
        "PULLING_AGENT_LEASE_SECONDS": "300",
        "PULLING_AGENT_POLL_INTERVAL": "2",
        "PULLING_AGENT_HEARTBEAT_INTERVAL": "5",
        "PULLING_AGENT_STOP_GRACE_SECONDS": "25",
        "PULLING_AGENT_MAX_ATTEMPTS": "3",
        "PULLING_AGENT_LOG_FORMAT": "json",
        "PULLING_AGENT_LOG_LEVEL": "info",
        "PULLING_AGENT_METRICS_PORT": "9102",
        "PULLING_AGENT_CONTROL_DIR": "/tmp/control",
        "PULLING_AGENT_HEALTH_DIR": "/tmp/health",
        "PULLING_AGENT_CONFIGMAP": "agent-control",
        "PULLING_AGENT_STATUS_CONFIGMAP": "agent-control-status",
        "PULLING_AGENT_REPORT_INTERVAL": "60",
    }
    # Who reports: the pod and its node, from the downward API.
    assert env["PULLING_AGENT_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["PULLING_AGENT_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # The ConfigMap watch's namespace comes from the downward API.
    assert env["PULLING_AGENT_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    container = default_render.agent_container
    assert container["command"] == ["pulling-agent", "run"]
    assert "args" not in container
    assert container["image"] == "pulling-agent:0.1.0"


def test_the_env_names_are_the_cli_contract() -> None:
    """Every PULLING_AGENT_* the chart sets is an option of `pulling-agent run`."""
    exe = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pulling-agent"
    if not exe.exists():
        pytest.skip(".venv/bin/pulling-agent missing: pip install -e .")
    help_text = subprocess.run(
        [str(exe), "run", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    template = (
        Path(__file__).resolve().parents[2] / "charts/pulling-agent/templates/deployment.yaml"
    ).read_text()
    names = {w for w in template.split() if w.startswith("PULLING_AGENT_")}
    assert len(names) >= 14
    for name in names:
        assert name in help_text, f"{name} is not an env var of `pulling-agent run`"


def test_source_from_a_secret_never_in_plain_text(chart: Chart) -> None:
    r = chart.render({"source": {"existingSecret": "pulling-agent-db", "existingSecretKey": "dsn"}})
    assert r.agent_env()["PULLING_AGENT_SOURCE"] == {
        "secretKeyRef": {"name": "pulling-agent-db", "key": "dsn"}
    }
    assert not r.of_kind("Secret")
    assert "sqlite:" not in r.text


def test_control_configmap_mounted_as_a_directory(default_render: Rendered) -> None:
    pod = default_render.deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in default_render.agent_container["volumeMounts"]}
    control = mounts["/tmp/control"]
    assert "subPath" not in control and "subPathExpr" not in control
    assert control["readOnly"] is True
    assert volumes[control["name"]]["configMap"] == {"name": "agent-control", "optional": True}
    for path in ("/tmp", "/tmp/health", "/data"):
        assert "emptyDir" in volumes[mounts[path]["name"]], path
    assert all("subPath" not in m for m in mounts.values())


def test_persistence_claim_for_data(chart: Chart) -> None:
    r = chart.render({"persistence": {"existingClaim": "agent-data"}})
    volumes = {v["name"]: v for v in r.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "agent-data"}}


def _pod_template(r: Rendered) -> str:
    return yaml.safe_dump(r.deployment["spec"]["template"], sort_keys=True)


def test_control_state_leaves_the_pod_template_unchanged(chart: Chart) -> None:
    """A pause must never restart pods: no checksum or anything else follows the state."""
    base = chart.render()
    template = base.deployment["spec"]["template"]
    assert not any("checksum" in k for k in template["metadata"].get("annotations", {}))
    for control in (
        {"state": "pause"},
        {"state": "resume"},
        {"state": "running"},
        {"state": "pause", "reason": "db migration", "requestedBy": "ops"},
    ):
        r = chart.render({"control": control})
        assert r.get("ConfigMap", "agent-control")["data"]["state"] == control["state"]
        assert _pod_template(r) == _pod_template(base), control
        assert r.deployment == base.deployment
        assert r.of_kind("CronJob") == base.of_kind("CronJob")


def test_pod_template_changes_with_an_agent_setting(chart: Chart) -> None:
    """The comparison above can fail: a real setting does change the template."""
    assert _pod_template(chart.render({"agent": {"batchSize": 11}})) != _pod_template(
        chart.render()
    )


def test_settings(chart: Chart) -> None:
    r = chart.render(
        {
            "replicaCount": 3,
            "source": {"url": "postgresql://agent@db:5432/queue"},
            "agent": {
                "processor": "mypkg.work:Processor",
                "batchSize": 50,
                "leaseSeconds": 120,
                "pollInterval": 0.5,
                "heartbeatInterval": 2,
                "stopGraceSeconds": 50,
                "maxAttempts": 7,
                "logFormat": "text",
                "logLevel": "debug",
                "seed": 500,
                "processorOptions": {"delay": "0.1"},
                "extraEnv": [{"name": "TZ", "value": "UTC"}],
            },
            "terminationGracePeriodSeconds": 70,
            "metrics": {"port": 9300},
            "control": {"configMapName": "queue-control"},
        }
    )
    env = r.agent_env()
    assert r.deployment["spec"]["replicas"] == 3
    assert env["PULLING_AGENT_SOURCE"] == "postgresql://agent@db:5432/queue"
    assert env["PULLING_AGENT_PROCESSOR"] == "mypkg.work:Processor"
    assert env["PULLING_AGENT_BATCH_SIZE"] == "50"
    assert env["PULLING_AGENT_LEASE_SECONDS"] == "120"
    assert env["PULLING_AGENT_POLL_INTERVAL"] == "0.5"
    assert env["PULLING_AGENT_HEARTBEAT_INTERVAL"] == "2"
    assert env["PULLING_AGENT_STOP_GRACE_SECONDS"] == "50"
    assert env["PULLING_AGENT_MAX_ATTEMPTS"] == "7"
    assert env["PULLING_AGENT_LOG_FORMAT"] == "text"
    assert env["PULLING_AGENT_LOG_LEVEL"] == "debug"
    assert env["PULLING_AGENT_SEED"] == "500"
    assert env["PULLING_AGENT_METRICS_PORT"] == "9300"
    assert env["PULLING_AGENT_CONFIGMAP"] == "queue-control"
    assert env["TZ"] == "UTC"
    assert r.agent_container["args"] == ["--processor-option=delay=0.1"]
    assert r.agent_container["ports"] == [
        {"name": "metrics", "containerPort": 9300, "protocol": "TCP"}
    ]
    pod = r.deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 70
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["control"]["configMap"]["name"] == "queue-control"


def test_watch_off_drops_the_token_and_the_configmap_env(chart: Chart) -> None:
    on = chart.render()
    assert on.deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    # The reports still need the token...
    watch_off = chart.render({"control": {"watch": False}})
    assert watch_off.deployment["spec"]["template"]["spec"]["automountServiceAccountToken"]
    # ...without them, nothing does.
    off = chart.render({"control": {"watch": False, "reports": False}})
    assert off.deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert "PULLING_AGENT_CONFIGMAP" not in off.agent_env()
    assert "PULLING_AGENT_STATUS_CONFIGMAP" not in off.agent_env()
    # The file channel still works: the ConfigMap stays mounted.
    mounts = [m["mountPath"] for m in off.agent_container["volumeMounts"]]
    assert "/tmp/control" in mounts


def _check_restricted(where: str, pod: dict[str, Any]) -> None:
    """The Pod Security Standard `restricted` (v1.37), field by field."""
    psc = pod.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, where
    assert psc.get("runAsUser", 1) != 0, where
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert pod.get(key) in (None, False) or key == "hostUsers", where
    allowed = {
        "configMap",
        "emptyDir",
        "persistentVolumeClaim",
        "secret",
        "projected",
        "downwardAPI",
    }
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= allowed, f"{where}: volume {volume['name']} is {kinds}"
    for container in pod.get("initContainers", []) + pod["containers"]:
        sc = container.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not sc.get("capabilities", {}).get("add"), where
        assert sc.get("privileged") in (None, False), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("runAsUser", 1) != 0, where
        assert not container.get("ports") or all("hostPort" not in p for p in container["ports"])


def test_restricted_pod_security_everywhere(chart: Chart, ci_values_files: list[Path]) -> None:
    renders = [chart.render()] + [
        chart.render(yaml.safe_load(p.read_text())) for p in ci_values_files
    ]
    seen = 0
    for r in renders:
        for where, pod in r.pod_specs():
            _check_restricted(where, pod)
            seen += 1
    assert seen > len(renders)


def test_openshift_assigns_the_ids(chart: Chart) -> None:
    """`null` drops the fixed IDs (OpenShift's SCC assigns them); the rest stays restricted."""
    ids = {"runAsUser": None, "runAsGroup": None, "fsGroup": None}
    r = chart.render({"podSecurityContext": ids})
    specs = list(r.pod_specs())
    assert len(specs) == 3
    for where, pod in specs:
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, where
        _check_restricted(where, pod)


def test_security_contexts_reach_every_pod(chart: Chart) -> None:
    r = chart.render(
        {
            "podSecurityContext": {"runAsUser": 20001, "supplementalGroups": [5555]},
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        }
    )
    specs = list(r.pod_specs())
    assert len(specs) == 3
    for where, pod in specs:
        psc = pod["securityContext"]
        assert psc["runAsUser"] == 20001 and psc["supplementalGroups"] == [5555], where
        assert psc["runAsGroup"] == 10001, where  # merged with the defaults
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
        _check_restricted(where, pod)


def test_restricted_check_can_fail() -> None:
    with pytest.raises(AssertionError):
        _check_restricted("x", {"containers": [{"name": "c"}], "securityContext": {}})


def test_grace_period_above_stop_grace(default_render: Rendered) -> None:
    pod = default_render.deployment["spec"]["template"]["spec"]
    env = default_render.agent_env()
    assert pod["terminationGracePeriodSeconds"] > float(env["PULLING_AGENT_STOP_GRACE_SECONDS"])


def test_resources_and_scheduling(chart: Chart) -> None:
    r = chart.render(
        {
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"x": 1}},
            "priorityClassName": "low",
            "imagePullSecrets": [{"name": "regcred"}],
            "podAnnotations": {"team": "ops"},
            "strategy": {"type": "Recreate"},
            "image": {"repository": "registry.example/pulling-agent", "tag": "1.2.3"},
        }
    )
    pod = r.deployment["spec"]["template"]["spec"]
    # Helm merges maps with the defaults.
    assert r.agent_container["resources"] == {
        "requests": {"cpu": "100m", "memory": "96Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert pod["nodeSelector"] == {"pool": "batch"}
    assert pod["tolerations"][0]["key"] == "batch"
    assert pod["affinity"] == {"nodeAffinity": {"x": 1}}
    assert pod["priorityClassName"] == "low"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert r.deployment["spec"]["template"]["metadata"]["annotations"] == {"team": "ops"}
    assert r.deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert r.agent_container["image"] == "registry.example/pulling-agent:1.2.3"
    digest = "sha256:" + "a" * 64
    r = chart.render({"image": {"tag": "1.2.3", "digest": digest}})
    assert r.agent_container["image"] == f"pulling-agent@{digest}"
    for _, spec in r.pod_specs():
        assert spec["containers"][0]["image"] == f"pulling-agent@{digest}"


# --- the probes, run for real with sh and coreutils on files in a temp dir ---


def _probe(container: dict[str, Any], kind: str, health: Path) -> int:
    command = [
        part.replace("/tmp/health", str(health)) for part in container[kind]["exec"]["command"]
    ]
    return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode


def _write_liveness(health: Path, state: str, age: float = 0) -> None:
    path = health / "liveness"
    path.write_text(f"{state}\n2026-01-01T00:00:00Z\nbatches=0\n")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def test_readiness_probe_follows_the_readiness_file(
    default_render: Rendered, tmp_path: Path
) -> None:
    container = default_render.agent_container
    _write_liveness(tmp_path, "paused")
    assert _probe(container, "readinessProbe", tmp_path) != 0
    (tmp_path / "readiness").write_text("")
    _write_liveness(tmp_path, "running")
    assert _probe(container, "readinessProbe", tmp_path) == 0


def test_ready_while_paused(chart: Chart, tmp_path: Path) -> None:
    container = chart.render({"health": {"readyWhilePaused": True}}).agent_container
    assert _probe(container, "readinessProbe", tmp_path) != 0  # nothing written yet
    _write_liveness(tmp_path, "starting")
    assert _probe(container, "readinessProbe", tmp_path) != 0
    _write_liveness(tmp_path, "paused")
    assert _probe(container, "readinessProbe", tmp_path) == 0
    _write_liveness(tmp_path, "stopping")
    assert _probe(container, "readinessProbe", tmp_path) != 0
    (tmp_path / "readiness").write_text("")
    assert _probe(container, "readinessProbe", tmp_path) == 0


def test_liveness_probe_wants_a_fresh_file(chart: Chart, tmp_path: Path) -> None:
    container = chart.render({"health": {"livenessMaxAgeSeconds": 90}}).agent_container
    assert _probe(container, "livenessProbe", tmp_path) != 0  # no file
    _write_liveness(tmp_path, "paused")
    assert _probe(container, "livenessProbe", tmp_path) == 0  # fresh, also while paused
    _write_liveness(tmp_path, "running", age=60)
    assert _probe(container, "livenessProbe", tmp_path) == 0
    _write_liveness(tmp_path, "running", age=120)
    assert _probe(container, "livenessProbe", tmp_path) != 0  # a stuck agent


def test_startup_probe_waits_for_the_first_liveness_file(chart: Chart, tmp_path: Path) -> None:
    container = chart.render(
        {"health": {"startupSeconds": 300, "periodSeconds": 7}}
    ).agent_container
    assert _probe(container, "startupProbe", tmp_path) != 0
    _write_liveness(tmp_path, "starting")
    assert _probe(container, "startupProbe", tmp_path) == 0
    assert (
        container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"]
        == 300
    )
    assert container["readinessProbe"]["periodSeconds"] == 7
    assert container["livenessProbe"]["periodSeconds"] == 7
