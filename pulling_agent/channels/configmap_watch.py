"""The ConfigMap watch channel: the control ConfigMap through the Kubernetes API.

The kubelet copies a ConfigMap into a mounted volume only when it next syncs
the pod (the sync period plus its cache delay: a minute or more by default).
This channel watches the one ConfigMap through the API instead, so a change
reaches the agent in well under a second. The control file keeps working
beside it, and covers the time the API is away.

- List, then watch from the list's resourceVersion, with the field selector
  `metadata.name=<name>` (what an RBAC rule with `resourceNames` allows for
  list and watch). The watch is renewed from the last resourceVersion when
  the server ends it; a 410 Gone (the version is too old) lists again.
- Any other error lists again, backing off with tenacity. While the API is
  unreachable there is one warning (per outage, not per retry) and the state
  stays as it is; the change made meanwhile arrives with the list after
  reconnecting.
- A request is the tuple (state, reason, requested-by, requested-at): when it
  changes, and `state` is a control word, a `Command` (channel `configmap`)
  carrying reason, requester and time goes on the queue. The same request seen
  again (a re-list after an outage, a change to other keys) is not re-applied.
  The action is recorded in the record shared with the control file, so the
  kubelet's late copy of this change in the file does not apply it again.
- An invalid `state`, a ConfigMap without `state`, or one deleted: a warning,
  no state change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pulling_agent.channels.observed import ControlRequest, ObservedRequest
from pulling_agent.commands import ChannelName, Command, CommandQueue
from pulling_agent.kube.backoff import Stopped, api_retrying
from pulling_agent.kube.client import KubeClient, connect
from pulling_agent.kube.configmap import ConfigMapWatcher, ControlData, list_configmap
from pulling_agent.kube.errors import GONE, UNREACHABLE, KubeError
from pulling_agent.vocabulary import STATE_KEY, ControlWordError, parse_control_text

log = logging.getLogger(__name__)


class RequestTracker:
    """Turns the ConfigMap's content into Commands: one for each new request.

    A request is the tuple (state, reason, requested-by, requested-at); the
    same tuple seen again (a re-list, a change to other keys or labels) is not
    applied again, a changed one is, even when its state is the one already
    observed (a new pause request after an operator's SIGUSR2).
    """

    def __init__(
        self, observed: ObservedRequest, on_error: Callable[[str], None] = lambda kind: None
    ) -> None:
        self._observed = observed
        self._on_error = on_error
        self._last: tuple[str | None, str, str, str] | None = None
        self._missing = False

    def deleted(self, where: str) -> None:
        log.warning("ConfigMap %s was deleted; state unchanged", where)
        self._missing = True

    def command(self, data: ControlData | None, where: str) -> Command | None:
        """The Command for the ConfigMap's content (None: absent), if it is a new request."""
        if data is None:
            if not self._missing:
                log.warning(
                    "ConfigMap %s not found; state unchanged (waiting for it to be created)", where
                )
                self._missing = True
            return None
        self._missing = False
        if data.request == self._last:
            return None
        self._last = data.request
        if data.state is None:
            log.warning("ConfigMap %s has no %r key; state unchanged", where, STATE_KEY)
            return None
        try:
            action = parse_control_text(data.state)
        except ControlWordError as exc:
            log.warning("Ignoring ConfigMap %s: %s", where, exc)
            self._on_error("invalid")
            return None
        request = ControlRequest.of(
            action, data.state, data.reason, data.requested_by, data.requested_at
        )
        if not self._observed.observe(request):
            log.debug("ConfigMap %s says %s, already observed", where, action.value)
            return None
        command = request.command(ChannelName.CONFIGMAP)
        log.info("ConfigMap command detected: %s", action.value, extra=command.log_fields())
        return command


class ConfigMapChannel:
    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        kubeconfig: str,
        queue: CommandQueue,
        observed: ObservedRequest,
        context: str = "",
        start_timeout: float = 5.0,
        request_timeout: float = 10.0,
        watch_timeout: int = 300,
        max_backoff: float = 5.0,
        healthy_after: float = 10.0,
        on_error: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.name = name
        self._namespace = namespace
        self._kubeconfig = kubeconfig
        self._context = context
        self._queue = queue
        self._start_timeout = start_timeout
        self._request_timeout = request_timeout
        self._watch_timeout = watch_timeout
        self._max_backoff = max_backoff
        self._healthy_after = healthy_after
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: KubeClient | None = None
        self._watcher: ConfigMapWatcher | None = None
        self._version = ""  # resourceVersion to watch from; "" means list first
        self._requests = RequestTracker(observed, on_error)
        self._problem = ""  # the kind of the current failure, warned about once

    @property
    def where(self) -> str:
        return f"{self._namespace or '?'}/{self.name}"

    def _failed(self, error: KubeError) -> None:
        """Warn once per kind of failure (an outage is one warning, not one per retry)."""
        if self._stop.is_set():  # stop() closed the connection under a request
            return
        if error.kind != self._problem:
            what = (
                "Kubernetes API unreachable"
                if error.kind == UNREACHABLE
                else "ConfigMap watch failing"
            )
            log.warning(
                "%s for ConfigMap %s (%s); state unchanged, the control file still works; retrying",
                what,
                self.where,
                error,
            )
            self._on_error(f"api_{error.kind}")
        self._problem = error.kind

    def _recovered(self) -> None:
        if self._problem:
            log.info("ConfigMap %s: watching again", self.where)
        self._problem = ""

    # ------------------------------------------------------------------- API
    def _connected(self) -> KubeClient:
        if self._client is None:
            self._client = connect(self._kubeconfig, self._context)
            if not self._namespace:
                self._namespace = self._client.namespace
        return self._client

    def _list(self, timeout: float) -> Command | None:
        """List the ConfigMap; remember the version to watch from."""
        client = self._connected()
        data, version = list_configmap(client, self.name, self._namespace, timeout=timeout)
        self._version = version
        self._recovered()
        return self._requests.command(data, self.where)

    def read_command(self) -> Command | None:
        """One list at start, with a short timeout: the agent starts paused
        before any batch when the ConfigMap says so; if the API is away, the
        control file decides and the thread keeps trying."""
        try:
            return self._list(self._start_timeout)
        except KubeError as exc:
            self._failed(exc)
            return None

    def _watch(self) -> None:
        """Watch from the last version until stopped; raises `KubeError`."""
        self._watcher = ConfigMapWatcher(self._connected(), self.name, self._namespace)
        while not self._stop.is_set():  # stop() may come between two watches
            for event in self._watcher.events(
                self._version,
                timeout_seconds=self._watch_timeout,
                connect_timeout=self._request_timeout,
            ):
                if event.resource_version:
                    self._version = event.resource_version
                if event.type == "DELETED":
                    self._requests.deleted(self.where)
                elif event.data is not None:
                    command = self._requests.command(event.data, self.where)
                    if command is not None:
                        self._queue.put(command)

    def _session(self) -> None:
        """List (unless a version is known) and watch; raise to back off."""
        if not self._version:
            command = self._list(self._request_timeout)
            if command is not None:
                self._queue.put(command)
        started = time.monotonic()
        try:
            self._watch()
        except KubeError as exc:
            self._version = ""
            if self._stop.is_set():
                return
            if exc.kind == GONE:
                log.info("ConfigMap %s: watch expired (%s); listing again", self.where, exc)
                return
            if time.monotonic() - started < self._healthy_after:
                raise
            # A watch that ran well and then broke: list again at once (the
            # first attempt of a fresh back-off), warn if that fails too.
            log.info("ConfigMap %s: watch ended (%s); reconnecting", self.where, exc)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                api_retrying(self._stop, self._max_backoff, self._failed)(self._session)
            except Stopped:
                return
            except Exception:  # a channel must never die quietly
                log.exception("ConfigMap channel error; retrying")
                self._stop.wait(self._max_backoff)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="configmap-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.stop()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._client is not None:
            self._client.close()
