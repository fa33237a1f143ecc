"""The chart's Grafana dashboard, built with grafana-foundation-sdk (never edited by hand).

    .venv/bin/python tools/grafana_dashboard.py          # rewrite the chart's JSON
    .venv/bin/python tools/grafana_dashboard.py --check  # exit 1 if it drifted

`make dashboard` runs the first; tests/chart/test_dashboard.py fails when the
committed charts/pulling-agent/dashboards/pulling-agent.json is not what this
module builds.  Every query is scoped by the variables `$namespace` and
`$release` (the `job` label: the chart's metrics Service, which is what a
ServiceMonitor names the job, and what the chart's PrometheusRule selects);
the e2e tier runs each one against a real Prometheus scraping real agents.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "charts" / "pulling-agent" / "dashboards" / "pulling-agent.json"

UID = "pulling-agent"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Every series of one release: what the chart's PrometheusRule selects too.
SEL = 'namespace="$namespace", job="$release"'
#: The window of the backlog's trend and of the time-to-drain estimate.
TREND_WINDOW = "5m"

#: The agent's states (pulling_agent/state.py) as the numbers the state
#: timelines draw; the value mappings turn them back into words and colours.
STATE_CODES = {"starting": 1, "running": 2, "paused": 3, "stopping": 4, "stopped": 5}
STATE_COLOURS = {
    "starting": "blue",
    "running": "green",
    "paused": "yellow",
    "stopping": "orange",
    "stopped": "text",
}


def coded_state(metric: str, states: list[str]) -> str:
    """One series per pod whose value is the code of its current state.

    The agent exports one series per state, 1 for the current one; each is
    multiplied by its state's code and the pod's series are summed.
    """
    terms = [f'{metric}{{{SEL}, state="{s}"}} * {STATE_CODES[s]}' for s in states]
    return "sum by (pod) (\n  " + "\n  or ".join(terms) + "\n)"


def state_mappings() -> list[Any]:
    return [
        ValueMap(
            options={
                str(code): ValueMappingResult(text=name, color=STATE_COLOURS[name], index=i)
                for i, (name, code) in enumerate(STATE_CODES.items())
            }
        )
    ]


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    return q


def instant_table(expr: str, ref: str = "A") -> prometheus.Dataquery:
    return query(expr, ref=ref).instant().format(PromQueryFormat.TABLE)


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


# ------------------------------------------------------------------ panels
def replica_state() -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title("Replica state")
        .description(
            "The state of every replica over time: running, paused, stopping (starting and "
            "stopped are brief). The table beside it gives the reason of the current request."
        )
        .datasource(DATASOURCE)
        .with_target(query(coded_state("pulling_agent_state", list(STATE_CODES)), "{{pod}}"))
        .mappings(state_mappings())
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .span(16)
        .height(8)
    )


def control_request() -> table.Panel:
    organize = DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {"Time": True, "Value": True},
            "indexByName": {"pod": 0, "reason": 1, "requested_by": 2, "channel": 3},
            "renameByName": {"requested_by": "requested by"},
        },
    )
    return (
        table.Panel()
        .title("Current control request")
        .description(
            "Per replica, the request behind its current state: the reason and requester "
            "the ConfigMap or control file gave (empty for a signal, whose channel is "
            "`signal`)."
        )
        .datasource(DATASOURCE)
        .with_target(
            instant_table(
                f"max by (pod, reason, requested_by, channel) (pulling_agent_control_info{{{SEL}}})"
            )
        )
        .with_transformation(organize)
        .span(8)
        .height(8)
    )


def desired_vs_actual() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Desired vs actual")
        .description(
            "Replicas in each state (solid) against the state their control ConfigMap or "
            "file declares (dashed). A gap between `actual paused` and `declared paused` is "
            "a pause nobody declared: a signal, or an agent that did not follow."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"count by (state) (pulling_agent_state{{{SEL}}} == 1)",
                "actual {{state}}",
                "A",
            )
        )
        .with_target(
            query(
                f"count by (state) (pulling_agent_declared_state{{{SEL}}} == 1)",
                "declared {{state}}",
                "B",
            )
        )
        .override_by_regexp(
            "declared .*",
            [
                dash_property("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
            ],
        )
        .unit("none")
        .decimals(0)
        .min(0)
        .span(12)
        .height(7)
    )


def dash_property(name: str, value: Any) -> DynamicConfigValue:
    return DynamicConfigValue(id_val=name, value=value)


def unexpectedly_paused() -> stat.Panel:
    return (
        stat.Panel()
        .title("Paused against their desired state")
        .description(
            "Replicas that are paused while their control ConfigMap or file says running: "
            "what the PullingAgentUnexpectedlyPaused alert fires on after its `for`."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f'count(pulling_agent_state{{{SEL}, state="paused"}} == 1 '
                "and on (namespace, pod) "
                f'pulling_agent_declared_state{{{SEL}, state="running"}} == 1) or vector(0)'
            )
        )
        .reduce_options(last_value())
        .thresholds(thresholds((None, "green"), (1, "red")))
        .span(4)
        .height(7)
    )


def paused_for() -> stat.Panel:
    return (
        stat.Panel()
        .title("Paused for")
        .description("How long each paused replica has been paused (from the agent's clock).")
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"time() - max by (pod) (pulling_agent_paused_since_seconds{{{SEL}}} > 0)",
                "{{pod}}",
            )
        )
        .reduce_options(last_value())
        .unit("s")
        .no_value("none paused")
        .thresholds(thresholds((None, "yellow")))
        .span(4)
        .height(7)
    )


def replicas_reporting() -> stat.Panel:
    return (
        stat.Panel()
        .title("Replicas reporting")
        .description(
            "Scrape targets of this release that answer (`up == 1`) and that do not "
            "(PullingAgentDown fires on these)."
        )
        .datasource(DATASOURCE)
        .with_target(query(f"sum(up{{{SEL}}} == 1) or vector(0)", "up", "A"))
        .with_target(query(f"count(up{{{SEL}}} == 0) or vector(0)", "down", "B"))
        .reduce_options(last_value())
        .override_by_name("down", [dash_property("color", {"mode": "fixed", "fixedColor": "red"})])
        .span(4)
        .height(7)
    )


def documents_per_second() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Documents per second")
        .description("Documents processed and acknowledged per second, per replica and in all.")
        .datasource(DATASOURCE)
        .with_target(
            query(
                "sum by (pod) (rate(pulling_agent_documents_total"
                f'{{{SEL}, outcome="done"}}[$__rate_interval]))',
                "{{pod}}",
                "A",
            )
        )
        .with_target(
            query(
                "sum(rate(pulling_agent_documents_total"
                f'{{{SEL}, outcome="done"}}[$__rate_interval]))',
                "all replicas",
                "B",
            )
        )
        .unit("ops")
        .min(0)
        .span(8)
        .height(8)
    )


def batch_duration() -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title("Batch duration percentiles")
        .description("Time from claim to acknowledgement of one batch, all replicas.")
        .datasource(DATASOURCE)
        .unit("s")
        .min(0)
        .span(8)
        .height(8)
    )
    for ref, q in (("A", 0.5), ("B", 0.9), ("C", 0.99)):
        panel = panel.with_target(
            query(
                f"histogram_quantile({q}, sum by (le) (rate("
                f"pulling_agent_batch_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                f"p{round(q * 100)}",
                ref,
            )
        )
    return panel


def time_since_last_batch() -> stat.Panel:
    return (
        stat.Panel()
        .title("Time since the last batch")
        .description(
            "Per replica, since its last finished batch. Long while running with a backlog "
            "is what PullingAgentStalled fires on; long while paused is expected."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"time() - max by (pod) (pulling_agent_last_batch_timestamp_seconds{{{SEL}}} > 0)",
                "{{pod}}",
            )
        )
        .reduce_options(last_value())
        .unit("s")
        .no_value("no batch yet")
        .thresholds(thresholds((None, "green"), (300, "yellow"), (900, "red")))
        .span(8)
        .height(8)
    )


def backlog() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Backlog")
        .description(
            "Documents waiting in the queue. Replicas sharing a PostgreSQL queue all report "
            "the same backlog, so this is the highest report, not a sum."
        )
        .datasource(DATASOURCE)
        .with_target(query(f"max(pulling_agent_backlog_documents{{{SEL}}})", "pending documents"))
        .unit("none")
        .min(0)
        .span(12)
        .height(8)
    )


def backlog_trend() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(f"Backlog trend ({TREND_WINDOW})")
        .description(
            "How fast the backlog changes, documents per second: below zero it drains "
            "(processing outpaces arrivals), above zero it grows."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"avg(deriv(pulling_agent_backlog_documents{{{SEL}}}[{TREND_WINDOW}]))",
                "change per second",
            )
        )
        .unit("ops")
        .thresholds(thresholds((None, "green"), (0, "red")))
        .span(6)
        .height(8)
    )


def time_to_drain() -> stat.Panel:
    return (
        stat.Panel()
        .title("Estimated time to drain")
        .description(
            f"The backlog divided by the rate it shrinks at over the last {TREND_WINDOW} "
            "(processing minus arrivals). No value: the backlog is not shrinking."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max(pulling_agent_backlog_documents{{{SEL}}})\n"
                f"/ -(avg(deriv(pulling_agent_backlog_documents{{{SEL}}}[{TREND_WINDOW}])) < 0)"
            )
        )
        .reduce_options(last_value())
        .unit("s")
        .no_value("not draining")
        .thresholds(thresholds((None, "green"), (3600, "yellow"), (14400, "red")))
        .span(6)
        .height(8)
    )


def failed_documents() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Failed and retried documents")
        .description(
            "Documents whose processing raised, per second: `retried` go back to the queue, "
            "`failed` were parked for good after the last attempt; `released` were given "
            "back untouched by a pause or a stop."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                "sum by (outcome) (rate(pulling_agent_documents_total"
                f'{{{SEL}, outcome=~"failed|retried|released"}}[$__rate_interval]))',
                "{{outcome}}",
            )
        )
        .unit("ops")
        .min(0)
        .span(8)
        .height(8)
    )


def errors() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Errors")
        .description(
            "Replicas whose source (queue) does not answer, and control input that was "
            "ignored (an unknown word in the ConfigMap or file, an unreadable file, "
            "Kubernetes API errors), by channel and kind."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"count(pulling_agent_source_up{{{SEL}}} == 0) or vector(0)",
                "replicas whose source is down",
                "A",
            )
        )
        .with_target(
            query(
                "sum by (channel, kind) (increase(pulling_agent_control_errors_total"
                f"{{{SEL}}}[$__rate_interval]))",
                "control {{channel}}: {{kind}}",
                "B",
            )
        )
        .unit("none")
        .min(0)
        .span(8)
        .height(8)
    )


def control_commands() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Control commands by channel and outcome")
        .description(
            "Pause, resume and stop commands the replicas received, by channel (signal, "
            "file, configmap) and outcome (applied, noop: already in that state, refused)."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                "sum by (channel, command, result) (increase("
                f"pulling_agent_control_commands_total{{{SEL}}}[$__rate_interval]))",
                "{{channel}} {{command}}: {{result}}",
            )
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .unit("none")
        .min(0)
        .span(8)
        .height(8)
    )


# --------------------------------------------------------------- variables
def variables() -> list[Any]:
    datasource = dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
    namespace = (
        dash.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(pulling_agent_state, namespace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    release = (
        dash.QueryVariable("release")
        .label("Release")
        .description("The release's metrics Service: the `job` label its ServiceMonitor sets.")
        .datasource(DATASOURCE)
        .query('label_values(pulling_agent_state{namespace="$namespace"}, job)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    return [datasource, namespace, release]


def build() -> dict[str, Any]:
    board = (
        dash.Dashboard("pulling-agent")
        .uid(UID)
        .description(
            "State, throughput, backlog and control of the pulling-agent replicas of one "
            "release. Generated by tools/grafana_dashboard.py."
        )
        .tags(["pulling-agent"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .variables(variables())
        .with_row(dash.Row("State"))
        .with_panel(replica_state())
        .with_panel(control_request())
        .with_panel(desired_vs_actual())
        .with_panel(unexpectedly_paused())
        .with_panel(paused_for())
        .with_panel(replicas_reporting())
        .with_row(dash.Row("Throughput"))
        .with_panel(documents_per_second())
        .with_panel(batch_duration())
        .with_panel(time_since_last_batch())
        .with_row(dash.Row("Backlog"))
        .with_panel(backlog())
        .with_panel(backlog_trend())
        .with_panel(time_to_drain())
        .with_row(dash.Row("Errors and control"))
        .with_panel(failed_documents())
        .with_panel(errors())
        .with_panel(control_commands())
    )
    model: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
    return model


def render() -> str:
    """The dashboard as the chart ships it."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON drifted")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} drifted: run `make dashboard`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
