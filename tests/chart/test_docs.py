"""The chart README is generated from values.yaml comments (helm-docs) and must not drift."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import CHART, HELM_DOCS, value_leaves, values_yaml
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


def test_every_value_has_a_description(values_docs: dict[str, str]) -> None:
    """As helm-docs reads values.yaml: each key, or an object holding it, has a description.

    helm-docs' own parse, not a look for `# --`: a comment it cannot read (such as
    one with ` --` inside) renders an empty cell in the README and fails here.
    """
    empty = sorted(key for key, description in values_docs.items() if not description.strip())
    assert empty == [], f"values.yaml: helm-docs reads no description for {empty}"
    for leaf in value_leaves(values_yaml()):
        parts = leaf.split(".")
        holders = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        assert any(h in values_docs for h in holders), (
            f"values.yaml: {leaf} has no `# --` comment (nor has an object holding it)"
        )
    assert len(values_docs) > 50


def test_readme_has_a_row_for_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    for path in SAMPLES:
        parts = path.split(".")
        prefixes = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        assert any(f"| {p} |" in readme for p in prefixes), (
            f"README.md has no row for {path}: run `make docs-chart`"
        )
