"""Unix signals: SIGUSR1 pause, SIGUSR2 resume, SIGTERM/SIGINT stop.

The handlers only put a `Command` on the queue (no logging, no locks): the
controller does the rest. A second SIGTERM/SIGINT while stopping makes the
controller stop at once.
"""

from __future__ import annotations

import signal
from types import FrameType

from pulling_agent.commands import Action, ChannelName, Command, CommandQueue
from pulling_agent.vocabulary import VERBS

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

SIGNAL_ACTIONS: dict[signal.Signals, Action] = {
    **{verb.signal: action for action, verb in VERBS.items()},
    **dict.fromkeys(STOP_SIGNALS, Action.STOP),
}


def install_signal_handlers(queue: CommandQueue) -> None:
    """Route the signals above to `queue`. Call from the main thread."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        queue.put(Command(SIGNAL_ACTIONS[sig], channel=ChannelName.SIGNAL, reason=sig.name))

    for sig in SIGNAL_ACTIONS:
        signal.signal(sig, handler)


def restore_default_handlers() -> None:
    for sig in SIGNAL_ACTIONS:
        signal.signal(sig, signal.SIG_DFL)
