"""Small built-in processors for benchmarks, tests and drills.

- `noop`: returns an empty result at once (the throughput benchmark's
  processor: what is measured is the agent and the queue).
- `slow`: sleeps for a while on every document, to make long batches that a
  pause or a stop can land in. Options (strings, as `--processor-option`
  gives them): `seconds` (default 0.5), `interruptible` (default true: the
  agent may stop between two documents of a batch), `fail_every` (default
  0, off: every Nth document this process handles raises `ProcessingError`)
  and `cpu` (default false: sleep; true: compute in pure Python for those
  seconds instead, holding the GIL as a CPU-bound processor does).
"""

from __future__ import annotations

import itertools
import threading
import time

from pulling_agent.processors.base import ProcessingError, Processor
from pulling_agent.sources.base import Document

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ProcessorOptionError(ValueError):
    """A processor option has a value that the processor cannot use."""


def parse_bool(name: str, value: str | bool) -> bool:
    """`true/false`, `yes/no`, `on/off`, `1/0` in any case."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ProcessorOptionError(f"option {name!r} must be true or false, not {value!r}")


def parse_seconds(name: str, value: str | float) -> float:
    """A finite number of seconds >= 0."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ProcessorOptionError(
            f"option {name!r} must be a number of seconds, not {value!r}"
        ) from None
    if not 0 <= seconds < float("inf"):
        raise ProcessorOptionError(f"option {name!r} must be >= 0 and finite, not {value!r}")
    return seconds


def parse_count(name: str, value: str | int) -> int:
    """A whole number >= 0."""
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ProcessorOptionError(
            f"option {name!r} must be a whole number, not {value!r}"
        ) from None
    if count < 0:
        raise ProcessorOptionError(f"option {name!r} must be >= 0, not {value!r}")
    return count


def _compute(seconds: float) -> None:
    """Pure-Python arithmetic for `seconds` (the GIL is held but for Python's switches)."""
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        for number in range(100):
            total += number * number


class NoopProcessor(Processor):
    """Does nothing and returns an empty result."""

    interruptible = True

    def process(self, document: Document) -> str:
        return ""


class SlowProcessor(Processor):
    """Sleeps `seconds` per document; see the module docstring.

    `interruptible="false"` makes the agent handle each batch as a whole.
    """

    def __init__(
        self,
        seconds: str | float = "0.5",
        interruptible: str | bool = "true",
        fail_every: str | int = "0",
        cpu: str | bool = "false",
    ) -> None:
        self.seconds = parse_seconds("seconds", seconds)
        self.interruptible = parse_bool("interruptible", interruptible)
        self.fail_every = parse_count("fail_every", fail_every)
        self.cpu = parse_bool("cpu", cpu)
        self._counter = itertools.count(1)
        self._counter_lock = threading.Lock()

    def process(self, document: Document) -> str:
        with self._counter_lock:
            number = next(self._counter)
        if self.cpu:
            _compute(self.seconds)
        else:
            time.sleep(self.seconds)
        if self.fail_every and number % self.fail_every == 0:
            raise ProcessingError(f"slow processor: failing document {document.id} on purpose")
        return f"slept {self.seconds:g}s"
