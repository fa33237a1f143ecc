"""`pulling-agent pause|resume|status` against an agent on the same host.

Pause and resume write the control directory the way a ConfigMap volume
looks (`state`, `reason`, `requested-by`, `requested-at`), so the request
survives a restart, then signal the agent's pid (from its liveness file) so
it takes effect at once, and (unless --no-wait) wait until the liveness
file shows the state: the same words, waiting and exit codes as `ctl pause`
and `control/control-agent.sh pause` (see `pulling_agent.cli.exits`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from pulling_agent.atomic_write import write_atomically
from pulling_agent.cli import exits
from pulling_agent.cli.options import (
    FiniteFloatRange,
    by_option,
    control_dir_option,
    health_dir_option,
    option,
    output_option,
    reason_option,
    timeout_option,
    wait_option,
)
from pulling_agent.commands import Action
from pulling_agent.health import (
    COUNTER_KEYS,
    READINESS,
    TEXT_KEYS,
    HealthFileError,
    LivenessRecord,
    read_liveness,
)
from pulling_agent.instance import LOCK_NAME, running_agent, why_unresponsive
from pulling_agent.lag import Lag
from pulling_agent.state import State
from pulling_agent.text import one_line
from pulling_agent.timestamps import precise, request_stamp, utc_now
from pulling_agent.vocabulary import (
    REASON_KEY,
    REQUESTED_AT_KEY,
    REQUESTED_BY_KEY,
    STATE_KEY,
    VERBS,
)


class LocalControlError(Exception):
    """The local agent could not be reached (exit 1)."""


class NotVerified(LocalControlError):
    """The request is written and signalled, but the agent did not report the state (exit 3)."""


@dataclass
class ControlResult:
    file_written: bool
    file_error: str
    signalled_pid: int | None
    state: str


def write_control_dir(control_dir: Path, action: Action, reason: str, by: str) -> None:
    control_dir.mkdir(parents=True, exist_ok=True)
    # Metadata first: the state file is what the agent reacts to.
    for key, value in (
        (REASON_KEY, reason),
        (REQUESTED_BY_KEY, by),
        (REQUESTED_AT_KEY, request_stamp()),
    ):
        write_atomically(control_dir / key, value + "\n")
    write_atomically(control_dir / STATE_KEY, VERBS[action].word + "\n")


def agent_pid(health_dir: Path) -> int | None:
    """The pid of the agent that holds `health_dir` now (never a stranger's:
    see `pulling_agent.instance`), or None when no agent does."""
    try:
        agent = running_agent(health_dir)
    except OSError as exc:
        raise LocalControlError(f"cannot read {health_dir / LOCK_NAME}: {exc.strerror}") from None
    return agent.pid if agent else None


def check_responsive(pid: int, health_dir: Path) -> LivenessRecord | None:
    """Fail now, not after the timeout, when the agent cannot act on a
    command; else its liveness record (None if unreadable)."""
    if problem := why_unresponsive(pid):
        raise LocalControlError(problem)
    record = read_liveness_or_none(health_dir)
    if record is not None and record.state in (State.STOPPING, State.STOPPED):
        raise LocalControlError(f"agent (pid {pid}) is {record.state}; it takes no more commands")
    if agent_pid(health_dir) != pid:
        raise LocalControlError(f"agent (pid {pid}) has exited")
    return record


def signal_agent(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except PermissionError as exc:
        raise LocalControlError(
            f"not allowed to signal the agent (pid {pid}): {exc.strerror} (run as the agent's user)"
        ) from None
    except ProcessLookupError:
        raise LocalControlError(f"agent (pid {pid}) exited before it could be signalled") from None


def read_liveness_or_none(health_dir: Path) -> LivenessRecord | None:
    try:
        return read_liveness(health_dir)
    except HealthFileError:
        return None


def control_local_agent(
    action: Action,
    *,
    control_dir: Path,
    health_dir: Path,
    reason: str,
    by: str,
    timeout: float,
    wait: bool = True,
) -> ControlResult:
    verb = VERBS[action]
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
    check_responsive(pid, health_dir)
    signal_agent(pid, verb.signal)
    if not wait:
        return ControlResult(not file_error, file_error, pid, "")
    expected = verb.state.value
    deadline = time.monotonic() + timeout
    state = ""
    # Done when the state is reached and, if we wrote a reason, it shows (the
    # signal may land before the agent reads the files that carry the reason).
    want_reason = one_line(reason) if not file_error else ""
    while True:
        record = check_responsive(pid, health_dir)
        if record is not None:
            state = record.state
            if state == expected and record.fields.get("reason", "") == want_reason:
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if state != expected:
        hint = " (a pause waits for the current batch to finish)" if action is Action.PAUSE else ""
        raise NotVerified(
            f"agent (pid {pid}) is {state or 'unknown'}, not {expected}, after {timeout:g}s{hint}"
        )
    return ControlResult(not file_error, file_error, pid, state)


def local_status(health_dir: Path, stale_after: float) -> dict[str, Any]:
    """The local agent's state, health and counters, from its health files."""
    try:
        record = read_liveness(health_dir)
    except HealthFileError as exc:
        return {"state": "UNHEALTHY", "problem": str(exc), "health_dir": str(health_dir)}
    age = (
        (utc_now() - record.written_at).total_seconds()
        if record.written_at and record.written_at.tzinfo
        else None
    )
    pid = record.get_int("pid")
    try:
        agent = running_agent(health_dir)
    except OSError:
        agent = None
    alive = agent is not None and agent.pid == pid
    stopped = record.state == State.STOPPED.value
    problem = ""
    if not stopped and not alive:
        problem = f"agent process {pid} is not running"
    elif not stopped and (unresponsive := why_unresponsive(pid)):
        problem = unresponsive
    elif age is None or age > stale_after:
        problem = f"liveness file is stale ({age:.0f}s old)" if age else "liveness file undated"
    state = record.state.upper()
    if problem and not stopped:
        state = "UNHEALTHY"
    return {
        "state": state,
        "reported_state": record.state,
        "ready": (health_dir / READINESS).exists(),
        "updated": precise(record.written_at),
        "age_seconds": round(age, 1) if age is not None else None,
        "pid": pid,
        "pid_alive": alive,
        "problem": problem,
        **{key: record.get_int(key) for key in COUNTER_KEYS},
        **{key: record.fields.get(key, "") for key in TEXT_KEYS},
        **Lag.from_fields(record.fields).as_dict(),
    }


