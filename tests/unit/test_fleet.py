"""Replica reports: their JSON, staleness and acknowledgement; the fleet view `ctl` waits on;
the reporter's thread (change at once, heartbeat, back-off through an outage) against a
recording stand-in for the API server (the real one is in tests/e2e/test_fleet.py)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulling_agent.cli.ctl import COLUMNS, render_table
from pulling_agent.fleet import Fleet, Replica, wait_for_state
from pulling_agent.kube.client import KubeClient
from pulling_agent.kube.pods import PodInfo
from pulling_agent.lag import Lag
from pulling_agent.replica_status import STALE_HEARTBEATS, ReplicaStatus, status_configmap_name
from pulling_agent.reporter import StatusReporter
from pulling_agent.snapshot import Counters, Snapshot
from pulling_agent.state import Desired, State
from testkit.clusters import wait_until

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def snapshot(state: State = State.PAUSED, **kwargs: Any) -> Snapshot:
    values: dict[str, Any] = {
        "desired": Desired.PAUSED if state is State.PAUSED else Desired.RUNNING,
        "counters": Counters(2, 20, 1),
        "pid": 1,
        "reason": "db\nmaintenance",
        "requested_by": "alice",
        "requested_at": T0,
        "channel": "configmap",
        "since": T0 + timedelta(seconds=1),
        **kwargs,
    }
    return Snapshot(state=state, **values)


def test_report_round_trips_through_json() -> None:
    report = ReplicaStatus.from_snapshot(
        snapshot(), pod="agent-1", node="node-a", heartbeat_seconds=60, now=T0
    )
    data = json.loads(report.to_json())
    assert data["state"] == "paused"
    assert data["reason"] == "db maintenance"  # one line
    assert data["since"] == "2026-05-01T09:30:01.000+00:00"
    assert (data["documents"], data["batches"], data["errors"]) == (20, 2, 1)
    assert ReplicaStatus.from_json("agent-1", report.to_json()) == report


def test_the_processing_lag_travels_in_the_report() -> None:
    lagging = snapshot(lag=Lag(backlog=1200, rate=10.0, trend=-20.0, window=60.0))
    report = ReplicaStatus.from_snapshot(lagging, pod="p", now=T0)
    back = ReplicaStatus.from_json("p", report.to_json())
    assert back.lag["backlog_documents"] == "1200"
    assert back.lag["drain_eta_seconds"] == "60"
    row = Replica(PodInfo("p", "Running", True, "n", 0), back).row()
    cells = render_table([row]).splitlines()[1]
    assert "1200" in cells and "10.00" in cells and "1m00s" in cells


def test_unreadable_or_partial_reports_are_read_safely() -> None:
    assert ReplicaStatus.from_json("p", "not json").state == "unknown"
    partial = ReplicaStatus.from_json("p", '{"state": "running", "documents": "x", "new": 1}')
    assert (partial.state, partial.documents, partial.pod) == ("running", 0, "p")


def test_stale_after_three_heartbeats_and_acknowledgement() -> None:
    report = ReplicaStatus.from_snapshot(snapshot(), pod="p", heartbeat_seconds=10, now=T0)
    assert not report.stale(T0 + timedelta(seconds=10 * STALE_HEARTBEATS))
    assert report.stale(T0 + timedelta(seconds=10 * STALE_HEARTBEATS + 1))
    assert report.acknowledges("paused", T0)
    assert not report.acknowledges("paused", T0 + timedelta(seconds=1))  # an older request
    assert not report.acknowledges("running", T0)
    assert status_configmap_name("agent-control") == "agent-control-status"


def replica(name: str, phase: str = "Running", state: State | None = State.PAUSED) -> Replica:
    report = (
        None
        if state is None
        else ReplicaStatus.from_snapshot(snapshot(state), pod=name, heartbeat_seconds=60)
    )
    return Replica(PodInfo(name, phase, True, "node-a", 0), report)


def test_fleet_waits_for_started_replicas_only_and_names_the_others() -> None:
    fleet = Fleet(
        "app=x",
        [replica("a"), replica("b", state=State.RUNNING), replica("c", "Pending", None)],
    )
    missing = fleet.missing("paused", T0)
    assert [r.pod.name for r in missing] == ["b"]
    assert missing[0].describe().startswith("reports running since 2026-05-01T09:30:01")
    assert [r.pod.name for r in fleet.not_started] == ["c"]
    assert replica("d", state=None).describe() == "no report (pod Running)"


def test_wait_for_state_returns_once_all_acknowledge_or_at_the_deadline() -> None:
    readings = iter([Fleet("s", [replica("a", state=State.RUNNING)]), Fleet("s", [replica("a")])])
    clock = [0.0]
    fleet = wait_for_state(
        lambda: next(readings), "paused", T0, timeout=5, clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
    )  # fmt: skip
    assert not fleet.missing("paused", T0)
    stuck = Fleet("s", [replica("a", state=State.RUNNING)])
    fleet = wait_for_state(
        lambda: stuck, "paused", T0, timeout=1, clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
    )  # fmt: skip
    assert [r.pod.name for r in fleet.missing("paused", T0)] == ["a"]


def test_status_table_has_a_column_per_field_and_marks_stale_reports() -> None:
    old = ReplicaStatus.from_snapshot(
        snapshot(), pod="a", heartbeat_seconds=1, now=datetime.now(UTC) - timedelta(minutes=5)
    )
    rows = [
        Replica(PodInfo("a", "Running", True, "node-a", 0), old).row(),
        replica("b", "Pending", None).row(),
    ]
    lines = render_table(rows).splitlines()
    assert lines[0].split()[:3] == ["POD", "NODE", "STATE"]
    assert len(COLUMNS) == 12
    assert "BACKLOG" in lines[0] and "DRAINED IN" in lines[0]
    assert lines[1].startswith("a ") and "PAUSED" in lines[1] and "STALE" in lines[1]
    assert "alice" in lines[1] and "db maintenance" in lines[1]
    assert "(Pending)" in lines[2] and "no report" in lines[2]


# --- the reporter's thread ------------------------------------------------------------------


class RecordingApi:
    """Records merge patches to ConfigMaps; fails while `down` is set."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.down = threading.Event()
        self.api_client = self

    def close(self) -> None:
        pass

    def patch_namespaced_config_map(self, name: str, namespace: str, body: Any, **_: Any) -> Any:
        if self.down.is_set():
            raise ConnectionRefusedError(111, "Connection refused")
        self.patches.append(body)
        return self

    def release_conn(self) -> None:
        pass

    def states(self) -> list[str]:
        return [json.loads(next(iter(p["data"].values())))["state"] for p in self.patches]


