"""A cluster that cannot start is one error, not one per test.

Runs pytest itself on three tests of the e2e tier with the node provider asked for and a pod
subnet that overlaps one of this host's own routes (or, where no node can run, with the
node provider's one-line reason): the first test errors with the reason and the other two
skip, pointing at it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit.clusters.base import REPO_ROOT
from testkit.clusters.nodehost import NodeLayout, host_routes

pytestmark = pytest.mark.integration

SMOKE = "tests/e2e/test_controlplane_smoke.py"
THREE = (
    f"{SMOKE}::test_versions_are_the_pinned_ones",
    f"{SMOKE}::test_tokenrequest_token_is_bound_by_rbac",
    f"{SMOKE}::test_pod_security_restricted_is_enforced",
)


def test_a_node_cluster_that_cannot_start_is_one_error() -> None:
    routes = host_routes(except_device=NodeLayout(workdir="").bridge)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULLING_AGENT_")}
    env["PULLING_AGENT_CLUSTER"] = "node"
    if routes:  # the host's own network: the provider must refuse to put pods on it
        env["PULLING_AGENT_NODE_POD_SUBNET"] = str(routes[0])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", *THREE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert "2 skipped, 1 error in" in out, out[-3000:]  # the error is the first test's set-up
    assert "SKIPPED [2] tests/e2e/conftest.py" in out, out[-3000:]  # -rs folds the two
    assert "the e2e cluster is unusable: node cluster did not start" in out, out[-3000:]
    if routes:  # checked before anything else, whatever else runs on the machine
        assert f"overlaps the host's route {routes[0]}" in out, out[-3000:]
        assert "PULLING_AGENT_NODE_POD_SUBNET" in out
