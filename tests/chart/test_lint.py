"""helm lint, ct lint, and the ci/*-values.yaml scenarios that ct lints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, CT, ROOT, Chart, values_yaml

pytestmark = pytest.mark.chart


def helm_lint(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), "lint", "--strict", str(CHART), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_helm_lint_default(helm: Path) -> None:
    proc = helm_lint(helm)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_helm_lint_each_ci_values_file(helm: Path, ci_values_files: list[Path]) -> None:
    for path in ci_values_files:
        proc = helm_lint(helm, "--values", str(path))
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"


def test_helm_lint_refuses_a_misspelt_key(helm: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("agent:\n  batchsize: 5\n")
    proc = helm_lint(helm, "--values", str(bad))
    assert proc.returncode != 0
    assert "batchsize" in proc.stdout + proc.stderr


def test_ct_lint(helm: Path) -> None:
    if not os.access(CT, os.X_OK):
        pytest.skip("./bin/ct missing: run `make tools`")
    if not (ROOT / "bin" / "ct-config" / "chart_schema.yaml").is_file():
        pytest.skip("./bin/ct-config missing: run `make tools`")
    venv_bin = ROOT / ".venv" / "bin"
    for tool in ("yamllint", "yamale"):
        assert (venv_bin / tool).exists(), f"{tool} missing from .venv (pip install -e '.[dev]')"
    env = dict(
        os.environ, PATH=f"{helm.parent}{os.pathsep}{venv_bin}{os.pathsep}{os.environ['PATH']}"
    )
    proc = subprocess.run(
        [str(CT), "lint", "--config", "ct.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "All charts linted successfully" in out
    # ct lints the chart once per ci/*-values.yaml scenario.
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        assert path.name in out


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{path}."))
        else:
            out[path] = value
    return out


def test_ci_scenarios_cover_every_switch(ci_values_files: list[Path]) -> None:
    """Every boolean switch is flipped, and every optional feature is on, in some scenario."""
    defaults = _leaves(values_yaml())
    scenarios = [_leaves(yaml.safe_load(p.read_text()) or {}) for p in ci_values_files]
    # The security contexts' booleans are settings, not switches: every scenario
    # stays restricted (test_deployment.test_restricted_pod_security_everywhere).
    settings = ("podSecurityContext.", "securityContext.")
    switches = [
        k for k, v in defaults.items() if isinstance(v, bool) and not k.startswith(settings)
    ]
    assert "metrics.serviceMonitor.enabled" in switches  # the walk found the switches
    for key in switches:
        assert any(key in s and s[key] is not defaults[key] for s in scenarios), (
            f"no ci/*-values.yaml flips {key} (default {defaults[key]})"
        )
    features = {
        "control.state": lambda v: v == "pause",
        "maintenanceWindows": lambda v: bool(v),
        "source.existingSecret": lambda v: bool(v),
        "persistence.existingClaim": lambda v: bool(v),
        "replicaCount": lambda v: v > 1,
        "strategy.type": lambda v: bool(v),
        "serviceAccount.name": lambda v: bool(v),
        "control.jobs.serviceAccount.name": lambda v: bool(v),
        "podSecurityContext.runAsUser": lambda v: v is None,  # OpenShift assigns it
    }
    for key, used in features.items():
        assert any(key in s and used(s[key]) for s in scenarios), f"no scenario uses {key}"


def test_ci_scenarios_render(chart: Chart, ci_values_files: list[Path]) -> None:
    for path in ci_values_files:
        rendered = chart.render(yaml.safe_load(path.read_text()))
        assert rendered.of_kind("Deployment"), path.name
