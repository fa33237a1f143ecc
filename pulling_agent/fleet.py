"""The fleet as the control side sees it: the release's pods beside their reports.

`pulling-agent ctl` lists the agent pods (label selector) and reads the status
ConfigMap; each pod becomes one `Replica`. Which pods count:

- a pod being deleted (a rollout, a scale-down) is no longer a replica;
- a pod that has not started (phase Pending) runs no agent, so it neither
  pulls nor can answer: it is shown, never waited for (it reads the
  ConfigMap when it starts, and starts paused if that says pause);
- every other pod must report, and a pause or resume is acknowledged when
  each reports the state for a request made at the requested time or later.

Reports of pods that no longer exist are never counted, and `prune` removes
them (only those written before the pods were listed, so that a pod created
meanwhile keeps its first report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pulling_agent import defaults
from pulling_agent.kube.client import KubeClient
from pulling_agent.kube.errors import UNREACHABLE, KubeError
from pulling_agent.kube.pods import PodInfo, list_pods
from pulling_agent.kube.status import patch_status, read_status
from pulling_agent.replica_status import SELECTOR_ANNOTATION, ReplicaStatus
from pulling_agent.timestamps import utc_now

NOT_STARTED_PHASES = frozenset({"Pending"})
GONE_PHASES = frozenset({"Terminating", "Succeeded", "Failed"})
#: Reports of vanished pods younger than this are left alone by `prune` (clock skew).
PRUNE_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Replica:
    """One agent pod and its report (None: it has not reported)."""

    pod: PodInfo
    report: ReplicaStatus | None

    @property
    def started(self) -> bool:
        return self.pod.phase not in NOT_STARTED_PHASES

    def acknowledges(self, state: str, requested_at: datetime) -> bool:
        return self.report is not None and self.report.acknowledges(state, requested_at)

    def describe(self, now: datetime | None = None) -> str:
        """What it reports instead, for a failed wait: 'running since ..., requested ...'."""
        if self.report is None:
            return f"no report (pod {self.pod.phase})"
        r = self.report
        text = f"reports {r.state}"
        if r.since:
            text += f" since {r.since}"
        if r.requested_at:
            text += f" (request of {r.requested_at}"
            text += f" by {r.requested_by})" if r.requested_by else ")"
        age = r.age_seconds(now)
        if r.stale(now):
            text += f", report STALE ({age:.0f}s old)" if age is not None else ", report undated"
        if r.error:
            text += f", source error: {r.error}"
        return text

    def row(self, now: datetime | None = None) -> dict[str, Any]:
        """One row of `ctl status` (and its JSON): the report's fields, the pod's, the age."""
        report = self.report.as_dict() if self.report else {}
        age = self.report.age_seconds(now) if self.report else None
        lag = report.pop("lag", None) or {}
        return {
            **report,
            **lag,
            "pod": self.pod.name,
            "node": (report.get("node") or self.pod.node),
            "phase": self.pod.phase,
            "ready": self.pod.ready,
            "state": report.get("state", ""),
            "reported": self.report is not None,
            "report_age_seconds": round(age, 1) if age is not None else None,
            "stale": bool(self.report and self.report.stale(now)),
        }


@dataclass(frozen=True)
class Fleet:
    """The release's replicas at one moment, and the reports that belong to no pod."""

    selector: str
    replicas: list[Replica]
    orphans: list[ReplicaStatus] = field(default_factory=list)
    listed_at: datetime = field(default_factory=utc_now)
    reports_on: bool = True  # the status ConfigMap exists

    @property
    def started(self) -> list[Replica]:
        return [r for r in self.replicas if r.started]

    @property
    def not_started(self) -> list[Replica]:
        return [r for r in self.replicas if not r.started]

    def missing(self, state: str, requested_at: datetime) -> list[Replica]:
        """The started replicas that do not (yet) acknowledge `state` for the request."""
        return [r for r in self.started if not r.acknowledges(state, requested_at)]


def read_fleet(
    client: KubeClient,
    namespace: str,
    status_configmap: str,
    *,
    selector: str = "",
    timeout: float,
) -> Fleet:
    """The pods (by `selector`; default: the status ConfigMap's annotation, else the guide's
    `app=pulling-agent`) and their reports. Raises `KubeError`."""
    status = read_status(client, status_configmap, namespace, timeout=timeout)
    selector = selector or status.annotations.get(SELECTOR_ANNOTATION) or defaults.POD_SELECTOR
    listed_at = utc_now()
    pods = [
        p
        for p in list_pods(client, namespace, selector, timeout=timeout)
        if p.phase not in GONE_PHASES
    ]
    reports = {pod: ReplicaStatus.from_json(pod, text) for pod, text in status.reports.items()}
    names = {p.name for p in pods}
    return Fleet(
        selector=selector,
        replicas=[Replica(p, reports.get(p.name)) for p in pods],
        orphans=[r for pod, r in sorted(reports.items()) if pod not in names],
        listed_at=listed_at,
        reports_on=status.exists,
    )


def prune(
    client: KubeClient, namespace: str, status_configmap: str, fleet: Fleet, *, timeout: float
) -> list[str]:
    """Remove the reports of pods that no longer exist; returns their names. Needs `patch`.

    A report written after the pods were listed (less `PRUNE_GRACE` for clocks) is kept:
    its pod may have been created meanwhile.
    """
    cutoff = fleet.listed_at - PRUNE_GRACE
    gone = [r.pod for r in fleet.orphans if (when := r.reported()) is None or when < cutoff]
    if gone:
        patch_status(client, status_configmap, namespace, dict.fromkeys(gone), timeout=timeout)
    return gone


def wait_for_state(
    read: Callable[[], Fleet],
    state: str,
    requested_at: datetime,
    *,
    timeout: float,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Fleet:
    """Read the fleet until every started replica acknowledges `state` for the request made
    at `requested_at`, or `timeout` seconds pass; returns the last reading (check
    `missing`). A `KubeError` from `read` ends the wait, unless the API server is only
    unreachable and the deadline is not reached."""
    deadline = clock() + timeout
    fleet: Fleet | None = None
    while True:
        try:
            fleet = read()
        except KubeError as exc:
            # The API server briefly away: keep trying until the deadline.
            if exc.kind != UNREACHABLE or clock() >= deadline:
                raise
        else:
            if not fleet.missing(state, requested_at):
                return fleet
        if clock() >= deadline and fleet is not None:
            return fleet
        sleep(min(interval, max(deadline - clock(), 0.0)))


def stamp_floor(when: datetime) -> datetime:
    """`when` cut to the second: what `requested-at` (to the second) holds of it."""
    return when.replace(microsecond=0)
