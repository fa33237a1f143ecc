"""Chart tier: the real helm (and ct) from `make tools`, on charts/pulling-agent.

Fixtures:
- `chart`: renders the chart with `./bin/helm template` (values given as a dict,
  fed on stdin) and returns the parsed objects; `chart.fail(values)` returns the
  error helm printed for values that must be refused.
- `default_render`: the default install (release `pulling-agent`, namespace
  `default`), rendered once.
- `values_docs`: what helm-docs reads from values.yaml's `# --` comments (the
  chart README's rows): key -> description.

Everything is skipped with a one-line reason when ./bin/helm is missing
(`make tools` builds it; CI always does).  Under `helm template` Helm's
`lookup` returns nothing, so these tests see the "no live ConfigMap" branch;
the live branch is proven on the control plane (tests/e2e/test_chart_*.py).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pulling-agent"
HELM = ROOT / "bin" / "helm"
CT = ROOT / "bin" / "ct"
HELM_DOCS = ROOT / "bin" / "helm-docs"
# The Kubernetes version the chart is rendered for (CronJob timeZone needs 1.27+).
KUBE_VERSION = "1.37.0"


def values_yaml() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def value_leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths of the leaves of a values tree (an empty dict or list is a leaf)."""
    out: list[str] = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.extend(value_leaves(value, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key}")
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Rendered:
    """The objects of one `helm template`, and its raw text."""

    text: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert found, f"no {kind}/{name} in {self.names()}"
        assert len(found) == 1, f"{kind}/{name} rendered {len(found)} times"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["metadata"]["name"] == name for o in self.of_kind(kind))

    def names(self) -> list[str]:
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in self.objects)

    @property
    def deployment(self) -> dict[str, Any]:
        (dep,) = self.of_kind("Deployment")
        return dep

    @property
    def agent_container(self) -> dict[str, Any]:
        (container,) = self.deployment["spec"]["template"]["spec"]["containers"]
        return container

    def agent_env(self) -> dict[str, Any]:
        """The agent's env: name -> value, or the valueFrom dict."""
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.agent_container["env"]}

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every pod spec: the Deployment's and each CronJob's job template."""
        for obj in self.objects:
            if obj["kind"] == "Deployment":
                yield f"Deployment/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
            elif obj["kind"] == "CronJob":
                spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                yield f"CronJob/{obj['metadata']['name']}", spec


class HelmError(AssertionError):
    pass


class Chart:
    """`helm template` of charts/pulling-agent with the real helm."""

    def __init__(self, helm: Path) -> None:
        self.helm = helm

    def _run(
        self,
        values: dict[str, Any] | None,
        release: str,
        namespace: str,
        extra: list[str],
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(self.helm),
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            "-",
            *extra,
        ]
        return subprocess.run(
            cmd,
            input=yaml.safe_dump(values or {}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def render(
        self,
        values: dict[str, Any] | None = None,
        *,
        release: str = "pulling-agent",
        namespace: str = "default",
        extra: list[str] | None = None,
    ) -> Rendered:
        proc = self._run(values, release, namespace, extra or [])
        if proc.returncode != 0:
            raise HelmError(f"helm template failed: {proc.stderr.strip()}")
        objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
        return Rendered(text=proc.stdout, objects=objects)

    def fail(self, values: dict[str, Any], *, release: str = "pulling-agent") -> str:
        """Render values that must be refused; return helm's message."""
        proc = self._run(values, release, "default", [])
        assert proc.returncode != 0, f"helm accepted {values!r}"
        return proc.stderr


@pytest.fixture(scope="session")
def helm() -> Path:
    if not os.access(HELM, os.X_OK):
        pytest.skip("./bin/helm missing: run `make tools`")
    return HELM


@pytest.fixture(scope="session")
def chart(helm: Path) -> Chart:
    return Chart(helm)


@pytest.fixture(scope="session")
def default_render(chart: Chart) -> Rendered:
    return chart.render()


@pytest.fixture(scope="session")
def ci_values_files() -> list[Path]:
    files = sorted((CHART / "ci").glob("*-values.yaml"))
    assert files, "no charts/pulling-agent/ci/*-values.yaml"
    return files


@pytest.fixture(scope="session")
def promql_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build tests/chart/promql (Prometheus's own PromQL parser) once."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go missing: cannot build the PromQL checker")
    out = tmp_path_factory.mktemp("promql") / "promql-check"
    proc = subprocess.run(
        [go, "build", "-mod=readonly", "-o", str(out), "."],
        cwd=Path(__file__).parent / "promql",
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"building the PromQL checker failed:\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def values_docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """helm-docs' reading of values.yaml: each documented key and its description.

    The same parse that writes the README's values table, through a template that
    prints helm-docs' rows as JSON.
    """
    if not os.access(HELM_DOCS, os.X_OK):
        pytest.skip("./bin/helm-docs missing: run `make tools`")
    template = tmp_path_factory.mktemp("helm-docs") / "rows.gotmpl"
    template.write_text("{{ toJson .Values }}\n")
    proc = subprocess.run(
        [
            str(HELM_DOCS),
            "--chart-search-root",
            str(CHART),
            "--template-files",
            str(template),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = json.loads(proc.stdout)
    return {row["Key"]: row["Description"] or row["AutoDescription"] for row in rows}


#: The labels a ServiceMonitor's scrape job puts on every series of a pod.
TARGET_LABELS = frozenset(
    {"namespace", "job", "pod", "service", "endpoint", "container", "instance"}
)


def agent_series_labels() -> dict[str, set[str]]:
    """Every series name the agent exports (pulling_agent/metrics.py), as Prometheus
    stores it (counters with `_total`, histograms with `_bucket`, `_sum`, `_count`),
    and its own label names: the Metrics of an agent that has been told about
    everything once."""
    from pulling_agent.commands import Action, ChannelName, Command, CommandResult
    from pulling_agent.metrics import Metrics
    from pulling_agent.snapshot import Counters, Snapshot
    from pulling_agent.state import Desired, State

    metrics = Metrics()
    metrics.publish(Snapshot(State.RUNNING, Desired.RUNNING, Counters(), pid=1))
    metrics.command_handled(Command(Action.PAUSE, ChannelName.SIGNAL), CommandResult.APPLIED)
    metrics.control_error(ChannelName.FILE, "invalid")
    metrics.batch("complete", 0.1, done=1, failed=0, retried=0, released=0)
    metrics.backlog_observed(1)
    out: dict[str, set[str]] = {"up": set()}
    for family in metrics.registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def agent_series_names() -> set[str]:
    return set(agent_series_labels()) - {"up"}


def assert_labels_exist(name: str, expr: str) -> None:
    """Every label `expr` groups, matches or selects by is one its series carry."""
    series = agent_series_labels()
    used_series = set(re.findall(r"\b([a-z_]+)\{", expr)) | set(re.findall(r"\b(up)\b", expr))
    known = set(TARGET_LABELS)
    for s in used_series:
        known |= series.get(s, set())
    grouped = {
        label.strip()
        for group in re.findall(r"\b(?:by|on|without|ignoring) \(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }
    matched = set(re.findall(r"[{,]\s*([a-z_]+)\s*[=!]~?", expr))
    unknown = (grouped | matched) - known
    assert not unknown, f"{name}: labels {sorted(unknown)} are on none of {sorted(used_series)}"


def check_promql(
    promql_check: Path, payload: list[dict[str, str]]
) -> subprocess.CompletedProcess[str]:
    """Run the PromQL checker on [{"name", "expr", "for"}, ...]."""
    return subprocess.run(
        [str(promql_check)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
