"""The `pulling-agent` command line.

- `main`: the `pulling-agent` group, and `run`, `seed`, `stats`;
- `local`: `pause`, `resume` and `status` of the agent on this host (its
  control directory, a signal, its health files);
- `ctl`: `pulling-agent ctl ...`, the agents' control ConfigMap through the
  Kubernetes API (what the chart's Jobs run);
- `options`: the option helper every command uses (each option is also an
  environment variable `PULLING_AGENT_<OPTION>`).
"""

from pulling_agent.cli.main import main

__all__ = ["main"]
