"""The control file channel on real files: words, garbage, and kubelet-style swaps."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulling_agent.channels.control_file import ControlFileChannel
from pulling_agent.channels.observed import ControlRequest, ObservedRequest
from pulling_agent.commands import Action, Command, CommandQueue
from testkit.agentproc import write_kubelet_style


class Errors:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def __call__(self, kind: str) -> None:
        self.kinds.append(kind)


def make(
    directory: Path, **kw: object
) -> tuple[ControlFileChannel, CommandQueue, Errors, ObservedRequest]:
    queue, errors, observed = CommandQueue(), Errors(), ObservedRequest()
    channel = ControlFileChannel(directory, queue, observed, on_error=errors, **kw)  # type: ignore[arg-type]
    return channel, queue, errors, observed


def test_missing_directory_is_a_warning_and_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    channel, _, errors, _ = make(tmp_path / "absent")
    assert channel.read_command() is None
    assert channel.read_command() is None
    assert errors.kinds == ["missing_directory"]  # counted once, not on every poll
    assert "does not exist" in caplog.text


def test_word_becomes_a_command_once(tmp_path: Path) -> None:
    channel, _, errors, _ = make(tmp_path)
    (tmp_path / "state").write_text("PAUSE\n")
    command = channel.read_command()
    assert command is not None and command.action is Action.PAUSE and command.channel == "file"
    assert channel.read_command() is None  # unchanged content
    (tmp_path / "state").write_text("pause")  # new content, same word: already observed
    assert channel.read_command() is None
    (tmp_path / "state").write_text("running")
    command = channel.read_command()
    assert command is not None and command.action is Action.RESUME
    assert errors.kinds == []


def test_metadata_keys_travel_with_the_command(tmp_path: Path) -> None:
    channel, *_ = make(tmp_path)
    (tmp_path / "reason").write_text("database backup\n")
    (tmp_path / "requested-by").write_text("ops-team")
    (tmp_path / "requested-at").write_text("2026-11-28T02:00:00Z")
    (tmp_path / "state").write_text("pause")
    command = channel.read_command()
    assert command is not None
    assert (command.reason, command.requested_by) == ("database backup", "ops-team")
    assert command.requested_at.isoformat() == "2026-11-28T02:00:00+00:00"


def test_detected_log_line_carries_channel_reason_and_requester(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    channel, *_ = make(tmp_path)
    (tmp_path / "reason").write_text("database backup\n")
    (tmp_path / "requested-by").write_text("ops-team")
    (tmp_path / "state").write_text("pause")
    caplog.set_level("INFO")
    assert channel.read_command() is not None
    (record,) = [
        r for r in caplog.records if r.getMessage() == "Control file command detected: pause"
    ]
    fields = (record.channel, record.reason, record.requested_by)  # type: ignore[attr-defined]
    assert fields == ("file", "database backup", "ops-team")


def test_a_file_caught_between_truncation_and_write_is_read_again(tmp_path: Path) -> None:
    """`echo pause > state` empties the file before it writes the word."""
    channel, _, errors, _ = make(tmp_path)
    (tmp_path / "state").write_text("")  # the shell has opened it with O_TRUNC

    class ShellWritesMeanwhile(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            (tmp_path / "state").write_text("pause\n")  # ... and writes while the channel waits
            return False

    channel._stop = ShellWritesMeanwhile()
    command = channel.read_command()
    assert command is not None and command.action is Action.PAUSE
    assert errors.kinds == []


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"", "invalid"),
        (b"halt", "invalid"),
        (b"\x00\x01\x02binary", "invalid"),
        (b"\xff\xfe", "invalid"),
        (b"pause" * 2_000_000, "invalid"),  # 10 MB
    ],
)
def test_garbage_never_changes_state(tmp_path: Path, content: bytes, kind: str) -> None:
    channel, _, errors, observed = make(tmp_path)
    (tmp_path / "state").write_text("pause")
    assert channel.read_command() is not None
    (tmp_path / "state").write_bytes(content)
    assert channel.read_command() is None
    assert channel.read_command() is None
    assert errors.kinds == [kind]
    assert observed.action is Action.PAUSE


def test_a_state_that_is_not_a_regular_file_is_a_warning(tmp_path: Path) -> None:
    # A directory, or a FIFO (whose plain open would block until a writer comes).
    channel, _, errors, _ = make(tmp_path)
    (tmp_path / "state").mkdir()
    assert channel.read_command() is None
    (tmp_path / "state").rmdir()
    os.mkfifo(tmp_path / "state")
    assert channel.read_command() is None
    assert errors.kinds == ["not_regular", "not_regular"]
    (tmp_path / "state").unlink()
    (tmp_path / "state").write_text("pause")
    command = channel.read_command()
    assert command is not None and command.action is Action.PAUSE


def test_the_file_does_not_reapply_what_the_watch_already_observed(tmp_path: Path) -> None:
    channel, _, _, observed = make(tmp_path)
    # The ConfigMap watch saw it first...
    assert observed.observe(
        ControlRequest.of(Action.PAUSE, "pause", "backup", "ops", "2026-11-28T02:00Z")
    )
    # ...then the kubelet's late copy of the same request lands.
    (tmp_path / "reason").write_text("backup\n")
    (tmp_path / "requested-by").write_text("ops")
    (tmp_path / "requested-at").write_text("2026-11-28T02:00Z")
    (tmp_path / "state").write_text("pause")
    assert channel.read_command() is None
    # A new request with the same word (its own time) is applied.
    (tmp_path / "requested-at").write_text("2026-11-28T03:00Z")
    command = channel.read_command()
    assert command is not None and command.action is Action.PAUSE


def test_a_metadata_key_that_appears_after_the_state_is_picked_up(tmp_path: Path) -> None:
    # The kubelet creates a new key's link just after swapping `..data`.
    channel, *_ = make(tmp_path)
    (tmp_path / "state").write_text("pause")
    first = channel.read_command()
    assert first is not None and first.reason == ""
    (tmp_path / "reason").write_text("window")
    second = channel.read_command()
    assert second is not None and (second.action, second.reason) == (Action.PAUSE, "window")


def test_a_configmap_volume_is_read_as_one_version_before_its_new_links_exist(
    tmp_path: Path,
) -> None:
    """Right after the kubelet swaps `..data`, a key that the update added has
    no top-level link yet: the channel reads the version `..data` points to,
    so `state` never comes without the reason that was written with it."""
    channel, *_ = make(tmp_path)
    write_kubelet_style(tmp_path, {"state": "running", "requested-by": "helm"})
    first = channel.read_command()
    assert first is not None and (first.action, first.requested_by) == (Action.RESUME, "helm")
    version = tmp_path / "..v2"
    version.mkdir()
    for key, value in {"state": "pause", "reason": "window", "requested-by": "ops"}.items():
        (version / key).write_text(value)
    (tmp_path / "..data_tmp").symlink_to("..v2")
    (tmp_path / "..data_tmp").replace(tmp_path / "..data")  # the swap; no `reason` link yet
    assert not (tmp_path / "reason").exists()
    command = channel.read_command()
    assert command is not None
    assert (command.action, command.reason, command.requested_by) == (Action.PAUSE, "window", "ops")
    (tmp_path / "reason").symlink_to("..data/reason")  # the link comes: nothing new
    assert channel.read_command() is None
    # A plain file written over the link (a hand-made override) is read as it is.
    (tmp_path / "state.tmp").write_text("resume")
    (tmp_path / "state.tmp").replace(tmp_path / "state")
    command = channel.read_command()
    assert command is not None and (command.action, command.reason) == (Action.RESUME, "window")


@pytest.fixture
def running_channel(tmp_path: Path) -> Iterator[tuple[ControlFileChannel, CommandQueue, Path]]:
    control = tmp_path / "control"
    control.mkdir()
    # A long poll interval: only inotify can deliver within the test's waits.
    channel, queue, _, _ = make(control, poll_interval=30.0)
    channel.start()  # the watch is in place when start() returns
    yield channel, queue, control
    channel.stop()


def next_command(queue: CommandQueue) -> Command:
    command = queue.get(timeout=10)
    assert command is not None, "no command within 10 s"
    return command


def test_inotify_sees_a_kubelet_style_symlink_swap(
    running_channel: tuple[ControlFileChannel, CommandQueue, Path],
) -> None:
    _, queue, control = running_channel
    write_kubelet_style(control, {"state": "pause", "reason": "window"})
    command = next_command(queue)
    assert (command.action, command.reason) == (Action.PAUSE, "window")
    write_kubelet_style(control, {"state": "running", "reason": "window over"})
    command = next_command(queue)
    assert (command.action, command.reason) == (Action.RESUME, "window over")
    assert (control / "state").is_symlink()


def test_inotify_sees_a_plain_rewrite(
    running_channel: tuple[ControlFileChannel, CommandQueue, Path],
) -> None:
    _, queue, control = running_channel
    (control / "state").write_text("pause\n")
    assert next_command(queue).action is Action.PAUSE


def test_poll_finds_a_directory_created_later(tmp_path: Path) -> None:
    control = tmp_path / "later"
    channel, queue, _, _ = make(control, poll_interval=0.1)
    channel.start()
    try:
        time.sleep(0.3)
        control.mkdir()
        (control / "state").write_text("pause")
        assert next_command(queue).action is Action.PAUSE
    finally:
        channel.stop()
