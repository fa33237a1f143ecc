"""The agent's report to the API: a listener that writes this replica's state to the
status ConfigMap, under its pod's name.

- The controller calls `publish` on its own thread for every change and every
  liveness heartbeat; this only keeps the latest snapshot and, when something
  an operator waits for changed (state, desired state, the request behind it,
  the source error), wakes the reporter's thread. The API call never runs on
  the controller's thread.
- The thread writes the report at once after such a change, and otherwise
  every `interval` seconds (the heartbeat that tells a live agent from a
  silent one), with a JSON merge patch of its own key only.
- A failed write is retried with tenacity's back-off (up to `max_backoff`
  seconds apart), each attempt with the latest snapshot: after an API-server
  outage the report that lands is the current one. One warning per kind of
  failure, one line when it works again.
- On stop, one last attempt (bounded by `request_timeout`) reports `stopped`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pulling_agent.kube.backoff import Stopped, api_retrying
from pulling_agent.kube.client import KubeClient, connect
from pulling_agent.kube.errors import KubeError
from pulling_agent.kube.status import patch_status
from pulling_agent.replica_status import REPORT_INTERVAL, ReplicaStatus
from pulling_agent.snapshot import Listener, Snapshot

log = logging.getLogger(__name__)


#: Seconds the last report at stop may take.
FINAL_WRITE_TIMEOUT = 2.0


def _wanted(snapshot: Snapshot) -> tuple[object, ...]:
    """What an operator waits for: a change of any of these is reported at once."""
    return (
        snapshot.state,
        snapshot.desired,
        snapshot.declared,
        snapshot.reason,
        snapshot.requested_by,
        snapshot.requested_at,
        snapshot.channel,
        snapshot.error,
    )


class StatusReporter(Listener):
    def __init__(
        self,
        *,
        configmap: str,
        namespace: str,
        pod: str,
        node: str = "",
        kubeconfig: str = "",
        interval: float = REPORT_INTERVAL,
        request_timeout: float = 10.0,
        max_backoff: float = 30.0,
        client_factory: Callable[[], KubeClient] | None = None,
    ) -> None:
        self.configmap = configmap
        self.pod = pod
        self._namespace = namespace
        self._node = node
        self._interval = interval
        self._request_timeout = request_timeout
        self._max_backoff = max_backoff
        self._client_factory = client_factory or (lambda: connect(kubeconfig))
        self._client: KubeClient | None = None
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None  # guarded by _lock
        self._sent: tuple[object, ...] | None = None  # what the last written report said
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._problem = ""
        #: Reports written (for tests and the benchmarks).
        self.written = 0

    @property
    def where(self) -> str:
        return f"{self._namespace or '?'}/{self.configmap}"

    # ------------------------------------------------- the controller's side
    def publish(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._latest = snapshot
            changed = _wanted(snapshot) != self._sent
        if changed:
            self._wake.set()

    # ------------------------------------------------------------ the thread
    def _connected(self) -> KubeClient:
        if self._client is None:
            self._client = self._client_factory()
            if not self._namespace:
                self._namespace = self._client.namespace
        return self._client

    def _write(self, timeout: float | None = None) -> None:
        """Write the latest snapshot as this pod's report; raises `KubeError`."""
        with self._lock:
            snapshot = self._latest
            self._wake.clear()  # a change published from now on wakes the thread again
        if snapshot is None:
            return
        client = self._connected()
        report = ReplicaStatus.from_snapshot(
            snapshot, pod=self.pod, node=self._node, heartbeat_seconds=self._interval
        )
        patch_status(
            client,
            self.configmap,
            self._namespace,
            {self.pod: report.to_json()},
            timeout=timeout or self._request_timeout,
        )
        with self._lock:
            self._sent = _wanted(snapshot)
        self.written += 1
        if self._problem:
            log.info("Status report to ConfigMap %s written again", self.where)
            self._problem = ""

    def _failed(self, error: KubeError) -> None:
        if self._stop.is_set():
            return
        if error.kind != self._problem:
            log.warning(
                "Cannot write the status report to ConfigMap %s (%s); retrying",
                self.where,
                error,
            )
        self._problem = error.kind

    def _write_with_backoff(self) -> None:
        api_retrying(self._stop, self._max_backoff, self._failed)(self._write)

    def _run(self) -> None:
        last = float("-inf")
        while not self._stop.is_set():
            self._wake.wait(timeout=max(self._interval - (time.monotonic() - last), 0.0))
            if self._stop.is_set():
                return
            try:
                self._write_with_backoff()
            except Stopped:
                return
            except Exception:  # a listener's thread must never die quietly
                log.exception("Status reporter error; retrying")
                self._stop.wait(self._max_backoff)
            last = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="status-report", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then one last, quick write of the latest snapshot (stopped):
        shutting down never waits long for the API."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._request_timeout)
        try:
            self._write(timeout=FINAL_WRITE_TIMEOUT)
        except KubeError as exc:
            log.info("Final status report not written: %s", exc)
        if self._client is not None:
            self._client.close()
