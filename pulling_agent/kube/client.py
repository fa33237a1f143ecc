"""Connecting to the Kubernetes API: in a pod, or through a kubeconfig.

Where the configuration comes from, first match wins (kubectl's order):
an explicit kubeconfig path; `$KUBECONFIG`; the pod's ServiceAccount when
running in a cluster; `~/.kube/config`.

The default namespace follows the same configuration: the pod's own namespace
(`/var/run/secrets/kubernetes.io/serviceaccount/namespace`) in a cluster, the
kubeconfig context's namespace otherwise, else `default`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulling_agent.kube.errors import CONFIG, DETAIL_CHARS, KubeError, translate
from pulling_agent.text import one_line

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"


@dataclass
class KubeClient:
    """A configured `CoreV1Api` and what it needs to explain its failures."""

    api: Any  # kubernetes.client.CoreV1Api (the package is untyped)
    host: str
    namespace: str  # the default namespace of the configuration
    config: str  # where the configuration came from: "in-cluster" or the kubeconfig path

    def close(self) -> None:
        self.api.api_client.close()

    def error(self, exc: BaseException) -> KubeError:
        return translate(exc, self.host)


def in_cluster(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").is_file()


def _pod_namespace() -> str:
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _context_namespace(config_file: str, context: str) -> str:
    from kubernetes.config import list_kube_config_contexts

    contexts, active = list_kube_config_contexts(config_file)  # type: ignore[no-untyped-call]
    if context:
        active = next((c for c in contexts if c.get("name") == context), None)
    if not isinstance(active, dict):
        return ""
    return str((active.get("context") or {}).get("namespace") or "")


def choose_config(kubeconfig: str = "") -> str:
    """The kubeconfig path to use, or "in-cluster"."""
    if kubeconfig:
        return kubeconfig
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if in_cluster():
        return "in-cluster"
    return DEFAULT_KUBECONFIG


def connect(kubeconfig: str = "", context: str = "", *, retries: int = 0) -> KubeClient:
    """A client for the API; `KubeError(CONFIG)` when there is no usable configuration.

    `retries` is urllib3's count of quick retries on connection errors; the
    callers do their own backing off, so the default is none.
    """
    from kubernetes import config
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.api.core_v1_api import CoreV1Api
    from kubernetes.utils.keepalive import tcp_keepalive_socket_options

    config_from = choose_config(kubeconfig)
    configuration = Configuration()
    try:
        if config_from == "in-cluster":
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            namespace = _pod_namespace()
        else:
            path = str(Path(config_from).expanduser())
            if os.pathsep not in path and not Path(path).is_file():
                where = "" if kubeconfig else " (not running in a cluster either)"
                raise KubeError(CONFIG, f"kubeconfig {config_from} does not exist{where}")
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path,
                context=context or None,
                client_configuration=configuration,
                persist_config=False,
            )
            namespace = _context_namespace(path, context)
    except KubeError:
        raise
    except OSError as exc:
        raise translate(exc, "") from None
    except Exception as exc:  # ConfigException, YAML errors, a failing exec plugin
        detail = one_line(str(exc), DETAIL_CHARS) or type(exc).__name__
        message = f"cannot load the Kubernetes configuration {config_from}: {detail}"
        raise KubeError(CONFIG, message) from None
    configuration.retries = retries
    # TCP keepalive: a watch on a connection that died silently (a partition,
    # no RST) ends within about 40 s (20 s idle, then 4 probes 5 s apart), not
    # at the end of the watch's own time-out minutes later.
    configuration.socket_options = tcp_keepalive_socket_options(idle=20, interval=5, count=4)
    api = CoreV1Api(ApiClient(configuration))
    return KubeClient(api, configuration.host, namespace or "default", config_from)
