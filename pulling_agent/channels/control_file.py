"""The control file channel: `<control-dir>/state`, and its siblings.

The directory is what a Kubernetes ConfigMap volume looks like: one file per
key (`state`, and optionally `reason`, `requested-by`, `requested-at`), which
the kubelet replaces by atomically swapping a `..data` symlink. So the channel
watches the *directory* with inotify (never the file's inode, which the swap
replaces) and also polls every `poll_interval` seconds, which covers
filesystems without inotify and a directory that appears later.

The content is applied at start and on every change. Anything that is not a
control word is a warning and a counted error, never a state change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from inotify_simple import INotify, flags

from pulling_agent.channels.observed import ControlRequest, ObservedRequest
from pulling_agent.commands import ChannelName, Command, CommandQueue
from pulling_agent.text import one_line
from pulling_agent.vocabulary import (
    MAX_CONTROL_BYTES,
    META_KEYS,
    REASON_KEY,
    REQUESTED_AT_KEY,
    REQUESTED_BY_KEY,
    STATE_KEY,
    ControlWordError,
    parse_control_bytes,
)

log = logging.getLogger(__name__)

SETTLE_MS = 5
#: An empty `state` is read again after this long before it counts as empty: a
#: shell's `echo pause > state` truncates the file, then writes it.
EMPTY_RECHECK_SECONDS = 0.05
DATA_LINK = "..data"  # a ConfigMap volume's pointer to the current version
# Not MODIFY: a shell's `echo pause > state` truncates first, and a read
# between the truncation and the write would see an empty file.
WATCH_FLAGS = (
    flags.CREATE
    | flags.MOVED_TO
    | flags.CLOSE_WRITE
    | flags.DELETE
    | flags.MOVED_FROM
    | flags.ATTRIB
    | flags.DELETE_SELF
    | flags.MOVE_SELF
)


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegularFile(OSError):
    """A control file that is not a regular file; never read (a FIFO would
    block the reader until some writer comes, a device may never end)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"not a regular file ({kind})")
        self.kind = kind


