"""The `pulling-agent` group, and its `run`, `seed` and `stats` commands.

Every option is also an environment variable `PULLING_AGENT_<OPTION>`
(`--batch-size` is `PULLING_AGENT_BATCH_SIZE`). Exit status: 0 success,
1 runtime failure, 2 usage error, each with a one-line message.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from pulling_agent import __version__
from pulling_agent.channels.signals import enable_crash_tracebacks
from pulling_agent.cli.ctl import ctl
from pulling_agent.cli.local import pause, resume, status
from pulling_agent.cli.options import (
    FiniteFloatRange,
    control_dir_option,
    health_dir_option,
    option,
    output_option,
    source_option,
)
from pulling_agent.logs import setup_logging
from pulling_agent.plugins import PluginError, load_source
from pulling_agent.runtime import AgentConfig, StartError, run_agent
from pulling_agent.sources.base import DocumentStatus, SourceError, redact_url

log = logging.getLogger(__name__)

#: `run`'s options default to the configuration's defaults.
DEFAULT = AgentConfig()


class ConfigurationError(click.ClickException):
    """What the command was given cannot work (a processor that does not
    load): one line, exit status 2 like a usage error."""

    exit_code = 2


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


def open_source_or_fail(url: str, *, read_only: bool = False) -> Any:
    try:
        return load_source(url, read_only=read_only)
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
    default=DEFAULT.processor,
    show_default=True,
    help="Processor name (entry point) or module:attr.",
)
@option(
    "--processor-option",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option passed to the processor (repeatable).",
)
@option(
    "--batch-size", type=click.IntRange(1, 10_000), default=DEFAULT.batch_size, show_default=True
)
@option(
    "--lease-seconds",
    type=FiniteFloatRange(1, 86_400),
    default=DEFAULT.lease_seconds,
    show_default=True,
    help="How long a claimed document stays ours before it returns to the queue.",
)
@option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=DEFAULT.max_attempts,
    show_default=True,
    help="Failed attempts before a document is parked as failed.",
)
@control_dir_option
@health_dir_option
@option(
    "--poll-interval",
    type=FiniteFloatRange(0.05, 3600),
    default=DEFAULT.poll_interval,
    show_default=True,
    help="Seconds between control file reads (inotify wakes it sooner).",
)
@option(
    "--heartbeat-interval",
    type=FiniteFloatRange(0.1, 3600),
    default=DEFAULT.heartbeat_interval,
    show_default=True,
    help="Seconds between liveness file rewrites.",
)
@option(
    "--stop-grace-seconds",
    type=FiniteFloatRange(0, 86_400),
    default=DEFAULT.stop_grace_seconds,
    show_default=True,
    help="On SIGTERM, time to finish the batch before releasing it.",
)
@option(
    "--metrics-port",
    type=click.IntRange(0, 65_535),
    default=DEFAULT.metrics_port,
    show_default=True,
    help="Prometheus metrics port; 0 turns metrics off.",
)
@option("--metrics-address", default=DEFAULT.metrics_address, show_default=True)
@option("--configmap", default="", help="Watch this ConfigMap through the Kubernetes API.")
@option("--namespace", default="", help="The ConfigMap's namespace (default: the pod's).")
@option("--kubeconfig", default="", help="Kubeconfig for the watch (default: in-cluster).")
@option(
    "--status-configmap",
    default="",
    help="Report this replica's state to this ConfigMap, under its pod's name "
    "(the chart: <configmap>-status); empty: no reports.",
)
@option(
    "--report-interval",
    type=FiniteFloatRange(1, 86_400),
    default=DEFAULT.report_interval,
    show_default=True,
    help="Seconds between two status reports when nothing changes (a change is reported at once).",
)
@option("--pod-name", default="", help="This replica's name in its reports (default: host name).")
@option("--node-name", default="", help="Its node's name in its reports.")
@option(
    "--ready-while-paused/--not-ready-while-paused",
    default=DEFAULT.ready_while_paused,
    show_default=True,
    help="Keep the readiness file while paused.",
)
@option(
    "--inotify/--no-inotify",
    default=DEFAULT.use_inotify,
    show_default=True,
    help="Wake on control directory changes (else poll only).",
)
@option(
    "--seed",
    type=click.IntRange(0, 10_000_000),
    default=DEFAULT.seed,
    help="Add this many demo documents at start if nothing is pending or in progress "
    "(once, however many agents start together).",
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
    enable_crash_tracebacks()
    try:
        code = run_agent(config)
    except PluginError as exc:
        # One line; what the plugin itself raised (its traceback) only at debug level.
        log.debug("Loading the processor failed", exc_info=exc)
        raise ConfigurationError(str(exc)) from None
    except StartError as exc:
        raise click.ClickException(str(exc)) from None
    except SourceError as exc:
        raise click.ClickException(f"source {redact_url(config.source)}: {exc}") from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from None
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
    """Documents by status: pending, in_progress, done, failed (reads only: never
    creates, migrates or changes the queue)."""
    src = open_source_or_fail(source, read_only=True)
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


for command in (pause, resume, status, ctl):
    main.add_command(command)
