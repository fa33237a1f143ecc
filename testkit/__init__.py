"""Throw-away real parts that the tests and the benchmarks both start.

- `testkit.agentproc`: the agent as a real `pulling-agent run` process;
- `testkit.postgres_server`: a PostgreSQL server from the machine's binaries;
- `testkit.prometheus_server`: a Prometheus server from ./bin, and the scrape
  job the Prometheus Operator makes of the chart's ServiceMonitor;
- `testkit.clusters`: Kubernetes cluster providers (a control plane from
  ./bin, kind, an existing cluster).

Not part of the installed package: it imports `pulling_agent` only through
its command line, and nothing here imports `tests` or `benchmarks`.
"""