def read_limited(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes of the regular file `path` (enough to tell that it
    is too large). The open never blocks: O_NONBLOCK, then a check that it is
    a regular file (`NotRegularFile` if not)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise NotRegularFile(kind)
        chunks: list[bytes] = []
        size = 0
        while size < limit and (chunk := os.read(fd, limit - size)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def key_path(directory: Path, key: str, version: str = "") -> Path:
    """Where to read `key`: its entry in `directory`, or, in a ConfigMap
    volume whose `..data` was just swapped to `version`, the version's own
    file while the kubelet has not yet made the link of a key the update
    added. A plain file written over a link is read as it is."""
    top = directory / key
    if version and not os.path.lexists(top):
        return directory / version / key
    return top


def read_metadata(directory: Path, version: str = "") -> dict[str, str]:
    """The optional `reason`, `requested-by`, `requested-at` keys, if readable."""
    meta: dict[str, str] = {}
    for key in META_KEYS:
        with contextlib.suppress(OSError):
            raw = read_limited(key_path(directory, key, version), MAX_CONTROL_BYTES)
            text = raw.decode("utf-8", errors="replace").strip()
            if text and "\x00" not in text:
                meta[key] = one_line(text)
    return meta


class ControlFileChannel:
    def __init__(
        self,
        directory: Path,
        queue: CommandQueue,
        observed: ObservedRequest,
        *,
        poll_interval: float = 2.0,
        use_inotify: bool = True,
        on_error: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.directory = directory
        self.path = directory / STATE_KEY
        self._queue = queue
        self._observed = observed
        self._poll_interval = poll_interval
        self._use_inotify = use_inotify
        self._on_error = on_error
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes a blocked wait
        self._thread: threading.Thread | None = None
        self._inotify: INotify | None = None
        self._watching = False
        self._last_content: tuple[bytes, tuple[tuple[str, str], ...]] | None = None
        self._last_problem = ""

    # ----------------------------------------------------------------- reads
    def _problem(self, kind: str, message: str) -> None:
        """Warn once per distinct problem (not on every poll) and count it."""
        if message != self._last_problem:
            log.warning("%s", message)
            self._on_error(kind)
        self._last_problem = message

    def _version(self) -> str:
        """The directory `..data` points to (a ConfigMap volume's current
        version), or "" for a plain directory."""
        try:
            return str((self.directory / DATA_LINK).readlink())
        except OSError:
            return ""

    def read_command(self) -> Command | None:
        """Read the directory; a Command when it holds a new, valid request.

        `state` and its sibling keys are read as one version: if the kubelet
        swapped `..data` in the middle, they are read again; a key the update
        added, whose link the kubelet makes only after the swap, is read from
        the version itself (`key_path`).
        """
        rechecked = False
        for _ in range(3):
            version = self._version()
            try:
                data = read_limited(
                    key_path(self.directory, STATE_KEY, version), MAX_CONTROL_BYTES + 1
                )
                meta = read_metadata(self.directory, version)
            except FileNotFoundError:
                if self._version() != version:
                    continue
                self._missing()
                return None
            except NotRegularFile as exc:
                self._problem("not_regular", f"Ignoring control file {self.path}: {exc}")
                self._last_content = None
                return None
            except OSError as exc:
                self._problem("unreadable", f"Cannot read control file {self.path}: {exc.strerror}")
                self._last_content = None
                return None
            if self._version() != version:
                continue
            if not data.strip() and not rechecked:
                rechecked = True
                self._stop.wait(EMPTY_RECHECK_SECONDS)
                continue
            return self._consider(data, meta)
        return None

    def _missing(self) -> None:
        if not self.directory.is_dir():
            self._problem(
                "missing_directory",
                f"Control directory {self.directory} does not exist; "
                "watching for it (no state change)",
            )
        elif self._last_content is not None:
            log.info("Control file %s removed; state unchanged", self.path)
        self._last_content = None

    def _consider(self, data: bytes, meta: dict[str, str]) -> Command | None:
        # The metadata keys count as content: a new reason with the same word
        # is a new request.
        content = (data, tuple(sorted(meta.items())))
        if content == self._last_content:
            return None
        self._last_content = content
        try:
            action = parse_control_bytes(data)
        except ControlWordError as exc:
            self._problem("invalid", f"Ignoring control file {self.path}: {exc}")
            return None
        self._last_problem = ""
        request = ControlRequest.of(
            action,
            data.decode("utf-8"),  # valid UTF-8: parse_control_bytes checked
            meta.get(REASON_KEY, ""),
            meta.get(REQUESTED_BY_KEY, ""),
            meta.get(REQUESTED_AT_KEY, ""),
        )
        if not self._observed.observe(request):
            log.debug("Control file says %s, already observed", action.value)
            return None
        command = request.command(ChannelName.FILE)
        log.info("Control file command detected: %s", action.value, extra=command.log_fields())
        return command

    # ------------------------------------------------------------ the thread
    def start(self) -> None:
        if self._use_inotify:
            try:
                self._inotify = INotify()
            except OSError as exc:
                log.warning("inotify unavailable (%s); polling every %ss", exc, self._poll_interval)
        self._ensure_watch()  # before returning: no change between start() and the watch is missed
        self._thread = threading.Thread(target=self._run, name="control-file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._inotify is not None:
            self._inotify.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _ensure_watch(self) -> None:
        if self._inotify is None or self._watching:
            return
        try:
            self._inotify.add_watch(self.directory, WATCH_FLAGS)
        except OSError:
            return  # not there yet: the poll will look again
        self._watching = True

    def _wait(self) -> None:
        """Until the directory changes, the poll interval passes, or stop()."""
        watched = [self._wake_r]
        if self._inotify is not None and self._watching:
            watched.append(self._inotify.fileno())
        readable, _, _ = select.select(watched, [], [], self._poll_interval)
        if self._inotify is None or self._inotify.fileno() not in readable:
            return
        # Let a burst of events settle (a writer creating then writing a file,
        # the kubelet swapping `..data` then adding links) before reading.
        for event in self._inotify.read(timeout=0, read_delay=SETTLE_MS):
            if event.mask & (flags.IGNORED | flags.DELETE_SELF | flags.MOVE_SELF):
                self._watching = False  # the directory went away; re-add later

    def _run(self) -> None:
        while not self._stop.is_set():
            self._ensure_watch()
            try:
                self._wait()
                command = self.read_command()
            except Exception:  # a channel must never die quietly
                log.exception("Control file channel error; retrying")
                self._stop.wait(self._poll_interval)
                continue
            if command is not None:
                self._queue.put(command)
