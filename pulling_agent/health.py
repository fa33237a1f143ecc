"""Health files: what probes, operators and `pulling-agent status` read.

- `<dir>/readiness` exists iff the agent is RUNNING (and its source is
  reachable), unless `ready_while_paused` keeps it during a pause.
- `<dir>/liveness`: line 1 the state in lower case, line 2 the ISO-8601 UTC
  time of the write, then `key=value` lines. Rewritten atomically on every
  change and on every heartbeat, paused or not: a stale file means a stuck
  agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pulling_agent.atomic_write import write_atomically
from pulling_agent.lag import LIVENESS_KEYS as LAG_KEYS
from pulling_agent.snapshot import Listener, Snapshot
from pulling_agent.state import State
from pulling_agent.text import one_line
from pulling_agent.timestamps import precise, utc_now

READINESS = "readiness"
LIVENESS = "liveness"

#: The liveness file's `key=value` lines, in order. The first three are the
#: original agent's, which operators grep; then these, the lag's (`LAG_KEYS`,
#: pulling_agent/lag.py); `pid` comes last.
COUNTER_KEYS = ("batches", "documents", "errors")
TEXT_KEYS = (
    "desired_state",
    "declared_state",
    "paused_since",
    "reason",
    "requested_by",
    "requested_at",
    "channel",
    "error",
)


def render_liveness(snapshot: Snapshot, now: datetime | None = None) -> str:
    c = snapshot.counters
    values: dict[str, object] = {
        "batches": c.batches,
        "documents": c.documents,
        "errors": c.errors,
        "desired_state": snapshot.desired.value,
        "declared_state": snapshot.declared.value,
        "paused_since": precise(snapshot.paused_since),
        "reason": one_line(snapshot.reason),
        "requested_by": one_line(snapshot.requested_by),
        "requested_at": precise(snapshot.requested_at),
        "channel": snapshot.channel,
        "error": one_line(snapshot.error),
        **snapshot.lag.fields(),
        "pid": snapshot.pid,
    }
    lines = [snapshot.state.value, precise(now or utc_now())]
    lines += [f"{key}={values[key]}" for key in (*COUNTER_KEYS, *TEXT_KEYS, *LAG_KEYS, "pid")]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LivenessRecord:
    """The parsed liveness file."""

    state: str
    written_at: datetime | None
    fields: dict[str, str] = field(default_factory=dict)

    def get_int(self, key: str) -> int:
        try:
            return int(self.fields.get(key, "0"))
        except ValueError:
            return 0


class HealthFileError(Exception):
    """The health directory has no readable liveness file."""


def parse_liveness(text: str) -> LivenessRecord:
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise HealthFileError("liveness file is empty")
    written_at: datetime | None = None
    if len(lines) > 1:
        try:
            written_at = datetime.fromisoformat(lines[1].strip())
        except ValueError:
            written_at = None
    fields: dict[str, str] = {}
    for line in lines[2:]:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return LivenessRecord(lines[0].strip(), written_at, fields)


def read_liveness(health_dir: Path) -> LivenessRecord:
    path = health_dir / LIVENESS
    try:
        return parse_liveness(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        raise HealthFileError(f"no agent health file at {path} (is the agent running?)") from None
    except OSError as exc:
        raise HealthFileError(f"cannot read {path}: {exc.strerror}") from None


class HealthFiles(Listener):
    def __init__(self, health_dir: Path, *, ready_while_paused: bool = False) -> None:
        self.dir = health_dir
        self.ready_while_paused = ready_while_paused
        self.dir.mkdir(parents=True, exist_ok=True)
        # A readiness file left by a process that died without a word (kill -9,
        # a crash) must not make this one look ready while it starts.
        (self.dir / READINESS).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"health files in {self.dir}"

    def _ready(self, snapshot: Snapshot) -> bool:
        if self.ready_while_paused and snapshot.state is State.PAUSED:
            return not snapshot.error
        return snapshot.ready

    def publish(self, snapshot: Snapshot) -> None:
        readiness = self.dir / READINESS
        ready = self._ready(snapshot)
        if not ready:
            readiness.unlink(missing_ok=True)
        write_atomically(self.dir / LIVENESS, render_liveness(snapshot))
        if ready and not readiness.exists():
            write_atomically(readiness, f"{snapshot.state.value}\n")
