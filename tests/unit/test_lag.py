"""Processing lag: the rolling window, the time to drain, and how they are written and read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pulling_agent.health import parse_liveness, render_liveness
from pulling_agent.lag import LIVENESS_KEYS, Lag, LagWindow, format_duration
from pulling_agent.snapshot import Counters, Snapshot, Stats
from pulling_agent.state import Desired, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_draining_backlog_rate_trend_and_eta() -> None:
    clock = Clock()
    window = LagWindow(clock=clock)
    window.backlog_observed(1000)
    window.lag(documents=0)
    clock.now += 10
    window.backlog_observed(900)
    lag = window.lag(documents=60)
    assert lag.backlog == 900
    assert lag.rate == pytest.approx(6.0)  # this agent's 60 documents in 10 s
    assert lag.trend == pytest.approx(-10.0)  # the fleet took 100 off in 10 s
    assert lag.eta_seconds == pytest.approx(90.0)
    assert lag.window == pytest.approx(10.0)
    assert lag.backlog_age == 0


def test_only_the_last_minute_counts() -> None:
    clock = Clock()
    window = LagWindow(clock=clock)
    window.backlog_observed(5000)  # an old burst, forgotten after a minute
    window.lag(documents=0)
    for step in range(1, 8):
        clock.now += 10
        window.backlog_observed(1000 - 10 * step)
        lag = window.lag(documents=100 * step)
    assert lag.window == pytest.approx(60.0)
    assert lag.rate == pytest.approx(10.0)
    assert lag.trend == pytest.approx(-1.0)
    assert lag.eta_seconds == pytest.approx(930.0)


def test_paused_agent_reads_no_backlog_and_is_not_draining() -> None:
    clock = Clock()
    window = LagWindow(clock=clock)
    window.backlog_observed(500)
    window.lag(documents=10)
    clock.now += 5
    window.backlog_observed(450)
    window.lag(documents=60)
    for _ in range(14):  # paused: heartbeats go on, backlog reads stop
        clock.now += 5
        lag = window.lag(documents=60)
    assert lag.backlog == 450
    assert lag.backlog_age == pytest.approx(70.0)
    assert lag.rate == 0.0
    assert lag.trend is None
    assert lag.eta_seconds is None
    lines = dict(lag.describe())
    assert lines["Drained in"] == "not draining"
    assert "read 1m10s ago" in lines["Backlog"]


@pytest.mark.parametrize(
    ("lag", "expected"),
    [
        (Lag(backlog=0, rate=0.0, trend=0.0, window=60), "now (empty)"),
        (Lag(backlog=100, rate=5.0, trend=2.0, window=60), "not draining"),
        (Lag(backlog=100, rate=5.0, trend=0.0, window=60), "not draining"),
        (Lag(backlog=3600, rate=5.0, trend=-1.0, window=60), "~1h00m"),
    ],
)
def test_drained_in(lag: Lag, expected: str) -> None:
    assert dict(lag.describe())["Drained in"] == expected


def test_nothing_known_describes_nothing() -> None:
    assert Lag().describe() == []
    assert Lag().eta_seconds is None


def test_fields_round_trip_and_bad_text() -> None:
    lag = Lag(backlog=900, rate=6.0, trend=-10.0, window=10.0, backlog_age=2.0)
    fields = lag.fields()
    assert list(fields) == list(LIVENESS_KEYS)
    assert fields["drain_eta_seconds"] == "90"
    assert Lag.from_fields(fields) == lag
    assert Lag.from_dict(lag.as_dict()) == lag
    garbage = Lag.from_fields({"backlog_documents": "many", "documents_per_second": "inf"})
    assert garbage == Lag()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(7, "7s"), (245, "4m05s"), (7500, "2h05m"), (3 * 86400 + 4 * 3600, "3d04h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_liveness_keeps_its_first_lines_and_adds_the_lag_before_pid() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    snapshot = Snapshot(
        state=State.RUNNING,
        desired=Desired.RUNNING,
        counters=Counters(3, 30, 1),
        pid=4242,
        lag=Lag(backlog=900, rate=6.0, trend=-10.0, window=10.0, backlog_age=0.0),
    )
    lines = render_liveness(snapshot, now=now).splitlines()
    assert lines[0] == "running"
    assert lines[2:5] == ["batches=3", "documents=30", "errors=1"]
    assert lines[-1] == "pid=4242"
    assert "backlog_documents=900" in lines
    assert "drain_eta_seconds=90" in lines
    record = parse_liveness("\n".join(lines))
    assert Lag.from_fields(record.fields).eta_seconds == pytest.approx(90.0)


def test_stats_feed_the_window() -> None:
    clock = Clock()
    stats = Stats(LagWindow(clock=clock))
    stats.observe_backlog(100)
    stats.lag()
    clock.now += 2
    stats.add(batches=1, documents=10)
    stats.observe_backlog(90)
    lag = stats.lag()
    assert lag.rate == pytest.approx(5.0)
    assert lag.trend == pytest.approx(-5.0)
