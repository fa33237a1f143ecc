"""The agent's pods: their phase and readiness, and signalling them through exec."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pulling_agent.kube.client import KubeClient
from pulling_agent.kube.errors import API, DETAIL_CHARS, KubeError
from pulling_agent.text import one_line


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str
    ready: bool
    node: str
    restarts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pod_info(obj: dict[str, Any]) -> PodInfo:
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    phase = str(status.get("phase", "Unknown"))
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return PodInfo(
        name=str((obj.get("metadata") or {}).get("name", "")),
        phase=phase,
        ready=ready,
        node=str((obj.get("spec") or {}).get("nodeName") or ""),
        restarts=restarts,
    )


def list_pods(
    client: KubeClient, namespace: str, selector: str, *, timeout: float
) -> list[PodInfo]:
    """The pods matching the label `selector`, by name."""
    try:
        response = client.api.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=timeout
        )
        try:
            listing = json.loads(response.data)
        finally:
            response.release_conn()
    except Exception as exc:
        raise client.error(exc) from None
    pods = [_pod_info(item) for item in listing.get("items") or []]
    return sorted(pods, key=lambda pod: pod.name)


def signal_pod(
    client: KubeClient, namespace: str, pod: str, signal: str, *, timeout: float
) -> None:
    """Run `kill -<signal> 1` in the pod (the agent is PID 1), as the guide's
    `kubectl exec POD -- kill -USR1 1` does. Raises `KubeError` on failure."""
    from kubernetes.stream import stream

    try:
        response = stream(
            client.api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=["kill", f"-{signal}", "1"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
            _request_timeout=timeout,
        )
        response.run_forever(timeout=timeout)
        code = response.returncode
        errors = response.read_stderr() or ""
        response.close()
    except Exception as exc:  # refusals arrive as ApiException, see errors.translate
        raise client.error(exc) from None
    if code != 0:
        detail = one_line(errors, DETAIL_CHARS)
        raise KubeError(API, f"kill -{signal} 1 in pod {pod} exited {code}: {detail}")
