"""Defaults that more than one module names: one copy of each.

The control script (`control/control-agent.sh`) and the chart repeat some of
them in their own languages; `tests/unit/test_vocabulary.py` checks that the
script agrees.
"""

from __future__ import annotations

from pathlib import Path

#: The embedded queue `run`, `seed` and `stats` use when given no `--source`.
SOURCE_URL = "sqlite:///pulling-agent.db"
#: Where the control file `state` and its sibling keys live (a ConfigMap volume in a pod).
CONTROL_DIR = Path("/tmp/control")
#: Where the readiness and liveness files are written.
HEALTH_DIR = Path("/tmp/health")
#: The control ConfigMap (the operator guide's name, and the chart's default).
CONFIGMAP = "agent-control"
#: The agent pods' label (the operator guide's selector).
POD_SELECTOR = "app=pulling-agent"
