"""`pulling-agent ctl pause|resume|status`: the agents' control ConfigMap.

Pause and resume PATCH the ConfigMap (a merge patch: only `state`, `reason`,
`requested-by` and `requested-at` change, nothing is replaced), in a pod with
its ServiceAccount or elsewhere through a kubeconfig. The agents see the
change through their ConfigMap watch in about a second, or when the kubelet
refreshes the mounted file. This is what the chart's control Jobs run; it
needs `get` and `patch` on that one ConfigMap, and `list` on pods for
`status` (and `create` on `pods/exec` to signal pods).

Exit status: 0 done, 1 the API refused or could not be reached (a one-line
message naming the ConfigMap, the verb or the host), 2 a usage error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from pulling_agent import defaults
from pulling_agent.cli.options import by_option, option, output_option, reason_option
from pulling_agent.commands import Action
from pulling_agent.text import one_line
from pulling_agent.timestamps import request_stamp
from pulling_agent.vocabulary import (
    REASON_KEY,
    REQUESTED_AT_KEY,
    REQUESTED_BY_KEY,
    STATE_KEY,
    VERBS,
)

if TYPE_CHECKING:
    from pulling_agent.kube import KubeClient


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
                type=click.FloatRange(0.5, 300),
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


def _control(action: Action, params: dict[str, Any]) -> None:
    from pulling_agent.kube import KubeError, patch_configmap

    text = params["output"] == "text"
    verb = VERBS[action]
    if text:
        click.echo(f"{verb.doing} agent...")
    target = connect_target(params)
    data = {
        STATE_KEY: verb.word,
        REASON_KEY: one_line(params["reason"]),
        REQUESTED_BY_KEY: params["by"],
        REQUESTED_AT_KEY: request_stamp(),
    }
    try:
        result = patch_configmap(
            target.client, target.name, target.namespace, data, timeout=target.timeout
        )
    except KubeError as exc:
        raise fail(str(exc)) from None
    sent: list[str] = []
    errors: dict[str, str] = {}
    if params["signal_selector"]:
        sent, errors = _signal_pods(target, params["signal_selector"], action)
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
                    "signalled": sent,
                    "signal_errors": errors,
                }
            )
        )
        return
    click.echo(f"ConfigMap updated to '{verb.word}' ({target.namespace}/{target.name})")
    click.echo(f"Requested by {data[REQUESTED_BY_KEY]} at {data[REQUESTED_AT_KEY]}")
    if data[REASON_KEY]:
        click.echo(f"Reason: {data[REASON_KEY]}")
    for pod in sent:
        click.echo(f"{verb.signal.name} signal sent to pod {pod}")
    for pod, error in errors.items():
        where = "pods" if pod == "*" else f"pod {pod}"
        click.echo(f"Could not signal {where} ({error}); relying on the ConfigMap", err=True)
    if params["signal_selector"] and not sent and not errors:
        click.echo(f"No pods match {params['signal_selector']}", err=True)
    click.echo(
        f"Agents watching the ConfigMap apply it within a second; check with: "
        f"pulling-agent ctl status -n {target.namespace} --configmap {target.name}"
    )


def control_command(action: Action) -> click.Command:
    verb = VERBS[action]

    @common_options
    @reason_option
    @by_option
    @option(
        "--signal-selector",
        default="",
        metavar="SELECTOR",
        help="Also send SIGUSR1/SIGUSR2 to each pod matching this label selector (pods/exec).",
    )
    def command(**params: Any) -> None:
        _control(action, params)

    command.__doc__ = (
        f"{verb.word.capitalize()} the agents: set {STATE_KEY}={verb.word} "
        "in the control ConfigMap."
    )
    return ctl.command(verb.word)(command)


control_command(Action.PAUSE)
control_command(Action.RESUME)


@ctl.command()
@common_options
@option(
    "--selector",
    "-l",
    default=defaults.POD_SELECTOR,
    show_default=True,
    help="Label selector of the agent pods.",
)
def status(**params: Any) -> None:
    """The state the ConfigMap declares, and each agent pod's phase and readiness."""
    from pulling_agent.kube import KubeError, list_pods, read_configmap

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
    pods: list[dict[str, Any]] = []
    try:
        found = list_pods(
            target.client, target.namespace, params["selector"], timeout=target.timeout
        )
        pods = [pod.as_dict() for pod in found]
    except KubeError as exc:
        problems.append(f"cannot list pods: {exc}")
    target.client.close()
    if params["output"] == "json":
        click.echo(
            json.dumps(
                {
                    "configmap": target.name,
                    "namespace": target.namespace,
                    "declared": declared or None,
                    "selector": params["selector"],
                    "pods": pods,
                    "problems": problems,
                }
            )
        )
    else:
        _print_status(target, declared, params["selector"], pods)
    for problem in problems:
        click.echo(f"Error: {one_line(problem)}", err=True)
    if problems:
        sys.exit(1)


def _print_status(
    target: Target, declared: dict[str, Any], selector: str, pods: list[dict[str, Any]]
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
    if not pods:
        click.echo(f"No pods match {selector} in namespace {target.namespace}")
        return
    click.echo(f"Pods ({selector}):")
    width = max(len(pod["name"]) for pod in pods)
    for pod in pods:
        ready = "ready" if pod["ready"] else "not ready"
        node = pod["node"] or "-"
        click.echo(f"  {pod['name']:<{width}}  {pod['phase']:<11} {ready:<10} node={node}")
