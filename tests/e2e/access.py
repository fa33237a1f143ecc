"""Acting as a ServiceAccount: a real token from the TokenRequest API in its own kubeconfig."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from testkit.clusters.base import (
    Cluster,
    current_cluster_entry,
    kubeconfig_dict,
    write_kubeconfig,
)


@dataclass(frozen=True)
class ServiceAccountAccess:
    """Credentials of one ServiceAccount: use them through the client, kubectl or a subprocess."""

    cluster: Cluster
    namespace: str
    name: str
    token: str
    kubeconfig: Path

    @property
    def username(self) -> str:
        """The user the API server sees: system:serviceaccount:<namespace>:<name>."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def api_client(self) -> client.ApiClient:
        """A new official-client ApiClient authenticated with the token (close it, or `with`)."""
        return self.cluster.api_client(self.kubeconfig)

    def kubectl(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """`Cluster.kubectl` as this ServiceAccount (same keyword arguments)."""
        return self.cluster.kubectl(*args, kubeconfig=self.kubeconfig, **kwargs)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """Environment for a subprocess acting as this ServiceAccount (KUBECONFIG, PATH)."""
        return self.cluster.env(self.kubeconfig)


def mint_service_account_access(
    cluster: Cluster,
    api: client.ApiClient,
    directory: Path,
    namespace: str,
    name: str,
    *,
    create: bool = True,
    expiration_seconds: int = 3600,
    audiences: Sequence[str] = (),
) -> ServiceAccountAccess:
    """Create the ServiceAccount if asked and missing, request a token, write a kubeconfig.

    The kubeconfig goes into `directory`; the token lives `expiration_seconds` (the API
    server may lengthen short ones) for `audiences` (default: the API server's own).
    """
    core = client.CoreV1Api(api)
    if create:
        try:
            core.read_namespaced_service_account(name, namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
            )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=list(audiences), expiration_seconds=expiration_seconds
        )
    )
    issued = core.create_namespaced_service_account_token(name, namespace, request)
    token = issued.status.token
    server, ca = current_cluster_entry(cluster.kubeconfig)
    path = write_kubeconfig(
        directory / f"sa-{namespace}-{name}.kubeconfig",
        kubeconfig_dict(
            server=server, ca_pem=ca, user={"token": token}, name=f"{namespace}-{name}"
        ),
    )
    return ServiceAccountAccess(cluster, namespace, name, token, path)
