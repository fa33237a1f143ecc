"""Click options shared by the command modules: each also an environment variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

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
