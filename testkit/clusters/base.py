"""What every cluster provider gives the tests: an admin kubeconfig and ways to use it."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = REPO_ROOT / "bin"

T = TypeVar("T")


class ProviderError(RuntimeError):
    """A cluster provider could not start, or a command against it failed."""


def find_tool(name: str) -> str | None:
    """./bin/NAME (from `make tools`) first, then NAME on PATH."""
    local = BIN_DIR / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 120.0,
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    """Poll `predicate` until it returns a truthy value and return that value.

    Exceptions from the predicate count as "not yet" (the last one is reported).  Timeouts
    are generous on purpose: the machine is shared and noisy, and a wait is never an
    assertion about speed.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # the cluster may be briefly unavailable
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def kubeconfig_dict(
    *, server: str, ca_pem: bytes | None, user: Mapping[str, Any], name: str = "e2e"
) -> dict[str, Any]:
    """A one-context kubeconfig with embedded data (portable: no file paths inside)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": dict(user)}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    path.chmod(0o600)
    return path


def current_cluster_entry(kubeconfig: Path) -> tuple[str, bytes | None]:
    """The server URL and CA (PEM, or None) of the current context of a kubeconfig file."""
    doc = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c["name"]: c.get("context", {}) for c in doc.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster", {}) for c in doc.get("clusters") or []}
    context = contexts.get(doc.get("current-context", ""), {})
    entry = clusters.get(context.get("cluster", ""))
    if entry is None:
        raise ProviderError(f"{kubeconfig}: its current context names no cluster")
    ca: bytes | None = None
    if entry.get("certificate-authority-data"):
        ca = base64.b64decode(entry["certificate-authority-data"])
    elif entry.get("certificate-authority"):
        ca_path = Path(entry["certificate-authority"])
        if not ca_path.is_absolute():
            ca_path = kubeconfig.parent / ca_path
        ca = ca_path.read_bytes()
    return entry["server"], ca


class Cluster:
    """A Kubernetes API reachable through an admin kubeconfig.

    Subclasses start and stop the cluster; tests only use the attributes and methods here.
    """

    #: "controlplane", "kind" or "existing"
    provider: str = ""
    #: whether pods actually run (a kubelet exists); False on controlplane
    runs_pods: bool = False
    #: the agent image the cluster can run (loaded into kind), or None
    agent_image: str | None = None

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    # -- life cycle (providers override) ---------------------------------------------------
    def start(self) -> None:
        """Bring the cluster up (or connect to it); return when the API answers."""

    def stop(self) -> None:
        """Tear down whatever `start` created.  Must be safe to call twice and after failure."""

    # -- use -------------------------------------------------------------------------------
    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        """A new official-client ApiClient for the admin (or the given) kubeconfig."""
        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """The environment for a subprocess (helm, kubectl, the agent) using this cluster.

        KUBECONFIG points at the admin (or given) kubeconfig and ./bin comes first on PATH.
        """
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (./bin first) as the admin or as the given kubeconfig's user.

        With `check`, a non-zero exit raises ProviderError carrying the command and stderr.
        """
        exe = find_tool("kubectl")
        if exe is None:
            raise ProviderError("kubectl not found: run 'make tools' (it builds ./bin/kubectl)")
        return run_command(
            [exe, *args], env=self.env(kubeconfig), input=input, check=check, timeout=timeout
        )

    def describe(self) -> str:
        return f"{self.provider} cluster ({self.kubeconfig})"


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on failure raise with everything needed to debug."""
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"{' '.join(argv)}: no answer after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        raise ProviderError(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc
