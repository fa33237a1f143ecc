"""What one agent costs the Prometheus that scrapes it: bytes per scrape, series per agent.

A real Prometheus (./bin/prometheus, `make tools`) scrapes one agent every
second, as the chart's ServiceMonitor would (with the protocol Prometheus
negotiates by default).  The agent processes demo documents and has been
paused and resumed once by a signal, so that every series it exports in
steady state exists (the control commands', the pause reason's).  The
figures are Prometheus's own per-target scrape metrics:
`scrape_body_size_bytes` and `scrape_samples_post_metric_relabeling`.
"""

from __future__ import annotations

import signal
import socket

from harness import DEFAULT_INTERVALS, Figures, Unavailable, Workspace, say

from testkit.prometheus_server import PrometheusServer, why_missing

SCRAPES = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_scrape(figures: Figures, ws: Workspace) -> None:
    if (reason := why_missing()) is not None:
        raise Unavailable(reason)
    port = _free_port()
    agent = ws.agent(
        "scrape",
        (
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
            "--processor",
            "noop",
            "--seed",
            "2000",
            *DEFAULT_INTERVALS,
        ),
    )
    agent.start("running")
    agent.signal(signal.SIGUSR1)
    agent.wait_state("paused")
    agent.signal(signal.SIGUSR2)
    agent.wait_state("running")
    job = {
        "job_name": "pulling-agent",
        "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"pod": "agent"}}],
    }
    with PrometheusServer(ws.path("prometheus"), [job]) as prom:
        sel = 'job="pulling-agent"'
        prom.wait_for(
            lambda: (prom.value(f"count_over_time(up{{{sel}}}[1m])") or 0) >= SCRAPES,
            f"{SCRAPES} scrapes",
        )
        size = prom.value(f"max_over_time(scrape_body_size_bytes{{{sel}}}[1m])")
        series = prom.value(f"max_over_time(scrape_samples_post_metric_relabeling{{{sel}}}[1m])")
        exported = prom.value(f"count({{{sel}, __name__=~'pulling_agent_.*'}})")
    assert size and series and exported, (size, series, exported)
    say(f"scrape: {size:.0f} bytes, {series:.0f} samples a scrape ({exported:.0f} pulling_agent_*)")
    note = (
        f"one agent, after a pause and a resume; Prometheus's scrape_body_size_bytes "
        f"(largest of {SCRAPES}+ scrapes at 1 s)"
    )
    figures.emit("scrape_bytes_per_agent", size, "bytes", None, note=note, digits=0)
    figures.emit(
        "series_per_agent",
        series,
        "series",
        None,
        note=f"scrape_samples_post_metric_relabeling; {exported:.0f} of them pulling_agent_*",
        digits=0,
    )
