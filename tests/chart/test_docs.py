"""The chart README is generated from values.yaml comments (helm-docs) and must not drift."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import CHART, HELM_DOCS, values_yaml
from .test_values_coverage import SAMPLES

pytestmark = pytest.mark.chart


def test_readme_is_up_to_date() -> None:
    if not os.access(HELM_DOCS, os.X_OK):
        pytest.skip("./bin/helm-docs missing: run `make tools`")
    proc = subprocess.run(
        [str(HELM_DOCS), "--chart-search-root", str(CHART), "--skip-version-footer", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout == (CHART / "README.md").read_text(), (
        "charts/pulling-agent/README.md is out of date: run `make docs-chart`"
    )


def _documented(lines: list[str], key_line: int) -> bool:
    """A `# --` comment block sits right above the key (helm-docs' convention)."""
    i = key_line - 1
    while i >= 0 and lines[i].strip().startswith("#"):
        if lines[i].strip().startswith("# --"):
            return True
        i -= 1
    return False


def test_every_value_has_a_description() -> None:
    """What helm-docs renders: each key, or the object holding it, has a `# --` description."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented = 0

    def walk(tree: dict[str, object], indent: int, start: int) -> None:
        nonlocal documented
        for key, value in tree.items():
            at = next(
                i for i in range(start, len(lines)) if lines[i].startswith(" " * indent + f"{key}:")
            )
            if _documented(lines, at):
                documented += 1
            elif isinstance(value, dict) and value:
                walk(value, indent + 2, at + 1)
            else:
                raise AssertionError(f"values.yaml line {at + 1}: {key} has no `# --` comment")

    walk(values_yaml(), 0, 0)
    assert documented > 50


def test_readme_has_a_row_for_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    for path in SAMPLES:
        parts = path.split(".")
        prefixes = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        assert any(f"| {p} |" in readme for p in prefixes), (
            f"README.md has no row for {path}: run `make docs-chart`"
        )
