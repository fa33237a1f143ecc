"""The chart's alerts, proven with Prometheus's own rule tester (`promtool test rules`).

The rule file promtool reads is the PrometheusRule the chart renders (`helm
template`), never a copy: tests/chart/alerts/alerts.test.yaml holds the input
series and the expected alerts, with their labels and annotations.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, Chart

pytestmark = pytest.mark.chart

PROMTOOL = ROOT / "bin" / "promtool"
ALERTS = Path(__file__).parent / "alerts"
RULES_FILE = "pulling-agent.rules.yaml"
#: The operator guide's alert, verbatim ("3. Set Alerts").
GUIDE_EXPR = 'pulling_agent_state == "paused" AND pulling_agent_expected_state == "running"'


@pytest.fixture(scope="session")
def promtool() -> Path:
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("./bin/promtool missing: run `make tools`")
    return PROMTOOL


def rule_file(chart: Chart, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's PrometheusRule as a Prometheus rule file ({groups: [...]})."""
    merged = {"metrics": {"prometheusRule": {"enabled": True}}}
    if values:
        merged["metrics"]["prometheusRule"].update(values)
    rendered = chart.render(merged)
    (rule,) = rendered.of_kind("PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def run_promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def workdir(tmp_path: Path, rules: dict[str, Any]) -> Path:
    for path in ALERTS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / RULES_FILE).write_text(yaml.safe_dump(rules, sort_keys=False))
    return tmp_path


def test_rules_pass_promtool_check(chart: Chart, promtool: Path, tmp_path: Path) -> None:
    """`promtool check rules`: valid PromQL, durations and templates."""
    work = workdir(tmp_path, rule_file(chart))
    proc = run_promtool(promtool, "check", "rules", RULES_FILE, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alerts(chart: Chart, promtool: Path, tmp_path: Path) -> None:
    """Every case of alerts.test.yaml against the chart's rendered rules."""
    work = workdir(tmp_path, rule_file(chart))
    proc = run_promtool(promtool, "test", "rules", "alerts.test.yaml", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_firing_case(chart: Chart) -> None:
    """Each alert the chart renders is expected to fire in some case, and each
    expectation names an alert that exists."""
    rendered = {r["alert"] for g in rule_file(chart)["groups"] for r in g["rules"]}
    spec = yaml.safe_load((ALERTS / "alerts.test.yaml").read_text())
    firing = {
        case["alertname"]
        for test in spec["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    named = {case["alertname"] for test in spec["tests"] for case in test["alert_rule_test"]}
    assert rendered <= firing, f"alerts never shown firing: {sorted(rendered - firing)}"
    assert named <= rendered | {"GuideExampleUnexpectedlyPaused"}, sorted(named - rendered)


def test_the_cases_would_catch_a_missing_for(chart: Chart, promtool: Path, tmp_path: Path) -> None:
    """The same cases fail against rules that fire at once (`for: 0s`): the
    "not before its for" checks are real."""
    rules = rule_file(chart)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    work = workdir(tmp_path, rules)
    proc = run_promtool(promtool, "test", "rules", "alerts.test.yaml", cwd=work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    failed = set(re.findall(r"alertname: (\w+), time: \w+", out))
    assert {
        "PullingAgentUnexpectedlyPaused",
        "PullingAgentPausedTooLong",
        "PullingAgentStalled",
        "PullingAgentDown",
        "PullingAgentMetricsAbsent",
    } <= failed, out


def test_unexpected_pause_for_is_the_value(chart: Chart, promtool: Path, tmp_path: Path) -> None:
    """metrics.prometheusRule.unexpectedPauseFor is the alert's `for`: with 10m
    the case that fires at 15m with the default 5m does not."""
    rules = rule_file(chart, {"unexpectedPauseFor": "10m"})
    (paused,) = [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r["alert"] == "PullingAgentUnexpectedlyPaused"
    ]
    assert paused["for"] == "10m"
    work = workdir(tmp_path, rules)
    proc = run_promtool(
        promtool,
        "test",
        "rules",
        "--run",
        "unexpected pause \\(signal\\)",
        "alerts.test.yaml",
        cwd=work,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "alertname: PullingAgentUnexpectedlyPaused, time: 15m" in out, out


def test_the_guide_example_is_not_promql(promtool: Path, tmp_path: Path) -> None:
    """The operator guide's alert, verbatim, is refused by Prometheus."""
    rules = {
        "groups": [
            {
                "name": "guide",
                "rules": [
                    {"alert": "PullingAgentUnexpectedlyPaused", "expr": GUIDE_EXPR, "for": "5m"}
                ],
            }
        ]
    }
    (tmp_path / "guide.yaml").write_text(yaml.safe_dump(rules))
    proc = run_promtool(promtool, "check", "rules", "guide.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert "could not parse expression" in proc.stdout + proc.stderr


def test_prometheus_pin_is_the_parser_checks(tmp_path: Path) -> None:
    """promtool and the PromQL parser check (tests/chart/promql) build from one
    Prometheus version."""
    pins = dict(
        line.split("=", 1)
        for line in (ROOT / "tools" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    gomod = (Path(__file__).parent / "promql" / "go.mod").read_text()
    (required,) = re.findall(r"github\.com/prometheus/prometheus (v\S+)", gomod)
    assert pins["PROMETHEUS_VERSION"] == required
