"""What one replica reports about itself to the API, and how the control side reads it back.

Every agent in a cluster writes one JSON document, under its pod's name, into
the status ConfigMap (`<control-configmap>-status`; see `pulling_agent.reporter`).
`pulling-agent ctl pause|resume` waits on these documents, `ctl status` prints
them, and `control/control-agent.sh` reads them with kubectl. The fields:

    pod, node         who reports (the downward API's metadata.name, spec.nodeName)
    state, since      line 1 of the liveness file, and when the agent entered it
    desired, declared where it is heading, and what the ConfigMap/file last asked for
    reason, requested_by, requested_at, channel
                      the operator request behind the state, and the control
                      channel that brought it (signal, file, configmap)
    batches, documents, errors
                      the liveness file's counters
    error             the source's current failure ("" while it answers)
    reported_at       when this document was written: a report older than
                      `STALE_HEARTBEATS` heartbeats is stale
    heartbeat_seconds the agent's report heartbeat, so readers know when it is stale
    lag               the processing lag as the liveness file has it
                      (`pulling_agent.lag`: backlog_documents, documents_per_second,
                      backlog_change_per_second, drain_eta_seconds, ...), "" unknown

More fields go into `ReplicaStatus`; readers ignore what they do not know and
default what is missing, so old and new agents and CLIs read each other's
reports.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from pulling_agent.snapshot import Snapshot
from pulling_agent.text import one_line
from pulling_agent.timestamps import precise, utc_now

#: Default seconds between two reports when nothing changes.
REPORT_INTERVAL = 60.0
#: A report older than this many heartbeats is stale (the agent or its API access is gone).
STALE_HEARTBEATS = 3
#: The status ConfigMap of a control ConfigMap is named `<control>` + this.
STATUS_SUFFIX = "-status"
#: The status ConfigMap's annotation naming the label selector of the release's agent pods
#: (the chart sets it, so `ctl` and the script need not be told the selector).
SELECTOR_ANNOTATION = "pulling-agent.io/agent-selector"
#: Longest free text kept in a report (reasons, requesters, errors).
TEXT_CHARS = 200


def status_configmap_name(control_configmap: str) -> str:
    """The status ConfigMap beside a control ConfigMap (`agent-control-status`)."""
    return f"{control_configmap}{STATUS_SUFFIX}"


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    pod: str
    state: str
    since: str = ""
    node: str = ""
    desired: str = ""
    declared: str = ""
    reason: str = ""
    requested_by: str = ""
    requested_at: str = ""
    channel: str = ""
    batches: int = 0
    documents: int = 0
    errors: int = 0
    error: str = ""
    reported_at: str = ""
    heartbeat_seconds: float = REPORT_INTERVAL
    lag: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Snapshot,
        *,
        pod: str,
        node: str = "",
        heartbeat_seconds: float = REPORT_INTERVAL,
        now: datetime | None = None,
    ) -> ReplicaStatus:
        c = snapshot.counters
        return cls(
            pod=pod,
            node=node,
            state=snapshot.state.value,
            since=precise(snapshot.since),
            desired=snapshot.desired.value,
            declared=snapshot.declared.value,
            reason=one_line(snapshot.reason, TEXT_CHARS),
            requested_by=one_line(snapshot.requested_by, TEXT_CHARS),
            requested_at=precise(snapshot.requested_at),
            channel=snapshot.channel,
            batches=c.batches,
            documents=c.documents,
            errors=c.errors,
            error=one_line(snapshot.error, TEXT_CHARS),
            reported_at=precise(now or utc_now()),
            heartbeat_seconds=heartbeat_seconds,
            lag=snapshot.lag.fields(),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, pod: str, text: str) -> ReplicaStatus:
        """A report as stored under `pod`; unreadable text is a report in state `unknown`."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return cls(pod=pod, state="unknown", error="unreadable report")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data or f.name == "pod":
                continue
            value = data[f.name]
            if f.name == "lag":
                if isinstance(value, dict):
                    values["lag"] = {str(k): one_line(str(v), TEXT_CHARS) for k, v in value.items()}
            elif f.type in ("int", "float"):
                try:
                    values[f.name] = float(value) if f.type == "float" else int(value)
                except (TypeError, ValueError):
                    continue
            else:
                values[f.name] = one_line(str(value), TEXT_CHARS)
        values.setdefault("state", "unknown")
        return cls(pod=pod, **values)

    # -------------------------------------------------------------- reading
    def reported(self) -> datetime | None:
        """When the report was written; None when it has no valid time."""
        return _parse(self.reported_at)

    def age_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the report was written; None when it has no valid time."""
        when = self.reported()
        return (
            None if when is None else max((now or utc_now()) - when, timedelta(0)).total_seconds()
        )

    def stale(self, now: datetime | None = None) -> bool:
        age = self.age_seconds(now)
        return age is None or age > STALE_HEARTBEATS * self.heartbeat_seconds

    def acknowledges(self, state: str, requested_at: datetime) -> bool:
        """In `state`, for a request made at `requested_at` or later."""
        at = _parse(self.requested_at)
        return self.state == state and at is not None and at >= requested_at

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(value: str) -> datetime | None:
    """An ISO-8601 time with a zone (`Z` included); None when absent or invalid."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
