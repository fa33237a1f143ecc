"""Health files: the liveness format, readiness rules, atomic writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pulling_agent.health import HealthFiles, parse_liveness, read_liveness, render_liveness
from pulling_agent.snapshot import Counters, Snapshot
from pulling_agent.state import Desired, State

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def snap(state: State = State.RUNNING, **kw: object) -> Snapshot:
    base: dict[str, object] = {
        "state": state,
        "desired": Desired.PAUSED if state is State.PAUSED else Desired.RUNNING,
        "counters": Counters(3, 30, 1),
        "pid": 4242,
    }
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_liveness_format_line_by_line() -> None:
    text = render_liveness(
        snap(
            State.PAUSED,
            paused_since=NOW,
            reason="db\nbackup",
            requested_by="ops",
            requested_at=NOW,
            channel="configmap",
        ),
        now=NOW,
    )
    lines = text.splitlines()
    assert lines[0] == "paused"
    assert lines[1] == "2026-11-28T12:00:00.000+00:00"
    assert lines[2:5] == ["batches=3", "documents=30", "errors=1"]
    assert "desired_state=paused" in lines
    assert "declared_state=running" in lines
    assert "paused_since=2026-11-28T12:00:00.000+00:00" in lines
    assert "reason=db backup" in lines  # one line, whatever the operator typed
    assert "requested_by=ops" in lines
    assert "channel=configmap" in lines
    assert "pid=4242" in lines
    assert text.endswith("\n")


def test_liveness_roundtrip() -> None:
    record = parse_liveness(render_liveness(snap(error="claim: refused"), now=NOW))
    assert record.state == "running"
    assert record.written_at == NOW
    assert record.get_int("documents") == 30
    assert record.fields["error"] == "claim: refused"


def test_readiness_exists_iff_running(tmp_path: Path) -> None:
    files = HealthFiles(tmp_path / "health")
    files.publish(snap(State.RUNNING))
    assert (tmp_path / "health" / "readiness").exists()
    files.publish(snap(State.PAUSED))
    assert not (tmp_path / "health" / "readiness").exists()
    assert read_liveness(tmp_path / "health").state == "paused"
    files.publish(snap(State.RUNNING, error="down"))
    assert not (tmp_path / "health" / "readiness").exists()
    files.publish(snap(State.STOPPING))
    assert not (tmp_path / "health" / "readiness").exists()


def test_ready_while_paused_option(tmp_path: Path) -> None:
    files = HealthFiles(tmp_path, ready_while_paused=True)
    files.publish(snap(State.PAUSED))
    assert (tmp_path / "readiness").exists()
    files.publish(snap(State.STOPPING))
    assert not (tmp_path / "readiness").exists()


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    files = HealthFiles(tmp_path)
    for i in range(50):
        files.publish(snap(State.RUNNING if i % 2 else State.PAUSED))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liveness", "readiness"]
