"""Click options shared by the command modules: each also an environment variable."""

from __future__ import annotations

import getpass
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pulling_agent import defaults

F = TypeVar("F", bound=Callable[..., Any])

ENV_PREFIX = "PULLING_AGENT"


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose environment variable is PULLING_AGENT_<NAME>
    (`--batch-size` is PULLING_AGENT_BATCH_SIZE)."""
    long = next(d for d in decls if d.startswith("--"))
    name = long[2:].split("/")[0].replace("-", "_").upper()
    kwargs.setdefault("envvar", f"{ENV_PREFIX}_{name}")
    kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


class FiniteFloatRange(click.FloatRange):
    """A float within a range that is a number: `nan`, `inf` and `-inf` are
    refused with a usage error (Python's float() accepts them, and every
    comparison with nan is false, so a plain range lets nan through). Every
    float option of the command line uses it."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def default_requester() -> str:
    """Who asks, when `--by` is not given: the user, or the pod's name in a pod."""
    from pulling_agent.kube import in_cluster

    if in_cluster():
        return os.environ.get("HOSTNAME") or "in-cluster"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("HOSTNAME") or "unknown"


source_option = option(
    "--source",
    default=defaults.SOURCE_URL,
    show_default=True,
    help="Queue URL (sqlite:/// or postgresql://).",
)
control_dir_option = option(
    "--control-dir",
    type=click.Path(path_type=Path),
    default=defaults.CONTROL_DIR,
    show_default=True,
    help="Directory holding the control file `state`.",
)
health_dir_option = option(
    "--health-dir",
    type=click.Path(path_type=Path),
    default=defaults.HEALTH_DIR,
    show_default=True,
    help="Directory of the readiness and liveness files.",
)
output_option = option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
reason_option = option(
    "--reason", default="", help="Why; shown in the agents' logs, status and metrics."
)
by_option = option(
    "--by",
    default=default_requester,
    show_default="the user, or $HOSTNAME in a pod",
    help="Who asks (requested-by).",
)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """Seconds, as a number (`60`, `1.5`) or with a unit (`60s`, `2m`, `1h`)."""

    name = "duration"
    _UNITS: dict[str, float] = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}

    def __init__(self, maximum: float = 86_400.0) -> None:
        self.maximum = maximum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            number, unit = text.rstrip("smh"), text[len(text.rstrip("smh")) :]
            try:
                seconds = float(number) * self._UNITS[unit]
            except (KeyError, ValueError):
                self.fail(f"{value!r} is not a duration (seconds, or a number with s, m or h)")
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number.")
        if not 0 <= seconds <= self.maximum:
            self.fail(f"{value!r} is not between 0 and {self.maximum:g} seconds")
        return seconds


#: How long `pause`/`resume` wait for the agents (all three front ends agree).
WAIT_TIMEOUT = 60.0

wait_option = option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until every agent reports the state (exit 3 naming those that did not).",
)
timeout_option = option(
    "--timeout",
    type=Duration(),
    default=WAIT_TIMEOUT,
    show_default="60s",
    help="How long to wait for the agents: seconds, or 90s, 2m.",
)
