"""pulling_agent.kube without an API server: configuration sources, and the
messages of failures (real client exceptions, a real refused connection)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from pulling_agent.kube import ControlData, KubeError, connect, list_configmap
from pulling_agent.kube.errors import (
    CONFIG,
    FORBIDDEN,
    GONE,
    NOT_FOUND,
    UNAUTHORIZED,
    UNREACHABLE,
    translate,
)
from tests.unit.test_configmap_channel import write_kubeconfig

HOST = "https://10.0.0.1:6443"


def api_error(status: int, message: str) -> ApiException:
    body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return ApiException(status=status, reason="x", body=body)


def test_forbidden_keeps_the_apis_words_naming_verb_and_resource() -> None:
    message = (
        'configmaps "agent-control" is forbidden: User "system:serviceaccount:ns:ctl" '
        'cannot patch resource "configmaps" in API group "" in the namespace "ns"'
    )
    error = translate(api_error(403, message), HOST)
    assert error.kind == FORBIDDEN
    assert str(error) == message


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        (404, NOT_FOUND, 'configmaps "agent-control" not found'),
        (401, UNAUTHORIZED, "rejected the credentials (401 Unauthorized)"),
        (410, GONE, "too old resource version"),
        (500, "api", "Kubernetes API error 500"),
    ],
)
def test_api_statuses(status: int, kind: str, text: str) -> None:
    message = (
        'configmaps "agent-control" not found' if status == 404 else "too old resource version"
    )
    error = translate(api_error(status, message), HOST)
    assert error.kind == kind
    assert text in str(error)
    assert error.status == status


def test_a_refused_connection_names_the_host(tmp_path: Path, unused_tcp_port: int) -> None:
    server = f"https://127.0.0.1:{unused_tcp_port}"
    client = connect(str(write_kubeconfig(tmp_path, server)))
    with pytest.raises(KubeError) as caught:
        list_configmap(client, "agent-control", "ns", timeout=5)
    assert caught.value.kind == UNREACHABLE
    assert str(caught.value) == f"cannot reach the Kubernetes API at {server}: Connection refused"


def test_the_namespace_comes_from_the_kubeconfig_context(tmp_path: Path) -> None:
    path = str(write_kubeconfig(tmp_path, "https://127.0.0.1:6443", namespace="team-a"))
    client = connect(path)
    assert (client.namespace, client.host, client.config) == (
        "team-a",
        "https://127.0.0.1:6443",
        path,
    )
    assert connect(path, context="other").namespace == "default"


def test_kubeconfig_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(write_kubeconfig(tmp_path, "https://127.0.0.1:6443", namespace="from-env"))
    monkeypatch.setenv("KUBECONFIG", path)
    assert connect().namespace == "from-env"


def test_missing_or_broken_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(KubeError) as caught:
        connect(str(tmp_path / "absent"))
    assert caught.value.kind == CONFIG
    assert "does not exist" in str(caught.value)
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n")
    with pytest.raises(KubeError) as caught:
        connect(str(broken))
    assert caught.value.kind == CONFIG
    assert str(caught.value).startswith(f"cannot load the Kubernetes configuration {broken}")


def test_control_data_from_an_object() -> None:
    data = ControlData.from_object(
        {
            "metadata": {"name": "agent-control", "resourceVersion": "42"},
            "data": {"state": " Pause\n", "reason": "db\nmaintenance", "requested-by": "ops"},
        }
    )
    assert data.state == " Pause\n"
    assert data.request == ("pause", "db maintenance", "ops", "")
    assert data.resource_version == "42"
    assert data.as_dict() == {
        "state": "Pause",
        "reason": "db maintenance",
        "requested_by": "ops",
        "requested_at": "",
    }
    assert ControlData.from_object({"metadata": {}}).state is None


def test_a_refused_exec_upgrade_is_read_like_any_api_refusal() -> None:
    """The websocket client (exec) wraps the API's answer in a status-0 exception."""
    body = json.dumps(
        {
            "kind": "Status",
            "message": 'pods "p" is forbidden: User "u" cannot create resource "pods/exec"',
            "code": 403,
        }
    )
    reason = f"Handshake status 403 Forbidden -+-+- {{'audit-id': 'x'}} -+-+- {body}\n"
    error = translate(ApiException(status=0, reason=reason), HOST)
    assert (error.kind, error.status) == (FORBIDDEN, 403)
    assert str(error) == 'pods "p" is forbidden: User "u" cannot create resource "pods/exec"'
