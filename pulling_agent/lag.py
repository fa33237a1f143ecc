"""Processing lag: the backlog, how fast this agent works it off, and when it will be drained.

The operator guide's "check if agent is behind" without `grep documents`.
The worker reports each backlog it reads (every heartbeat while it runs); the
controller asks for the lag whenever it publishes (every heartbeat, paused or
not). Over the last minute, `LagWindow` gives:

- `rate`: documents this agent acknowledged per second;
- `trend`: how fast the backlog changes, in documents per second (negative:
  draining). It is the net of every replica's work and of new arrivals, so
  the time to drain it gives is the fleet's, read from any one replica;
- `eta_seconds`: the backlog divided by the rate it shrinks at; None when it
  does not shrink (growing, flat, or paused: a paused worker reads no backlog).

The liveness file carries these as `key=value` lines (`LIVENESS_KEYS`), which
`pulling-agent status` shows and which a fleet view can read back with
`Lag.from_fields`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: How far back the rate and the trend look.
WINDOW_SECONDS = 60.0
#: Shorter spans than this give no rate or trend (one sample is no slope).
MIN_SPAN_SECONDS = 1.0

#: The liveness file's lag lines, in order.
LIVENESS_KEYS = (
    "backlog_documents",
    "documents_per_second",
    "backlog_change_per_second",
    "drain_eta_seconds",
    "lag_window_seconds",
    "backlog_age_seconds",
)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def format_duration(seconds: float) -> str:
    """7s, 4m05s, 2h05m, 3d04h: two units at most."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


@dataclass(frozen=True, slots=True)
class Lag:
    """The backlog (None: never read) as read `backlog_age` seconds ago, and the
    rates over `window` seconds (None: unknown)."""

    backlog: int | None = None
    rate: float | None = None
    trend: float | None = None
    window: float = 0.0
    backlog_age: float | None = None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until the backlog is empty at its current trend; None if it is not shrinking."""
        if self.backlog is None:
            return None
        if self.backlog == 0:
            return 0.0
        if self.trend is not None and self.trend < 0:
            return self.backlog / -self.trend
        return None

    # ------------------------------------------------------ liveness lines
    def fields(self) -> dict[str, str]:
        """The liveness file's lag lines: key -> text ("" for unknown)."""

        def text(value: float | None, digits: int) -> str:
            return "" if value is None else f"{value:.{digits}f}"

        return {
            "backlog_documents": "" if self.backlog is None else str(self.backlog),
            "documents_per_second": text(self.rate, 2),
            "backlog_change_per_second": text(self.trend, 2),
            "drain_eta_seconds": text(self.eta_seconds, 0),
            "lag_window_seconds": text(self.window, 0),
            "backlog_age_seconds": text(self.backlog_age, 0),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Lag:
        """Read back `fields()` (from a liveness file); what is missing is unknown."""
        backlog = _number(fields.get("backlog_documents"))
        return cls(
            backlog=None if backlog is None else int(backlog),
            rate=_number(fields.get("documents_per_second")),
            trend=_number(fields.get("backlog_change_per_second")),
            window=_number(fields.get("lag_window_seconds")) or 0.0,
            backlog_age=_number(fields.get("backlog_age_seconds")),
        )

    # ---------------------------------------------------------- for people
    def describe(self) -> list[tuple[str, str]]:
        """(label, text) lines for a status display; none when nothing is known."""
        if self.backlog is None:
            return []
        span = f"last {self.window:.0f} s"
        read = ""
        if self.backlog_age is not None and self.backlog_age >= 60:
            read = f" (read {format_duration(self.backlog_age)} ago: a paused agent reads none)"
        lines = [("Backlog", f"{self.backlog} documents{read}")]
        if self.rate is not None:
            lines.append(("Rate", f"{self.rate:.1f} documents/s by this agent ({span})"))
        if self.trend is not None:
            way = "draining" if self.trend < 0 else "growing" if self.trend > 0 else "flat"
            lines.append(("Trend", f"{way}, {self.trend:+.1f} documents/s ({span})"))
        eta = self.eta_seconds
        if eta is not None:
            lines.append(("Drained in", "now (empty)" if eta == 0 else f"~{format_duration(eta)}"))
        else:
            lines.append(("Drained in", "not draining"))
        return lines

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Lag:
        """Read back `as_dict()` (e.g. `pulling-agent status -o json`)."""
        return cls.from_fields(
            {key: "" if data.get(key) is None else str(data[key]) for key in LIVENESS_KEYS}
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "backlog_documents": self.backlog,
            "documents_per_second": self.rate,
            "backlog_change_per_second": self.trend,
            "drain_eta_seconds": self.eta_seconds,
            "lag_window_seconds": self.window,
            "backlog_age_seconds": self.backlog_age,
        }


class LagWindow:
    """Samples of the backlog and of the documents total over the last minute.

    Thread-safe: the worker calls `backlog_observed`, the controller `lag`.
    """

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._backlogs: deque[tuple[float, int]] = deque()
        self._documents: deque[tuple[float, int]] = deque()
        self._last_backlog: tuple[float, int] | None = None

    def backlog_observed(self, backlog: int) -> None:
        with self._lock:
            now = self._clock()
            self._last_backlog = (now, backlog)
            self._backlogs.append((now, backlog))
            self._prune(self._backlogs, now)

    def lag(self, documents: int) -> Lag:
        """The lag now, `documents` being this agent's total so far (recorded too)."""
        with self._lock:
            now = self._clock()
            self._documents.append((now, documents))
            self._prune(self._documents, now)
            self._prune(self._backlogs, now)
            rate, span = self._slope(self._documents)
            trend, trend_span = self._slope(self._backlogs)
            backlog, age = None, None
            if self._last_backlog is not None:
                age = now - self._last_backlog[0]
                backlog = self._last_backlog[1]
            window = span if rate is not None else trend_span
            return Lag(backlog, rate, trend, window, age)

    def _prune(self, samples: deque[tuple[float, int]], now: float) -> None:
        while samples and now - samples[0][0] > self._window:
            samples.popleft()

    @staticmethod
    def _slope(samples: deque[tuple[float, int]]) -> tuple[float | None, float]:
        if len(samples) < 2:
            return None, 0.0
        (t0, v0), (t1, v1) = samples[0], samples[-1]
        span = t1 - t0
        if span < MIN_SPAN_SECONDS:
            return None, span
        return (v1 - v0) / span, span
