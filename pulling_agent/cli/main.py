"""The `pulling-agent` command.

Every option is also an environment variable `PULLING_AGENT_<OPTION>`
(`--batch-size` is `PULLING_AGENT_BATCH_SIZE`). Exit status: 0 success,
1 runtime failure, 2 usage error, each with a one-line message.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from pulling_agent import __version__
from pulling_agent.cli.ctl import ctl
from pulling_agent.cli.local import LocalControlError, control_local_agent, local_status
from pulling_agent.cli.options import option
from pulling_agent.commands import Action
from pulling_agent.logs import setup_logging
from pulling_agent.plugins import PluginError, load_source
from pulling_agent.runtime import AgentConfig, redact_url, run_agent
from pulling_agent.sources.base import DocumentStatus, SourceError

DEFAULT_SOURCE = "sqlite:///pulling-agent.db"


source_option = option(
    "--source",
    default=DEFAULT_SOURCE,
    show_default=True,
    help="Queue URL (sqlite:/// or postgresql://).",
)
control_dir_option = option(
    "--control-dir",
    type=click.Path(path_type=Path),
    default=Path("/tmp/control"),
    show_default=True,
    help="Directory holding the control file `state`.",
)
health_dir_option = option(
    "--health-dir",
    type=click.Path(path_type=Path),
    default=Path("/tmp/health"),
    show_default=True,
    help="Directory of the readiness and liveness files.",
)
output_option = option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)


def parse_processor_options(values: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in values:
        for part in item.split():
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise click.BadParameter(
                    f"{part!r} is not key=value", param_hint="--processor-option"
                )
            options[key] = value
    return options


def open_source_or_fail(url: str) -> Any:
    try:
        return load_source(url)
    except PluginError as exc:
        raise click.BadParameter(str(exc), param_hint="--source") from None
    except SourceError as exc:
        raise click.ClickException(f"source {redact_url(url)}: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pulling-agent")
def main() -> None:
    """Pull batches of documents from a queue and process them; pause, resume
    and stop safely."""


@main.command()
@source_option
@option(
    "--processor",
    default="digest",
    show_default=True,
    help="Processor name (entry point) or module:attr.",
)
@option(
    "--processor-option",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option passed to the processor (repeatable).",
)
@option("--batch-size", type=click.IntRange(1, 10_000), default=10, show_default=True)
@option(
    "--lease-seconds",
    type=click.FloatRange(1, 86_400),
    default=300.0,
    show_default=True,
    help="How long a claimed document stays ours before it returns to the queue.",
)
@option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Failed attempts before a document is parked as failed.",
)
@control_dir_option
@health_dir_option
@option(
    "--poll-interval",
    type=click.FloatRange(0.05, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between control file reads (inotify wakes it sooner).",
)
@option(
    "--heartbeat-interval",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between liveness file rewrites.",
)
@option(
    "--stop-grace-seconds",
    type=click.FloatRange(0, 86_400),
    default=25.0,
    show_default=True,
    help="On SIGTERM, time to finish the batch before releasing it.",
)
@option(
    "--metrics-port",
    type=click.IntRange(0, 65_535),
    default=9102,
    show_default=True,
    help="Prometheus metrics port; 0 turns metrics off.",
)
@option("--metrics-address", default="0.0.0.0", show_default=True)  # noqa: S104
@option("--configmap", default="", help="Watch this ConfigMap through the Kubernetes API.")
@option("--namespace", default="", help="The ConfigMap's namespace (default: the pod's).")
@option("--kubeconfig", default="", help="Kubeconfig for the watch (default: in-cluster).")
@option(
    "--ready-while-paused/--not-ready-while-paused",
    default=False,
    show_default=True,
    help="Keep the readiness file while paused.",
)
@option(
    "--inotify/--no-inotify",
    default=True,
    show_default=True,
    help="Wake on control directory changes (else poll only).",
)
@option(
    "--seed",
    type=click.IntRange(0, 10_000_000),
    default=0,
    help="Add this many demo documents at start if the queue is empty.",
)
@option(
    "--log-format",
    type=click.Choice(["auto", "json", "text"]),
    default="auto",
    show_default=True,
    help="auto: JSON lines unless stderr is a terminal.",
)
@option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(**params: Any) -> None:
    """Run the agent until SIGTERM/SIGINT."""
    setup_logging(params.pop("log_format"), params.pop("log_level"))
    params["processor_options"] = parse_processor_options(params.pop("processor_option"))
    params["use_inotify"] = params.pop("inotify")
    config = AgentConfig(**params)
    try:
        code = run_agent(config)
    except PluginError as exc:
        raise click.UsageError(str(exc)) from None
    except SourceError as exc:
        raise click.ClickException(f"source {redact_url(config.source)}: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or ''}: {exc.strerror}") from None
    sys.exit(code)


@main.command()
@option("--count", type=click.IntRange(1, 10_000_000), default=100, show_default=True)
@source_option
@option("--random-seed", type=int, default=0, help="Seed for the generated text.")
def seed(count: int, source: str, random_seed: int) -> None:
    """Add demo documents to the queue."""
    from pulling_agent.demo import demo_documents

    src = open_source_or_fail(source)
    try:
        added = src.add(demo_documents(count, seed=random_seed))
    except SourceError as exc:
        raise click.ClickException(f"source {src.describe()}: {exc}") from None
    finally:
        src.close()
    click.echo(f"Added {added} demo documents to {src.describe()}")


@main.command()
@source_option
@output_option
def stats(source: str, output: str) -> None:
    """Documents by status: pending, in_progress, done, failed."""
    src = open_source_or_fail(source)
    try:
        counts = src.counts()
    except SourceError as exc:
        raise click.ClickException(f"source {src.describe()}: {exc}") from None
    finally:
        src.close()
    data = {status.value: counts.get(status, 0) for status in DocumentStatus}
    if output == "json":
        click.echo(json.dumps(data))
    else:
        for key, value in data.items():
            click.echo(f"{key:<12} {value}")


def _local_control(
    action: Action, control_dir: Path, health_dir: Path, reason: str, by: str, timeout: float
) -> None:
    verb = "Pausing" if action is Action.PAUSE else "Resuming"
    click.echo(f"{verb} agent...")
    try:
        result = control_local_agent(
            action,
            control_dir=control_dir,
            health_dir=health_dir,
            reason=reason,
            by=by,
            timeout=timeout,
        )
    except LocalControlError as exc:
        raise click.ClickException(str(exc)) from None
    if result.file_written:
        click.echo(f"Control file {control_dir / 'state'} updated")
    else:
        click.echo(
            f"Warning: {result.file_error}; the request will not survive a restart", err=True
        )
    if result.signalled_pid is None:
        click.echo(
            f"No running agent found in {health_dir}; it will read the control file when it starts"
        )
        return
    name = "SIGUSR1" if action is Action.PAUSE else "SIGUSR2"
    click.echo(f"{name} signal sent to pid {result.signalled_pid}")
    click.echo(f"✓ Agent successfully {result.state}")


def local_control_command(action: Action) -> click.Command:
    @option("--reason", default="", help="Why; shown in status, logs and metrics.")
    @option("--by", default=getpass.getuser, show_default="current user", help="Who asks.")
    @option(
        "--timeout",
        type=click.FloatRange(0, 3600),
        default=30.0,
        show_default=True,
        help="Seconds to wait for the agent to reach the state.",
    )
    @control_dir_option
    @health_dir_option
    def command(reason: str, by: str, timeout: float, control_dir: Path, health_dir: Path) -> None:
        _local_control(action, control_dir, health_dir, reason, by, timeout)

    word = "pause" if action is Action.PAUSE else "resume"
    command.__doc__ = f"{word.capitalize()} the agent running on this host."
    return click.command(word)(command)


main.add_command(local_control_command(Action.PAUSE))
main.add_command(local_control_command(Action.RESUME))


@main.command()
@health_dir_option
@output_option
@option(
    "--stale-after",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="A liveness file older than this means UNHEALTHY.",
)
def status(health_dir: Path, output: str, stale_after: float) -> None:
    """The local agent's state and counters, from its health files."""
    data = local_status(health_dir, stale_after)
    if output == "json":
        click.echo(json.dumps(data))
    else:
        click.echo(f"State:        {data['state']}")
        if data.get("problem"):
            click.echo(f"Problem:      {data['problem']}")
        for label, key in (
            ("Desired", "desired_state"),
            ("Declared", "declared_state"),
            ("Ready", "ready"),
            ("Paused since", "paused_since"),
            ("Reason", "reason"),
            ("Requested by", "requested_by"),
            ("Requested at", "requested_at"),
            ("Via", "command_source"),
            ("Source error", "error"),
            ("Updated", "updated"),
            ("PID", "pid"),
        ):
            value = data.get(key)
            if isinstance(value, bool):
                value = "yes" if value else "no"
            if value not in (None, ""):
                click.echo(f"{label + ':':<14}{value}")
        if "batches" in data:
            click.echo(
                f"batches={data['batches']} documents={data['documents']} errors={data['errors']}"
            )
    if data["state"] == "UNHEALTHY":
        sys.exit(1)


main.add_command(ctl)
