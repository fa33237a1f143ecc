"""`pulling-agent pause|resume|status` against an agent on the same host.

Pause and resume write the control directory the way a ConfigMap volume
looks (`state`, `reason`, `requested-by`, `requested-at`), so the request
survives a restart, then signal the agent's pid (from its liveness file) so
it takes effect at once, and wait until the liveness file shows the state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulling_agent.commands import Action
from pulling_agent.control_words import one_line
from pulling_agent.health import (
    READINESS,
    HealthFileError,
    LivenessRecord,
    read_liveness,
    write_atomically,
)

SIGNAL_FOR = {Action.PAUSE: signal.SIGUSR1, Action.RESUME: signal.SIGUSR2}
STATE_WORD = {Action.PAUSE: "pause", Action.RESUME: "running"}
EXPECTED_STATE = {Action.PAUSE: "paused", Action.RESUME: "running"}


class LocalControlError(Exception):
    """The local agent could not be reached or did not reach the state."""


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ControlResult:
    file_written: bool
    file_error: str
    signalled_pid: int | None
    state: str


def write_control_dir(control_dir: Path, action: Action, reason: str, by: str) -> None:
    control_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    # Metadata first: the state file is what the agent reacts to.
    for key, value in (("reason", reason), ("requested-by", by), ("requested-at", now)):
        write_atomically(control_dir / key, value + "\n")
    write_atomically(control_dir / "state", STATE_WORD[action] + "\n")


def agent_pid(health_dir: Path) -> int | None:
    try:
        record = read_liveness(health_dir)
    except HealthFileError:
        return None
    pid = record.get_int("pid")
    return pid if pid_alive(pid) else None


def control_local_agent(
    action: Action,
    *,
    control_dir: Path,
    health_dir: Path,
    reason: str,
    by: str,
    timeout: float,
) -> ControlResult:
    file_error = ""
    try:
        write_control_dir(control_dir, action, reason, by)
    except OSError as exc:
        file_error = f"cannot write {control_dir}: {exc.strerror}"
    pid = agent_pid(health_dir)
    if pid is None:
        if file_error:
            raise LocalControlError(f"{file_error}, and no running agent found in {health_dir}")
        return ControlResult(True, "", None, "")
    os.kill(pid, SIGNAL_FOR[action])
    expected = EXPECTED_STATE[action]
    deadline = time.monotonic() + timeout
    state = ""
    # Done when the state is reached and, if we wrote a reason, it shows (the
    # signal may land before the agent reads the files that carry the reason).
    want_reason = one_line(reason) if not file_error else ""
    while True:
        with contextlib.suppress(HealthFileError):
            record = read_liveness(health_dir)
            state = record.state
            if state == expected and record.fields.get("reason", "") == want_reason:
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if state != expected:
        raise LocalControlError(
            f"agent (pid {pid}) is {state or 'unknown'}, not {expected}, after {timeout:g}s "
            "(a pause waits for the current batch to finish)"
        )
    return ControlResult(not file_error, file_error, pid, state)


def local_status(health_dir: Path, stale_after: float) -> dict[str, Any]:
    """The local agent's state, health and counters, from its health files."""
    try:
        record: LivenessRecord | None = read_liveness(health_dir)
    except HealthFileError as exc:
        return {"state": "UNHEALTHY", "problem": str(exc), "health_dir": str(health_dir)}
    assert record is not None
    age = (
        (datetime.now(UTC) - record.written_at).total_seconds()
        if record.written_at and record.written_at.tzinfo
        else None
    )
    pid = record.get_int("pid")
    alive = pid_alive(pid)
    problem = ""
    if record.state != "stopped" and not alive:
        problem = f"agent process {pid} is not running"
    elif age is None or age > stale_after:
        problem = f"liveness file is stale ({age:.0f}s old)" if age else "liveness file undated"
    state = record.state.upper()
    if problem and record.state != "stopped":
        state = "UNHEALTHY"
    return {
        "state": state,
        "reported_state": record.state,
        "ready": (health_dir / READINESS).exists(),
        "updated": record.written_at.isoformat() if record.written_at else "",
        "age_seconds": round(age, 1) if age is not None else None,
        "pid": pid,
        "pid_alive": alive,
        "problem": problem,
        "batches": record.get_int("batches"),
        "documents": record.get_int("documents"),
        "errors": record.get_int("errors"),
        **{
            key: record.fields.get(key, "")
            for key in (
                "desired_state",
                "declared_state",
                "paused_since",
                "reason",
                "requested_by",
                "requested_at",
                "command_source",
                "error",
            )
        },
    }
