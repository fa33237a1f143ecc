"""Assembling a running agent: channels → queue → controller → listeners, and the worker."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pulling_agent import defaults
from pulling_agent.channels import Channel
from pulling_agent.channels.control_file import ControlFileChannel
from pulling_agent.channels.observed import ObservedRequest
from pulling_agent.channels.signals import SignalChannel
from pulling_agent.commands import ChannelName, Command, CommandQueue
from pulling_agent.controller import Controller
from pulling_agent.health import HealthFiles
from pulling_agent.instance import AgentAlreadyRunning, InstanceLock
from pulling_agent.metrics import Metrics
from pulling_agent.plugins import PluginError, load_processor, load_source
from pulling_agent.processors.base import Processor
from pulling_agent.replica_status import REPORT_INTERVAL
from pulling_agent.snapshot import Listener, Stats
from pulling_agent.sources.base import Source, SourceError, redact_url
from pulling_agent.sources.deferred import DeferredSource
from pulling_agent.text import one_line
from pulling_agent.worker import Worker

if TYPE_CHECKING:
    from pulling_agent.reporter import StatusReporter

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    """What `pulling-agent run` is given; its defaults are the command's."""

    source: str = defaults.SOURCE_URL
    processor: str = "digest"
    processor_options: dict[str, str] = field(default_factory=dict)
    batch_size: int = 25  # the CLI's default; why: README, "Batch size"
    lease_seconds: float = 300.0
    max_attempts: int = 3
    control_dir: Path = defaults.CONTROL_DIR
    health_dir: Path = defaults.HEALTH_DIR
    poll_interval: float = 2.0
    heartbeat_interval: float = 5.0
    stop_grace_seconds: float = 25.0
    metrics_port: int = 9102
    metrics_address: str = "0.0.0.0"  # noqa: S104 - a pod's port
    configmap: str = ""
    namespace: str = ""
    kubeconfig: str = ""
    #: The status ConfigMap this replica reports to ("" for none; the chart sets
    #: `<configmap>-status`), every `report_interval` seconds and on every change.
    status_configmap: str = ""
    report_interval: float = REPORT_INTERVAL
    #: Who reports: the pod's and its node's names (the chart sets them from the
    #: downward API; the pod name defaults to the host name, which is the pod's).
    pod_name: str = ""
    node_name: str = ""
    ready_while_paused: bool = False
    use_inotify: bool = True
    seed: int = 0


class StartError(Exception):
    """The agent cannot start; the message names why in one line."""


def open_source(url: str) -> Source:
    """The source for `url`; if its server is down, one that connects later.

    A permanent error (not a queue, a schema the agent does not know, wrong
    credentials, ...) is raised: retrying it would never succeed.
    """
    try:
        return load_source(url)
    except SourceError as exc:
        if not exc.transient:
            raise StartError(f"source {redact_url(url)}: {exc}") from None
        log.warning("Source %s unavailable at start (%s); will keep trying", redact_url(url), exc)
        return DeferredSource(lambda: load_source(url), redact_url(url))


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_configmap_channel(
    config: AgentConfig,
    queue: CommandQueue,
    observed: ObservedRequest,
    on_error: Callable[[str], None],
) -> Channel:
    from pulling_agent.channels.configmap_watch import ConfigMapChannel

    return ConfigMapChannel(
        name=config.configmap,
        namespace=config.namespace,
        kubeconfig=config.kubeconfig,
        queue=queue,
        observed=observed,
        on_error=on_error,
    )


def build_reporter(config: AgentConfig) -> StatusReporter:
    from pulling_agent.reporter import StatusReporter

    return StatusReporter(
        configmap=config.status_configmap,
        namespace=config.namespace,
        kubeconfig=config.kubeconfig,
        pod=config.pod_name or socket.gethostname(),
        node=config.node_name,
        interval=config.report_interval,
    )


def run_agent(config: AgentConfig) -> int:
    """Run until stopped; returns the exit code (0 after a clean stop).

    Raises `StartError` when the agent cannot start (another agent holds the
    health directory, a permanent source error, a busy metrics port) and
    `PluginError` when the processor cannot be loaded.
    """
    lock = InstanceLock(config.health_dir)
    try:
        lock.acquire()
    except AgentAlreadyRunning as exc:
        raise StartError(str(exc)) from None
    except OSError as exc:
        raise StartError(f"health directory {config.health_dir}: {exc.strerror}") from None
    try:
        return Agent(config).run()
    finally:
        lock.release()


