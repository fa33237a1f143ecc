"""A real Prometheus server (./bin/prometheus from `make tools`) for tests and benchmarks.

`PrometheusServer` writes a configuration (short scrape and evaluation
intervals so that tests are quick, the rule files given), starts the server on
a free port of 127.0.0.1 with its storage under a directory of the test's, and
answers through Prometheus's HTTP API: `query()`, `alerts()`, `targets()`.
Every wait is bounded and fails with the server's recent log.

`scrape_config_for_service_monitor()` turns the chart's rendered
ServiceMonitor into the scrape job the Prometheus Operator generates for it
(kubernetes_sd on EndpointSlices, kept by the Service's labels and the port
name; `namespace`, `service`, `pod`, `container`, `endpoint` and `job` labels
as the Operator sets them), so a test scrapes the chart's pods the way a
cluster's Prometheus would select them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "bin" / "prometheus"


def why_missing() -> str | None:
    if not os.access(PROMETHEUS, os.X_OK):
        return "./bin/prometheus missing: run `make tools`"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _label_name(key: str) -> str:
    """A Kubernetes label key as a Prometheus meta label suffix."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def scrape_config_for_service_monitor(
    service_monitor: dict[str, Any],
    *,
    kubeconfig: Path,
    scrape_interval: str | None = None,
) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for one ServiceMonitor endpoint."""
    meta = service_monitor["metadata"]
    spec = service_monitor["spec"]
    (endpoint,) = spec["endpoints"]
    namespace = meta["namespace"]
    relabel: list[dict[str, Any]] = []
    for key, value in sorted(spec["selector"]["matchLabels"].items()):
        name = _label_name(key)
        relabel.append(
            {
                "source_labels": [
                    f"__meta_kubernetes_service_label_{name}",
                    f"__meta_kubernetes_service_labelpresent_{name}",
                ],
                "regex": f"({re.escape(value)});true",
                "action": "keep",
            }
        )
    relabel += [
        {
            "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
            "regex": endpoint["port"],
            "action": "keep",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    return {
        "job_name": f"serviceMonitor/{namespace}/{meta['name']}/0",
        "honor_labels": False,
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": scrape_interval or endpoint.get("interval", "30s"),
        "kubernetes_sd_configs": [
            {
                "role": "endpointslice",
                "kubeconfig_file": str(kubeconfig),
                "namespaces": {"names": [namespace]},
            }
        ],
        "relabel_configs": relabel,
    }


class PrometheusError(AssertionError):
    pass


class PrometheusServer:
    """One Prometheus process; `stop()` ends it (also on a failed start)."""

    def __init__(
        self,
        workdir: Path,
        scrape_configs: list[dict[str, Any]],
        rule_files: Sequence[Path] = (),
        *,
        interval: str = "1s",
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
                # scrape_body_size_bytes: what one scrape costs.
                "extra_scrape_metrics": True,
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self, timeout: float = 60) -> PrometheusServer:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=info",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        try:
            self.wait_for(self._ready, "Prometheus to be ready", timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise PrometheusError(
                f"prometheus exited {self.proc.returncode} at start:\n{self.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- API
    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
            raise PrometheusError(f"{path} {params}: {body.get('error')}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (a scalar becomes one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[Any]:
        """A range query's matrix, as a Grafana panel over [start, end] asks for it."""
        data = self.api("query_range", query=expr, start=str(start), end=str(end), step=step)
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single sample of `expr`, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, f"{expr} returned {len(result)} series: {result}"
        return float(result[0]["value"][1])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def alert_states(self, name: str) -> dict[str, str]:
        """pod (or "" for a release-wide alert) -> pending/firing, for one alert."""
        return {
            a["labels"].get("pod", ""): a["state"]
            for a in self.alerts()
            if a["labels"].get("alertname") == name
        }

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    # --------------------------------------------------------------- waits
    def wait_for(self, predicate: Callable[[], object], what: str, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
