"""The control ConfigMap through the API: read, patch, list and watch.

Only `data.state` and its companions `reason`, `requested-by` and
`requested-at` matter here. Every call asks for raw JSON
(`_preload_content=False`) and reads plain dicts: no model classes to build,
nothing that breaks when the API adds a field.

Reads use list and watch with the field selector `metadata.name=<name>`:
that is what an RBAC rule with `resourceNames: [<name>]` allows for list
and watch, so the agent needs no right on any other ConfigMap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulling_agent.kube.client import KubeClient
from pulling_agent.kube.errors import NOT_FOUND, KubeError
from pulling_agent.text import one_line
from pulling_agent.vocabulary import REASON_KEY, REQUESTED_AT_KEY, REQUESTED_BY_KEY, STATE_KEY


@dataclass(frozen=True)
class ControlData:
    """The control keys of the ConfigMap (`state` is None when the key is absent)."""

    state: str | None
    reason: str = ""
    requested_by: str = ""
    requested_at: str = ""
    resource_version: str = ""

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> ControlData:
        data = obj.get("data") or {}
        meta = obj.get("metadata") or {}

        def text(key: str) -> str:
            return one_line(str(data.get(key, "")))

        state = data.get(STATE_KEY)
        return cls(
            state=None if state is None else str(state),
            reason=text(REASON_KEY),
            requested_by=text(REQUESTED_BY_KEY),
            requested_at=text(REQUESTED_AT_KEY),
            resource_version=str(meta.get("resourceVersion", "")),
        )

    @property
    def request(self) -> tuple[str | None, str, str, str]:
        """What identifies one request: the same tuple twice is the same request."""
        return (
            None if self.state is None else self.state.strip().lower(),
            self.reason,
            self.requested_by,
            self.requested_at,
        )

    def as_dict(self) -> dict[str, str | None]:
        return {
            "state": self.state.strip() if self.state is not None else None,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
        }


def json_body(response: Any) -> dict[str, Any]:
    """The JSON object of a raw (`_preload_content=False`) response; its connection released."""
    try:
        data = json.loads(response.data)
    finally:
        response.release_conn()
    return data if isinstance(data, dict) else {}


def _not_found(name: str, namespace: str) -> KubeError:
    return KubeError(
        NOT_FOUND,
        f"ConfigMap {name} not found in namespace {namespace}; install the chart, or create "
        f"it: kubectl create configmap {name} -n {namespace} --from-literal=state=running",
        status=404,
    )


def read_configmap(client: KubeClient, name: str, namespace: str, *, timeout: float) -> ControlData:
    """The ConfigMap's control keys (GET: needs `get`)."""
    try:
        response = client.api.read_namespaced_config_map(
            name, namespace, _preload_content=False, _request_timeout=timeout
        )
        return ControlData.from_object(json_body(response))
    except Exception as exc:
        error = client.error(exc)
        raise (_not_found(name, namespace) if error.kind == NOT_FOUND else error) from None


def list_configmap(
    client: KubeClient, name: str, namespace: str, *, timeout: float
) -> tuple[ControlData | None, str]:
    """(its control keys or None when it does not exist, the list's resourceVersion).

    LIST with the name's field selector: needs only `list` on that name.
    """
    try:
        response = client.api.list_namespaced_config_map(
            namespace,
            field_selector=f"metadata.name={name}",
            _preload_content=False,
            _request_timeout=timeout,
        )
        listing = json_body(response)
    except Exception as exc:
        raise client.error(exc) from None
    items = listing.get("items") or []
    version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
    return (ControlData.from_object(items[0]) if items else None), version


def merge_data(
    client: KubeClient,
    name: str,
    namespace: str,
    data: Mapping[str, str | None],
    *,
    timeout: float,
) -> Any:
    """PATCH `data` into the ConfigMap's data as a JSON merge patch (other keys
    stay; a key set to None is removed). Returns the raw response; raises
    what the client raises."""
    return client.api.patch_namespaced_config_map(
        name,
        namespace,
        {"data": data},
        _content_type="application/merge-patch+json",
        _preload_content=False,
        _request_timeout=timeout,
    )


def patch_configmap(
    client: KubeClient, name: str, namespace: str, data: dict[str, str], *, timeout: float
) -> ControlData:
    """Merge `data` into the ConfigMap's data (a JSON merge patch: other keys stay)."""
    try:
        response = merge_data(client, name, namespace, data, timeout=timeout)
        return ControlData.from_object(json_body(response))
    except Exception as exc:
        error = client.error(exc)
        raise (_not_found(name, namespace) if error.kind == NOT_FOUND else error) from None


def create_configmap(
    client: KubeClient,
    name: str,
    namespace: str,
    data: dict[str, str],
    *,
    timeout: float,
) -> ControlData:
    """Create a ConfigMap with `data`, as the guide's `kubectl apply` would for a missing one.

    Needs `create` on ConfigMaps, which RBAC cannot scope by name: the chart's
    accounts do not have it (the chart creates its ConfigMaps), so there this
    fails with the API's own "forbidden" message.
    """
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    try:
        response = client.api.create_namespaced_config_map(
            namespace, body, _preload_content=False, _request_timeout=timeout
        )
        return ControlData.from_object(json_body(response))
    except Exception as exc:
        raise client.error(exc) from None


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    resource_version: str
    data: ControlData | None  # None for BOOKMARK


class ConfigMapWatcher:
    """Watch one ConfigMap from a resourceVersion; `stop()` from another thread."""

    def __init__(self, client: KubeClient, name: str, namespace: str) -> None:
        from kubernetes import watch

        self._client = client
        self._name = name
        self._namespace = namespace
        self._watch: Any = watch.Watch()  # type: ignore[no-untyped-call]

    def events(
        self, resource_version: str, *, timeout_seconds: int, connect_timeout: float
    ) -> Iterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch
        (`timeout_seconds`) or `stop()`. Raises `KubeError` (kind GONE when the
        version is too old: list again)."""
        api = self._client.api
        stream = self._watch.stream(
            # A lambda, with no return type for Watch to find: it then hands
            # over the raw dicts instead of building model objects.
            lambda **kwargs: api.list_namespaced_config_map(**kwargs),
            namespace=self._namespace,
            field_selector=f"metadata.name={self._name}",
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _request_timeout=(connect_timeout, timeout_seconds + 30),
        )
        try:
            for event in stream:
                raw = event.get("raw_object") or {}
                kind = str(event.get("type", ""))
                version = str((raw.get("metadata") or {}).get("resourceVersion", ""))
                data = None if kind == "BOOKMARK" else ControlData.from_object(raw)
                yield WatchEvent(kind, version, data)
        except Exception as exc:
            raise self._client.error(exc) from None
        finally:
            stream.close()

    def stop(self) -> None:
        self._watch.stop()
