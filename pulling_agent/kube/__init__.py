"""The Kubernetes API, as the agent and `pulling-agent ctl` use it.

A thin, typed layer over the official (untyped) `kubernetes` client:
`connect` (in a pod or through a kubeconfig), the control ConfigMap
(read, patch, list, watch), the agent's pods (status, signal), and one
`KubeError` with an operator-readable message for every failure.

Importing this package is cheap: the client itself (about half a second to
import) is loaded by the functions that talk to the API, so `pulling-agent
--help` and the commands that never reach a cluster do not pay for it.
"""

from pulling_agent.kube.client import KubeClient, connect, in_cluster
from pulling_agent.kube.configmap import (
    ConfigMapWatcher,
    ControlData,
    WatchEvent,
    create_configmap,
    list_configmap,
    patch_configmap,
    read_configmap,
)
from pulling_agent.kube.errors import KubeError
from pulling_agent.kube.pods import PodInfo, list_pods, signal_pod
from pulling_agent.kube.status import StatusData, patch_status, read_status

__all__ = [
    "ConfigMapWatcher",
    "ControlData",
    "KubeClient",
    "KubeError",
    "PodInfo",
    "StatusData",
    "WatchEvent",
    "connect",
    "create_configmap",
    "in_cluster",
    "list_configmap",
    "list_pods",
    "patch_configmap",
    "patch_status",
    "read_configmap",
    "read_status",
    "signal_pod",
]
