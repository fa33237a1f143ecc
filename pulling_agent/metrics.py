"""Prometheus metrics: a listener on the controller and the worker's tallies."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pulling_agent.commands import Command, CommandResult
from pulling_agent.snapshot import Listener, Snapshot
from pulling_agent.state import Desired, State
from pulling_agent.text import one_line

log = logging.getLogger(__name__)

#: Longest reason or requester kept as a label value.
LABEL_CHARS = 80
#: The labels of `pulling_agent_batches_total` and `pulling_agent_documents_total`.
BATCH_OUTCOMES = ("complete", "interrupted")
DOCUMENT_OUTCOMES = ("done", "failed", "retried", "released")


class Metrics(Listener):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Enum gauges: one series per value, 1 for the current one.
        self.state = Gauge(
            "pulling_agent_state", "Current state (1 = current)", ["state"], registry=r
        )
        self.declared = Gauge(
            "pulling_agent_declared_state",
            "State the control ConfigMap or file asks for (1 = current); a signal "
            "changes pulling_agent_state, not this",
            ["state"],
            registry=r,
        )
        self.documents = Counter(
            "pulling_agent_documents",
            "Documents handled, by outcome (done, failed, retried, released)",
            ["outcome"],
            registry=r,
        )
        self.batches = Counter(
            "pulling_agent_batches", "Batches handled, by outcome", ["outcome"], registry=r
        )
        self.batch_duration = Histogram(
            "pulling_agent_batch_duration_seconds",
            "Time from claim to ack of one batch",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.commands = Counter(
            "pulling_agent_control_commands",
            "Control commands, by channel, command and result (applied, noop, refused)",
            ["channel", "command", "result"],
            registry=r,
        )
        self.control_errors = Counter(
            "pulling_agent_control_errors",
            "Control input ignored (invalid content, unreadable file, API errors)",
            ["channel", "kind"],
            registry=r,
        )
        self.backlog = Gauge(
            "pulling_agent_backlog_documents", "Documents waiting in the source", registry=r
        )
        self.paused_since = Gauge(
            "pulling_agent_paused_since_seconds",
            "Unix time the current pause began; 0 when not paused",
            registry=r,
        )
        self.last_batch = Gauge(
            "pulling_agent_last_batch_timestamp_seconds",
            "Unix time of the last finished batch",
            registry=r,
        )
        self.source_up = Gauge(
            "pulling_agent_source_up", "1 when the source answered its last call", registry=r
        )
        self.pause_info = Gauge(
            "pulling_agent_control_info",
            "1 for the current control request's reason and requester",
            ["reason", "requested_by", "channel"],
            registry=r,
        )
        self.source_up.set(1)
        self._info_labels: tuple[str, str, str] | None = None
        self._batch_children: dict[str, Counter] = {}
        self._document_children: dict[str, Counter] = {}
        # Every outcome exported at 0 from the start: rate() and increase() count
        # the first batch, and the stall alert sees an agent that never finished one.
        for outcome in BATCH_OUTCOMES:
            self._batch_child(outcome)
        for outcome in DOCUMENT_OUTCOMES:
            self._document_child(outcome)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's port
        start_http_server(port, addr=address, registry=self.registry)
        log.info("Metrics on :%d/metrics", port)

    # --------------------------------------------------- controller listener
    def describe(self) -> str:
        return "metrics"

    def publish(self, snapshot: Snapshot) -> None:
        for state in State:
            self.state.labels(state.value).set(1 if state is snapshot.state else 0)
        for declared in Desired:
            self.declared.labels(declared.value).set(1 if declared is snapshot.declared else 0)
        self.paused_since.set(snapshot.paused_since.timestamp() if snapshot.paused_since else 0)
        self.source_up.set(0 if snapshot.error else 1)
        # Reason and requester are free text: keep only the current pair, cut short.
        labels = (
            one_line(snapshot.reason, LABEL_CHARS),
            one_line(snapshot.requested_by, LABEL_CHARS),
            snapshot.channel,
        )
        if labels != self._info_labels:
            if self._info_labels is not None:
                self.pause_info.remove(*self._info_labels)
            self.pause_info.labels(*labels).set(1)
            self._info_labels = labels

    def command_handled(self, command: Command, result: CommandResult) -> None:
        self.commands.labels(command.channel, command.action.value, result.value).inc()

    # ----------------------------------------------------- worker's tallies
    def batch(
        self, outcome: str, duration: float, done: int, failed: int, retried: int, released: int
    ) -> None:
        """Once a batch, on the worker's hot path: labelled children are cached."""
        self._batch_child(outcome).inc()
        self.batch_duration.observe(duration)
        for name, count in zip(DOCUMENT_OUTCOMES, (done, failed, retried, released), strict=True):
            if count:
                self._document_child(name).inc(count)
        self.last_batch.set(time.time())

    def _batch_child(self, outcome: str) -> Counter:
        child = self._batch_children.get(outcome)
        if child is None:
            child = self._batch_children[outcome] = self.batches.labels(outcome)
        return child

    def _document_child(self, outcome: str) -> Counter:
        child = self._document_children.get(outcome)
        if child is None:
            child = self._document_children[outcome] = self.documents.labels(outcome)
        return child

    def backlog_observed(self, backlog: int) -> None:
        self.backlog.set(backlog)

    def control_error(self, channel: str, kind: str) -> None:
        self.control_errors.labels(channel, kind).inc()
