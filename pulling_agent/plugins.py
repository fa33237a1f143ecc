"""Finding sources and processors: entry points or `module:attr`.

Sources are chosen by the URL's scheme (`sqlite://`, `postgresql://`) through
the `pulling_agent.sources` entry-point group; processors by name through the
`pulling_agent.processors` group, or by an explicit `module:attr` reference.
A third party adds either by declaring an entry point in its own package.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from pulling_agent.processors.base import Processor
from pulling_agent.sources.base import Source, SourceError
from pulling_agent.text import one_line

SOURCES_GROUP = "pulling_agent.sources"
PROCESSORS_GROUP = "pulling_agent.processors"


class PluginError(Exception):
    """A source or processor could not be found or built; the message says which."""


def _names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


def _load_reference(reference: str) -> Any:
    module_name, _, attr_path = reference.partition(":")
    target: Any = importlib.import_module(module_name)  # errors: see _plugin_code
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError as exc:
            raise PluginError(f"module {module_name!r} has no attribute {attr_path!r}") from exc
    return target


def _load_entry_point(group: str, name: str, kind: str) -> Any:
    matches = [ep for ep in entry_points(group=group) if ep.name == name]
    if not matches:
        known = ", ".join(_names(group)) or "none"
        raise PluginError(f"unknown {kind} {name!r} (known: {known}; or use module:attr)")
    return matches[0].load()


@contextmanager
def _plugin_code(what: str) -> Iterator[None]:
    """Run a plugin's own code (its import, its factory): whatever it raises,
    except our own errors, becomes one `PluginError` naming `what` and the
    error (chained, for a traceback at debug level)."""
    try:
        yield
    except (PluginError, SourceError):
        raise
    except Exception as exc:
        raise PluginError(f"{what}: {type(exc).__name__}: {one_line(str(exc))}") from exc


def load_source(url: str, *, read_only: bool = False) -> Source:
    """Build the source for `url`, chosen by its scheme.

    `read_only` (for commands that only look, like `stats`): the source must
    not create, migrate or change the queue. It is passed to factories that
    take a `read_only` keyword (the built-in ones do); others are built as usual.
    """
    scheme = urlsplit(url).scheme
    if not scheme:
        raise PluginError(f"source URL {url!r} has no scheme (e.g. sqlite:///agent.db)")
    name = scheme.split("+", 1)[0]
    with _plugin_code(f"source {name!r} cannot be loaded"):
        factory = _load_entry_point(SOURCES_GROUP, name, "source scheme")
    options = {"read_only": True} if read_only and _takes_keyword(factory, "read_only") else {}
    with _plugin_code(f"source {name!r} failed to start"):
        source = factory(url, **options)
    if not isinstance(source, Source):
        raise PluginError(f"source for scheme {scheme!r} is not a pulling_agent Source")
    return source


def _takes_keyword(factory: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def load_processor(spec: str, options: Mapping[str, str] | None = None) -> Processor:
    """Build a processor from a registered name or a `module:attr` reference.

    `options` (from `--processor-option key=value`) are passed as keyword
    arguments to the processor's factory.
    """
    with _plugin_code(f"processor {spec!r} cannot be loaded"):
        if ":" in spec:
            factory = _load_reference(spec)
        else:
            factory = _load_entry_point(PROCESSORS_GROUP, spec, "processor")
    with _plugin_code(f"processor {spec!r} failed to start"):
        try:
            processor = factory(**dict(options or {}))
        except (TypeError, ValueError) as exc:
            raise PluginError(f"processor {spec!r} rejected its options: {exc}") from exc
    if not isinstance(processor, Processor):
        raise PluginError(f"{spec!r} did not produce a pulling_agent Processor")
    return processor
