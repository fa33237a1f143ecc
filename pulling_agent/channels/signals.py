"""Unix signals, applied in the order they arrive.

What each signal means (`SIGNAL_TABLE`; the README's operator section shows
the same table):

- SIGUSR1 pause, SIGUSR2 resume;
- SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGXCPU: graceful stop (finish the batch
  within the grace period, then release what is left); a second one while
  stopping stops at once, releasing the batch;
- SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT and the real-time
  signals: logged and ignored (by default each would kill the process
  without a word);
- not handled here: SIGPIPE and SIGXFSZ (Python ignores them: the write
  fails instead), the crash signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
  SIGABRT, SIGTRAP, SIGSYS: `faulthandler` writes every thread's traceback,
  then the process dies), SIGKILL and SIGSTOP (cannot be caught), and the
  signals whose default is not to terminate (SIGCHLD, SIGCONT, SIGTSTP, ...).

Order: Python runs the handlers of signals that are pending together in
signal-number order, not arrival order, so SIGUSR2 then SIGUSR1 a
millisecond apart could come out as pause-then-resume. So the Python-level
handlers do nothing at all; the C-level handler writes each signal's number
into a pipe (`signal.set_wakeup_fd`) the moment it arrives, and a reader
thread turns the bytes, in pipe order, into commands on the queue (and logs
each one, like the other channels). What POSIX itself cannot order: two
*different* signals pending at the same instant (sent within microseconds,
or while the process is stopped or not scheduled) are delivered by the
kernel lowest number first; and two of the *same* signal pending together
are merged into one.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
from types import FrameType, TracebackType

from pulling_agent.commands import Action, ChannelName, Command, CommandQueue
from pulling_agent.vocabulary import VERBS

log = logging.getLogger(__name__)


def _named(*names: str) -> tuple[int, ...]:
    """The signals of `names` that this platform has."""
    return tuple(int(getattr(signal, name)) for name in names if hasattr(signal, name))


#: Graceful stop (the batch finishes within the grace period).
STOP_SIGNALS = _named("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGXCPU")
#: Terminating by default, meaningless to the agent: logged and ignored.
IGNORED_SIGNALS = _named("SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGSTKFLT") + tuple(
    range(signal.SIGRTMIN, signal.SIGRTMAX + 1)
)
#: A crash: faulthandler dumps every thread's traceback, then the process dies.
CRASH_SIGNALS = _named("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGTRAP", "SIGSYS")
#: What faulthandler.enable() covers; the other crash signals are registered one by one.
_FAULTHANDLER_FATAL = _named("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT")

#: Every signal the agent handles, and its action (None: logged and ignored).
SIGNAL_TABLE: dict[int, Action | None] = {
    **{int(verb.signal): action for action, verb in VERBS.items()},
    **dict.fromkeys(STOP_SIGNALS, Action.STOP),
    **dict.fromkeys(IGNORED_SIGNALS, None),
}


def signal_name(signum: int) -> str:
    """`SIGUSR1`, or `SIGRTMIN+3` for a real-time signal without a name of its own."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


def _do_nothing(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the work is done from the wake-up pipe."""


def enable_crash_tracebacks() -> None:
    """On a crash signal, write every thread's traceback to stderr, then die as before.

    faulthandler gives the thread that enables it a small alternate signal
    stack, on which *every* signal handler of that thread then runs (CPython
    installs its handlers with SA_ONSTACK). A burst of different signals
    nests their handlers there and overflows it, which the kernel answers
    with SIGSEGV. So it is enabled from a short-lived thread: the main thread
    keeps its own stack for handlers, the fatal handlers are process-wide all
    the same.
    """

    def enable() -> None:
        faulthandler.enable(all_threads=True)
        for signum in set(CRASH_SIGNALS) - set(_FAULTHANDLER_FATAL):
            faulthandler.register(signum, all_threads=True, chain=True)

    thread = threading.Thread(target=enable, name="faulthandler-setup")
    thread.start()
    thread.join()


class SignalChannel:
    """Signals to commands, in arrival order. Install and close on the main thread.

    A context manager: `with SignalChannel(queue): ...` routes the signals of
    `SIGNAL_TABLE` to `queue` inside the block and restores the default
    handlers (and the previous wake-up fd) after it.
    """

    def __init__(self, queue: CommandQueue) -> None:
        self._queue = queue
        self._read_fd = -1
        self._write_fd = -1
        self._previous_wakeup = -1
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd requires it
        self._thread = threading.Thread(target=self._read, name="signals", daemon=True)
        self._thread.start()
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in SIGNAL_TABLE:
            signal.signal(signum, _do_nothing)

    def close(self) -> None:
        for signum in SIGNAL_TABLE:
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(self._previous_wakeup)
        if self._write_fd >= 0:
            os.close(self._write_fd)  # the reader sees the end of the pipe
            self._write_fd = -1
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1

    def __enter__(self) -> SignalChannel:
        self.install()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 256)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                try:
                    self.deliver(signum)
                except Exception:  # a channel must never die quietly
                    log.exception("Signal channel error on signal %d", signum)

    def deliver(self, signum: int) -> None:
        """Turn one arrived signal into a command (or a warning)."""
        name = signal_name(signum)
        action = SIGNAL_TABLE.get(signum)
        if action is None:
            log.warning("Signal %s ignored: it has no meaning for pulling-agent", name)
            return
        command = Command(action, channel=ChannelName.SIGNAL, reason=name)
        log.info("Signal command detected: %s (%s)", action.value, name, extra=command.log_fields())
        self._queue.put(command)
