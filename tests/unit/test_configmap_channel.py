"""The ConfigMap channel's decisions, and its behaviour with no API to talk to.

What reaches the API server is tested in tests/e2e/test_configmap_control.py;
here: which ConfigMap contents become commands (new requests only, shared
record with the control file), and that an unreachable API is one warning,
no command, and a channel that still stops.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulling_agent.channels.configmap_watch import ConfigMapChannel, RequestTracker
from pulling_agent.channels.control_file import ControlFileChannel
from pulling_agent.channels.observed import ObservedRequest
from pulling_agent.commands import Action, CommandQueue
from pulling_agent.kube import ControlData

WHERE = "ns/agent-control"


def data(state: str | None, reason: str = "", by: str = "", at: str = "") -> ControlData:
    return ControlData(state=state, reason=reason, requested_by=by, requested_at=at)


class Errors:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def __call__(self, kind: str) -> None:
        self.kinds.append(kind)


def test_a_request_becomes_one_command_with_its_metadata() -> None:
    tracker = RequestTracker(ObservedRequest())
    command = tracker.command(
        data("pause", "db maintenance", "alice", "2026-01-02T03:04:05Z"), WHERE
    )
    assert command is not None
    assert command.action is Action.PAUSE
    assert command.channel == "configmap"
    assert command.reason == "db maintenance"
    assert command.requested_by == "alice"
    assert command.requested_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # The same request again (a re-list after an outage): nothing to do.
    same = data("pause", "db maintenance", "alice", "2026-01-02T03:04:05Z")
    assert tracker.command(same, WHERE) is None


def test_a_new_request_with_the_same_state_is_applied_again() -> None:
    """A second pause (new requested-at) after, say, an operator's SIGUSR2."""
    tracker = RequestTracker(ObservedRequest())
    assert tracker.command(data("pause", at="2026-01-02T03:04:05Z"), WHERE) is not None
    again = tracker.command(data("pause", at="2026-01-02T04:00:00Z"), WHERE)
    assert again is not None and again.action is Action.PAUSE


def test_the_guides_words_any_case() -> None:
    tracker = RequestTracker(ObservedRequest())
    for word, action in (("pause", Action.PAUSE), (" Resume\n", Action.RESUME)):
        command = tracker.command(data(word), WHERE)
        assert command is not None and command.action is action
    assert tracker.command(data("RUNNING"), WHERE) is not None  # a different request text


def test_invalid_state_is_a_warning_and_no_command(caplog: pytest.LogCaptureFixture) -> None:
    errors = Errors()
    observed = ObservedRequest()
    tracker = RequestTracker(observed, errors)
    with caplog.at_level(logging.WARNING):
        assert tracker.command(data("stop-everything"), WHERE) is None
        assert tracker.command(data("stop-everything"), WHERE) is None  # warned once
    assert errors.kinds == ["invalid"]
    assert observed.action is None
    assert caplog.text.count("Ignoring ConfigMap ns/agent-control") == 1
    assert "unknown control state 'stop-everything'" in caplog.text


def test_missing_or_deleted_configmap_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    tracker = RequestTracker(ObservedRequest())
    with caplog.at_level(logging.WARNING):
        assert tracker.command(None, WHERE) is None
        assert tracker.command(None, WHERE) is None
        assert tracker.command(data(None), WHERE) is None
        tracker.deleted(WHERE)
    assert caplog.text.count("not found; state unchanged") == 1
    assert "has no 'state' key" in caplog.text
    assert "was deleted; state unchanged" in caplog.text


def test_the_files_late_copy_of_a_watched_change_is_not_applied_again(tmp_path: Path) -> None:
    observed = ObservedRequest()
    tracker = RequestTracker(observed)
    file_channel = ControlFileChannel(tmp_path, CommandQueue(), observed)
    assert tracker.command(data("pause", at="2026-01-02T03:04:05Z"), WHERE) is not None
    # ...an operator's SIGUSR2 resumes the agent; then the kubelet's copy lands:
    (tmp_path / "requested-at").write_text("2026-01-02T03:04:05Z\n")
    (tmp_path / "state").write_text("pause\n")
    assert file_channel.read_command() is None
    # A later, different word in the file is still obeyed.
    (tmp_path / "state").write_text("running\n")
    command = file_channel.read_command()
    assert command is not None and command.action is Action.RESUME


def test_unreachable_api_at_start_is_one_warning_and_no_command(
    tmp_path: Path, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    kubeconfig = write_kubeconfig(tmp_path, f"https://127.0.0.1:{unused_tcp_port}")
    errors = Errors()
    queue = CommandQueue()
    channel = ConfigMapChannel(
        name="agent-control",
        namespace="",
        kubeconfig=str(kubeconfig),
        queue=queue,
        observed=ObservedRequest(),
        max_backoff=0.05,
        on_error=errors,
    )
    with caplog.at_level(logging.WARNING):
        assert channel.read_command() is None
        channel.start()
        # Let it retry several times (back-off at most 0.05 s): still one warning.
        time.sleep(1.0)
        channel.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "Kubernetes API unreachable for ConfigMap ctx-ns/agent-control" in warnings[0]
    assert "Connection refused" in warnings[0]
    assert "the control file still works" in warnings[0]
    assert errors.kinds == ["api_unreachable"]
    assert queue.empty()


def test_stop_ends_the_thread(tmp_path: Path, unused_tcp_port: int) -> None:
    kubeconfig = write_kubeconfig(tmp_path, f"https://127.0.0.1:{unused_tcp_port}")
    channel = ConfigMapChannel(
        name="agent-control",
        namespace="ns",
        kubeconfig=str(kubeconfig),
        queue=CommandQueue(),
        observed=ObservedRequest(),
    )
    channel.start()
    channel.stop()
    assert channel._thread is not None
    assert not channel._thread.is_alive()


def write_kubeconfig(directory: Path, server: str, namespace: str = "ctx-ns") -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: not-a-real-token}}
contexts:
- name: main
  context: {{cluster: c, user: u, namespace: {namespace}}}
- name: other
  context: {{cluster: c, user: u}}
current-context: main
"""
    )
    return path
