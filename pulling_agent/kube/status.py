"""The status ConfigMap through the API: each replica's report, one key per pod.

The agents write only their own key with a JSON merge patch (`{"data": {pod:
report}}`): replicas never read-modify-write, so they never overwrite each
other's report, and the agent needs nothing but `patch` on this one name.
The control side reads the whole object (`get`) and removes the keys of pods
that no longer exist with the same kind of patch (a key set to null).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pulling_agent.kube.client import KubeClient
from pulling_agent.kube.configmap import json_body, merge_data
from pulling_agent.kube.errors import NOT_FOUND, KubeError


@dataclass(frozen=True)
class StatusData:
    """The status ConfigMap: {pod: report text}, and its annotations."""

    reports: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    exists: bool = True


def _missing(name: str, namespace: str) -> KubeError:
    return KubeError(
        NOT_FOUND,
        f"status ConfigMap {name} not found in namespace {namespace} (the chart creates it "
        f"with control.reports on; elsewhere: kubectl create configmap {name} -n {namespace})",
        status=404,
    )


def patch_status(
    client: KubeClient,
    name: str,
    namespace: str,
    entries: dict[str, str | None],
    *,
    timeout: float,
) -> None:
    """Set (or, with None, remove) these keys of the status ConfigMap: a JSON merge patch."""
    try:
        merge_data(client, name, namespace, entries, timeout=timeout).release_conn()
    except Exception as exc:
        error = client.error(exc)
        raise (_missing(name, namespace) if error.kind == NOT_FOUND else error) from None


def read_status(client: KubeClient, name: str, namespace: str, *, timeout: float) -> StatusData:
    """Every report in the status ConfigMap (GET: needs `get`); exists=False when it is absent."""
    try:
        response = client.api.read_namespaced_config_map(
            name, namespace, _preload_content=False, _request_timeout=timeout
        )
        obj = json_body(response)
    except Exception as exc:
        error = client.error(exc)
        if error.kind == NOT_FOUND:
            return StatusData(exists=False)
        raise error from None
    data = obj.get("data") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return StatusData(
        reports={str(k): str(v) for k, v in data.items()},
        annotations={str(k): str(v) for k, v in annotations.items()},
    )