# ------------------------------------------------------------------ commands
def _control(
    action: Action,
    control_dir: Path,
    health_dir: Path,
    reason: str,
    by: str,
    timeout: float,
    wait: bool,
) -> None:
    verb = VERBS[action]
    click.echo(f"{verb.doing} agent...")
    try:
        result = control_local_agent(
            action,
            control_dir=control_dir,
            health_dir=health_dir,
            reason=reason,
            by=by,
            timeout=timeout,
            wait=wait,
        )
    except NotVerified as exc:
        click.echo(f"✗ {exc}", err=True)
        sys.exit(exits.UNVERIFIED)
    except LocalControlError as exc:
        raise click.ClickException(str(exc)) from None
    if result.file_written:
        click.echo(f"Control file {control_dir / STATE_KEY} updated")
    else:
        click.echo(
            f"Warning: {result.file_error}; the request will not survive a restart", err=True
        )
    if result.signalled_pid is None:
        click.echo(
            f"No running agent found in {health_dir}; it will read the control file when it starts"
        )
        return
    click.echo(f"{verb.signal.name} signal sent to pid {result.signalled_pid}")
    if not wait:
        click.echo("Not waiting (--no-wait); check with: pulling-agent status")
        return
    click.echo(f"✓ Agent successfully {verb.done}")


def control_command(action: Action) -> click.Command:
    verb = VERBS[action]

    @reason_option
    @by_option
    @wait_option
    @timeout_option
    @control_dir_option
    @health_dir_option
    def command(
        reason: str, by: str, wait: bool, timeout: float, control_dir: Path, health_dir: Path
    ) -> None:
        _control(action, control_dir, health_dir, reason, by, timeout, wait)

    command.__doc__ = f"{verb.word.capitalize()} the agent running on this host."
    return click.command(verb.word)(command)


pause = control_command(Action.PAUSE)
resume = control_command(Action.RESUME)


@click.command()
@health_dir_option
@output_option
@option(
    "--stale-after",
    type=FiniteFloatRange(0),
    default=60.0,
    show_default=True,
    help="A liveness file older than this means UNHEALTHY.",
)
def status(health_dir: Path, output: str, stale_after: float) -> None:
    """The local agent's state and counters, from its health files."""
    data = local_status(health_dir, stale_after)
    if output == "json":
        click.echo(json.dumps(data))
    else:
        click.echo(f"State:        {data['state']}")
        if data.get("problem"):
            click.echo(f"Problem:      {data['problem']}")
        for label, key in (
            ("Desired", "desired_state"),
            ("Declared", "declared_state"),
            ("Ready", "ready"),
            ("Paused since", "paused_since"),
            ("Reason", "reason"),
            ("Requested by", "requested_by"),
            ("Requested at", "requested_at"),
            ("Channel", "channel"),
            ("Source error", "error"),
            ("Updated", "updated"),
            ("PID", "pid"),
        ):
            value = data.get(key)
            if isinstance(value, bool):
                value = "yes" if value else "no"
            if value not in (None, ""):
                click.echo(f"{label + ':':<14}{value}")
        for label, text in Lag.from_dict(data).describe():
            click.echo(f"{label + ':':<14}{text}")
        if "batches" in data:
            click.echo(
                f"batches={data['batches']} documents={data['documents']} errors={data['errors']}"
            )
    if data["state"] == "UNHEALTHY":
        sys.exit(1)