@pytest.fixture
def api() -> RecordingApi:
    return RecordingApi()


def reporter(api: RecordingApi, interval: float = 3600) -> StatusReporter:
    client = KubeClient(api, "https://api.test", "ns", "test")
    return StatusReporter(
        configmap="agent-control-status", namespace="ns", pod="agent-1", interval=interval,
        max_backoff=0.05, client_factory=lambda: client,
    )  # fmt: skip


def test_reporter_writes_each_change_at_once_and_only_its_own_key(api: RecordingApi) -> None:
    r = reporter(api)
    r.publish(snapshot(State.RUNNING))
    r.start()
    try:
        wait_until(lambda: api.states() == ["running"], timeout=10, what="first report")
        r.publish(snapshot(State.RUNNING, counters=Counters(3, 30, 1)))  # a heartbeat: no write
        r.publish(snapshot(State.PAUSED))
        wait_until(lambda: api.states() == ["running", "paused"], timeout=10, what="change")
    finally:
        r.stop()
    assert all(list(p["data"]) == ["agent-1"] for p in api.patches)
    assert api.states()[-1] == "paused"  # the last write at stop


def test_reporter_heartbeat(api: RecordingApi) -> None:
    r = reporter(api, interval=0.1)
    r.publish(snapshot(State.RUNNING))
    r.start()
    try:
        wait_until(lambda: len(api.patches) >= 3, timeout=10, what="heartbeats")
    finally:
        r.stop()


def test_reporter_publishes_the_latest_state_after_an_outage(api: RecordingApi) -> None:
    api.down.set()
    r = reporter(api)
    r.publish(snapshot(State.RUNNING))
    r.start()
    try:
        r.publish(snapshot(State.PAUSED))
        wait_until(lambda: r.written == 0 and not api.patches, timeout=1, what="nothing yet")
        api.down.clear()
        wait_until(lambda: api.states() == ["paused"], timeout=10, what="the report after")
    finally:
        r.stop()


def test_wait_for_state_rides_out_an_unreachable_api_but_not_a_refusal() -> None:
    from pulling_agent.kube.errors import FORBIDDEN, UNREACHABLE, KubeError

    clock = [0.0]

    def advance(seconds: float) -> None:
        clock[0] += seconds

    readings: list[Any] = [KubeError(UNREACHABLE, "down"), Fleet("s", [replica("a")])]

    def read() -> Fleet:
        item = readings.pop(0)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]

    fleet = wait_for_state(read, "paused", T0, timeout=5, clock=lambda: clock[0], sleep=advance)
    assert not fleet.missing("paused", T0)

    def refused() -> Fleet:
        raise KubeError(FORBIDDEN, "cannot list pods")

    with pytest.raises(KubeError, match="cannot list pods"):
        wait_for_state(refused, "paused", T0, timeout=5, clock=lambda: clock[0], sleep=advance)