class Agent:
    """One run of the agent: its queue, controller, listeners, channels and worker."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.queue = CommandQueue()
        self.stats = Stats()
        self.metrics = Metrics()
        self.health = HealthFiles(config.health_dir, ready_while_paused=config.ready_while_paused)
        self.worker: Worker | None = None
        listeners: list[Listener] = [self.health, self.metrics]
        self.reporter = build_reporter(config) if config.status_configmap else None
        if self.reporter is not None:
            listeners.append(self.reporter)
        self.controller = Controller(
            self.queue,
            self.stats,
            listeners,
            heartbeat_interval=config.heartbeat_interval,
            stop_grace_seconds=config.stop_grace_seconds,
            on_abort=self._release_inflight,
        )

    def _release_inflight(self) -> None:
        if self.worker is not None:
            self.worker.release_inflight()

    def run(self) -> int:
        # Signals first: from here on a SIGTERM (or SIGHUP, ...) is a graceful
        # stop, applied as soon as the controller runs, never a silent death.
        with SignalChannel(self.queue):
            # STARTING: also replaces the liveness file of a dead predecessor.
            self.controller.publish()
            try:
                return self._run()
            except (StartError, PluginError) as exc:  # the caller shows these, in one line
                self.controller.abandon(one_line(str(exc)))
                raise
            except BaseException as exc:
                log.exception("Agent failed")
                self.controller.abandon(one_line(f"{type(exc).__name__}: {exc}"))
                raise

    def _run(self) -> int:
        config = self.config
        processor = load_processor(config.processor, config.processor_options)
        source = open_source(config.source)
        try:
            return self._run_with(source, processor)
        finally:
            processor.close()
            source.close()

    def _run_with(self, source: Source, processor: Processor) -> int:
        config, queue, metrics = self.config, self.queue, self.metrics
        if config.seed and not isinstance(source, DeferredSource):
            from pulling_agent.demo import demo_documents

            if added := source.add_if_idle(demo_documents(config.seed)):
                log.info("Seeded %d demo documents", added)
            else:
                log.info("Not seeding: the queue already has documents to process")

        worker = self.worker = Worker(
            source,
            processor,
            self.controller,
            queue,
            self.stats,
            metrics,
            owner=make_owner(),
            batch_size=config.batch_size,
            lease_seconds=config.lease_seconds,
            max_attempts=config.max_attempts,
            idle_interval=min(config.poll_interval, 1.0),
            backlog_interval=config.heartbeat_interval,
        )
        observed = ObservedRequest()
        channels: list[Channel] = [
            ControlFileChannel(
                config.control_dir,
                queue,
                observed,
                poll_interval=config.poll_interval,
                use_inotify=config.use_inotify,
                on_error=lambda kind: metrics.control_error(ChannelName.FILE, kind),
            )
        ]
        if config.configmap:
            channels.append(
                build_configmap_channel(
                    config,
                    queue,
                    observed,
                    lambda kind: metrics.control_error(ChannelName.CONFIGMAP, kind),
                )
            )

        # The desired state at start: a restarted pod honours a pause before any batch.
        initial: Command | None = None
        for channel in channels:
            initial = channel.read_command() or initial

        if config.metrics_port:
            try:
                metrics.serve(config.metrics_port, config.metrics_address)
            except OSError as exc:
                raise StartError(
                    f"metrics port {config.metrics_port} on {config.metrics_address}: "
                    f"{exc.strerror or exc} (choose another --metrics-port, or 0 to turn "
                    "metrics off)"
                ) from None
        log.info(
            "Agent starting: source=%s processor=%s batch_size=%d owner=%s",
            source.describe(),
            config.processor,
            config.batch_size,
            worker.owner,
        )
        self.controller.start(initial)
        thread = threading.Thread(target=worker.run, name="worker", daemon=True)
        try:
            if self.reporter is not None:
                self.reporter.start()
            for channel in channels:
                channel.start()
            thread.start()
            exit_code = self.controller.run()
        finally:
            for channel in channels:
                channel.stop()
            if self.reporter is not None:
                self.reporter.stop()
        thread.join(timeout=1.0)
        return exit_code
