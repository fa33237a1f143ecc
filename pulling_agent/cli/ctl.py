"""`pulling-agent ctl pause|resume|status`: the agents' control ConfigMap.

Pause and resume PATCH the ConfigMap (a merge patch: only `state`, `reason`,
`requested-by` and `requested-at` change, nothing is replaced; a missing
ConfigMap is created, as the guide's `kubectl apply` would), in a pod with
its ServiceAccount or elsewhere through a kubeconfig. The agents see the
change through their ConfigMap watch in about a second, or when the kubelet
refreshes the mounted file. Then, unless --no-wait, they wait until every
running agent pod reports the state in the status ConfigMap
(`<configmap>-status`, see `pulling_agent.fleet`), for this request or a
later one. This is what the chart's control Jobs run; it needs `get` and
`patch` on those two ConfigMaps and `list` on pods (and `create` on
`pods/exec` to signal pods).

Exit status: see `pulling_agent.cli.exits` (0 done, 1 the API refused or
could not be reached, 2 usage, 3 not verified: the replicas are named).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from pulling_agent import defaults
from pulling_agent.cli import exits
from pulling_agent.cli.options import (
    FiniteFloatRange,
    by_option,
    option,
    output_option,
    reason_option,
    timeout_option,
    wait_option,
)
from pulling_agent.commands import Action
from pulling_agent.lag import format_duration
from pulling_agent.replica_status import status_configmap_name
from pulling_agent.text import one_line
from pulling_agent.timestamps import request_stamp, utc_now
from pulling_agent.vocabulary import (
    REASON_KEY,
    REQUESTED_AT_KEY,
    REQUESTED_BY_KEY,
    STATE_KEY,
    VERBS,
)

if TYPE_CHECKING:
    from datetime import datetime

    from pulling_agent.fleet import Fleet
    from pulling_agent.kube import ControlData, KubeClient


@dataclass
class Target:
    client: KubeClient
    name: str
    namespace: str
    timeout: float


def connect_target(params: dict[str, Any]) -> Target:
    """The client and the ConfigMap the common options name."""
    from pulling_agent.kube import KubeError, connect

    try:
        client = connect(params["kubeconfig"], params["context"])
    except KubeError as exc:
        raise fail(str(exc)) from None
    namespace = params["namespace"] or client.namespace
    return Target(client, params["configmap"], namespace, params["request_timeout"])


def fail(message: str) -> click.ClickException:
    return click.ClickException(one_line(message))


def common_options(command: Any) -> Any:
    for decorator in reversed(
        (
            option(
                "--configmap",
                default=defaults.CONFIGMAP,
                show_default=True,
                help="The control ConfigMap.",
            ),
            option(
                "--namespace",
                "-n",
                default="",
                help="Its namespace (default: the pod's, or the kubeconfig context's).",
            ),
            option(
                "--kubeconfig",
                default="",
                help="Kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config).",
            ),
            option("--context", default="", help="Kubeconfig context (default: the current one)."),
            option(
                "--request-timeout",
                type=FiniteFloatRange(0.5, 300),
                default=10.0,
                show_default=True,
                help="Seconds to wait for each API call.",
            ),
            output_option,
        )
    ):
        command = decorator(command)
    return command


@click.group()
def ctl() -> None:
    """Pause, resume and inspect agents through their control ConfigMap (Kubernetes API)."""


def _signal_pods(target: Target, selector: str, action: Action) -> tuple[list[str], dict[str, str]]:
    """Signal every pod matching `selector`: (signalled pods, {pod: error})."""
    from pulling_agent.kube import KubeError, list_pods, signal_pod

    try:
        pods = list_pods(target.client, target.namespace, selector, timeout=target.timeout)
    except KubeError as exc:
        return [], {"*": str(exc)}
    sent: list[str] = []
    errors: dict[str, str] = {}
    for pod in pods:
        try:
            signal_pod(
                target.client,
                target.namespace,
                pod.name,
                VERBS[action].kill_name,
                timeout=target.timeout,
            )
        except KubeError as exc:
            errors[pod.name] = str(exc)
        else:
            sent.append(pod.name)
    return sent, errors


def _write_control(target: Target, data: dict[str, str]) -> tuple[ControlData, bool]:
    """Patch the control ConfigMap; create it when it does not exist (the guide's `kubectl
    apply`). Returns (its keys, created)."""
    from pulling_agent.kube import KubeError, create_configmap, patch_configmap
    from pulling_agent.kube.errors import NOT_FOUND

    try:
        return patch_configmap(
            target.client, target.name, target.namespace, data, timeout=target.timeout
        ), False
    except KubeError as exc:
        if exc.kind != NOT_FOUND:
            raise fail(str(exc)) from None
    try:
        created = create_configmap(
            target.client, target.name, target.namespace, data, timeout=target.timeout
        )
    except KubeError as exc:
        raise fail(
            f"ConfigMap {target.name} does not exist in namespace {target.namespace}, "
            f"and creating it failed: {exc}"
        ) from None
    return created, True


def _status_name(params: dict[str, Any]) -> str:
    return params["status_configmap"] or status_configmap_name(params["configmap"])


def _read_fleet(target: Target, params: dict[str, Any]) -> Fleet:
    from pulling_agent.fleet import read_fleet

    return read_fleet(
        target.client,
        target.namespace,
        _status_name(params),
        selector=params["selector"],
        timeout=target.timeout,
    )


def _prune(target: Target, params: dict[str, Any], fleet: Fleet) -> list[str]:
    """Remove the reports of vanished pods; best effort (a read-only account cannot)."""
    from pulling_agent.fleet import prune
    from pulling_agent.kube import KubeError

    try:
        return prune(
            target.client, target.namespace, _status_name(params), fleet, timeout=target.timeout
        )
    except KubeError:
        return []


def _wait(target: Target, params: dict[str, Any], action: Action, requested_at: datetime) -> Fleet:
    from pulling_agent.fleet import stamp_floor, wait_for_state
    from pulling_agent.kube import KubeError

    try:
        fleet = wait_for_state(
            lambda: _read_fleet(target, params),
            VERBS[action].state.value,
            stamp_floor(requested_at),
            timeout=params["timeout"],
        )
    except KubeError as exc:
        raise fail(f"cannot verify: {exc}") from None
    _prune(target, params, fleet)
    return fleet


def _wait_result(fleet: Fleet, action: Action, requested_at: datetime) -> dict[str, Any]:
    from pulling_agent.fleet import stamp_floor

    missing = fleet.missing(VERBS[action].state.value, stamp_floor(requested_at))
    return {
        "state": VERBS[action].state.value,
        "selector": fleet.selector,
        "reports": fleet.reports_on,
        "acknowledged": [r.pod.name for r in fleet.started if r not in missing],
        "missing": {r.pod.name: r.describe() for r in missing},
        "not_started": [r.pod.name for r in fleet.not_started],
    }


def _control(action: Action, params: dict[str, Any]) -> None:
    text = params["output"] == "text"
    verb = VERBS[action]
    if text:
        click.echo(f"{verb.doing} agent...")
    target = connect_target(params)
    requested_at = utc_now()
    data = {
        STATE_KEY: verb.word,
        REASON_KEY: one_line(params["reason"]),
        REQUESTED_BY_KEY: params["by"],
        REQUESTED_AT_KEY: request_stamp(requested_at),
    }
    result, created = _write_control(target, data)
    where = f"{target.namespace}/{target.name}"
    if created:
        click.echo(f"Warning: ConfigMap {where} did not exist; created it", err=True)
    sent: list[str] = []
    errors: dict[str, str] = {}
    if params["signal_selector"]:
        sent, errors = _signal_pods(target, params["signal_selector"], action)
    if text:
        click.echo(f"ConfigMap updated to '{verb.word}' ({where})")
        click.echo(f"Requested by {data[REQUESTED_BY_KEY]} at {data[REQUESTED_AT_KEY]}")
        if data[REASON_KEY]:
            click.echo(f"Reason: {data[REASON_KEY]}")
        for pod in sent:
            click.echo(f"{verb.signal.name} signal sent to pod {pod}")
        for pod, error in errors.items():
            which = "pods" if pod == "*" else f"pod {pod}"
            click.echo(f"Could not signal {which} ({error}); relying on the ConfigMap", err=True)
        if params["signal_selector"] and not sent and not errors:
            click.echo(f"No pods match {params['signal_selector']}", err=True)
    waited: dict[str, Any] | None = None
    if params["wait"]:
        if text:
            click.echo(f"Waiting for agent to {verb.word}..")
        fleet = _wait(target, params, action, requested_at)
        waited = _wait_result(fleet, action, requested_at)
    target.client.close()
    if not text:
        click.echo(
            json.dumps(
                {
                    "action": action.value,
                    "configmap": target.name,
                    "namespace": target.namespace,
                    **result.as_dict(),
                    "resource_version": result.resource_version,
                    "created": created,
                    "signalled": sent,
                    "signal_errors": errors,
                    "wait": waited,
                }
            )
        )
    if waited is None:
        if text:
            click.echo(
                f"Not waiting (--no-wait); check with: pulling-agent ctl status "
                f"-n {target.namespace} --configmap {target.name}"
            )
        return
    _report_wait(waited, verb.state.value, verb.done, params, text)


def _report_wait(
    waited: dict[str, Any], state: str, done: str, params: dict[str, Any], text: bool
) -> None:
    """Say how the wait ended; exit 3 (naming each replica) unless every one acknowledged."""
    started = len(waited["acknowledged"]) + len(waited["missing"])
    if text and waited["not_started"]:
        click.echo(
            f"Not started (they read the ConfigMap when they start): "
            f"{', '.join(waited['not_started'])}"
        )
    if not waited["missing"]:
        if text:
            if started:
                click.echo(f"✓ Agent successfully {done} ({started} of {started} replicas)")
            else:
                click.echo(f"No running agent pods match {waited['selector']}: nothing to verify")
        return
    for pod, what in waited["missing"].items():
        click.echo(f"  pod {pod}: {what}", err=True)
    if not waited["reports"]:
        click.echo(
            f"✗ Cannot verify: there is no status ConfigMap {_status_name(params)} (agent "
            "reports are off: control.reports=false); use --no-wait, or "
            "control/control-agent.sh, which reads the pods' health files",
            err=True,
        )
    else:
        click.echo(
            f"✗ Agent not {state} within {params['timeout']:g}s: {len(waited['missing'])} of "
            f"{started} replicas did not report it: {' '.join(waited['missing'])}",
            err=True,
        )
    sys.exit(exits.UNVERIFIED)


def fleet_options(command: Any) -> Any:
    """The options that find the agents and their reports."""
    for decorator in reversed(
        (
            option(
                "--selector",
                "-l",
                default="",
                show_default="the status ConfigMap's agent-selector annotation, else "
                + defaults.POD_SELECTOR,
                help="Label selector of the agent pods.",
            ),
            option(
                "--status-configmap",
                default="",
                show_default="<configmap>-status",
                help="The ConfigMap the agents report to.",
            ),
        )
    ):
        command = decorator(command)
    return command


def control_command(action: Action) -> click.Command:
    verb = VERBS[action]

    @common_options
    @reason_option
    @by_option
    @wait_option
    @timeout_option
    @fleet_options
    @option(
        "--signal-selector",
        default="",
        metavar="SELECTOR",
        help="Also send SIGUSR1/SIGUSR2 to each pod matching this label selector (pods/exec).",
    )
    def command(**params: Any) -> None:
        _control(action, params)

    command.__doc__ = (
        f"{verb.word.capitalize()} the agents: set {STATE_KEY}={verb.word} in the control "
        f"ConfigMap, then wait until every running agent reports {verb.state.value}."
    )
    return ctl.command(verb.word)(command)


control_command(Action.PAUSE)
control_command(Action.RESUME)


@ctl.command()
@common_options
@fleet_options
def status(**params: Any) -> None:
    """The state the ConfigMap declares, and one row per agent pod from its report."""
    from pulling_agent.kube import KubeError, read_configmap

    target = connect_target(params)
    problems: list[str] = []
    declared: dict[str, Any] = {}
    try:
        control = read_configmap(
            target.client, target.name, target.namespace, timeout=target.timeout
        )
        declared = control.as_dict()
    except KubeError as exc:
        if exc.kind == "unreachable":
            raise fail(str(exc)) from None
        problems.append(str(exc))
    fleet: Fleet | None = None
    try:
        fleet = _read_fleet(target, params)
    except KubeError as exc:
        problems.append(f"cannot read the agents: {exc}")
    else:
        _prune(target, params, fleet)
    target.client.close()
    now = utc_now()
    rows = [r.row(now) for r in fleet.replicas] if fleet else []
    if params["output"] == "json":
        click.echo(
            json.dumps(
                {
                    "configmap": target.name,
                    "namespace": target.namespace,
                    "declared": declared or None,
                    "selector": fleet.selector if fleet else params["selector"],
                    "status_configmap": _status_name(params),
                    "reports": fleet.reports_on if fleet else None,
                    "pods": [r.pod.as_dict() for r in fleet.replicas] if fleet else [],
                    "replicas": rows,
                    "problems": problems,
                }
            )
        )
    else:
        _print_status(target, declared, fleet, rows, _status_name(params))
    for problem in problems:
        click.echo(f"Error: {one_line(problem)}", err=True)
    if problems:
        sys.exit(exits.FAILURE)


def _print_status(
    target: Target,
    declared: dict[str, Any],
    fleet: Fleet | None,
    rows: list[dict[str, Any]],
    status_name: str,
) -> None:
    click.echo(f"ConfigMap:      {target.namespace}/{target.name}")
    if declared:
        click.echo(f"Declared state: {declared['state'] or '(no state key)'}")
        for label, key in (
            ("Reason", "reason"),
            ("Requested by", "requested_by"),
            ("Requested at", "requested_at"),
        ):
            if declared.get(key):
                click.echo(f"{label + ':':<16}{declared[key]}")
    if fleet is None:
        return
    if not fleet.reports_on:
        click.echo(f"No status ConfigMap {status_name}: agent reports are off")
    if not rows:
        click.echo(f"No pods match {fleet.selector} in namespace {target.namespace}")
        return
    click.echo(f"Agents ({fleet.selector}):")
    click.echo(render_table(rows))


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "state":
        if not row["reported"]:
            return f"({row['phase']})" if row["phase"] != "Running" else "-"
        return str(row["state"]).upper()
    if column == "report_age_seconds":
        age = row[column]
        if age is None:
            return "no report" if not row["reported"] else "undated"
        return f"{age:.0f}s" + (" STALE" if row["stale"] else "")
    if column == "drain_eta_seconds":
        eta = row.get(column)
        return "-" if eta in ("", None) else format_duration(float(eta))
    if column == "since":
        return str(row.get("since") or "")[:19].replace("T", " ") or "-"
    value = row.get(column, "")
    return "-" if value in ("", None) else str(value)


#: The table's columns: (heading, row key): a report's field, or one of its `lag` fields.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("POD", "pod"),
    ("NODE", "node"),
    ("STATE", "state"),
    ("SINCE (UTC)", "since"),
    ("REASON", "reason"),
    ("BY", "requested_by"),
    ("DOCUMENTS", "documents"),
    ("ERRORS", "errors"),
    ("BACKLOG", "backlog_documents"),
    ("DOCS/S", "documents_per_second"),
    ("DRAINED IN", "drain_eta_seconds"),
    ("REPORT AGE", "report_age_seconds"),
)


def render_table(rows: list[dict[str, Any]]) -> str:
    cells = [[heading for heading, _ in COLUMNS]]
    cells += [[_cell(row, key) for _, key in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )
