"""The last desired state observed from declarative channels.

The control file and the ConfigMap watch see the same desired state, the
watch sooner than the kubelet's copy in the mounted file. Both record what
they observed here, so that the file's late copy of a change the watch
already applied is not applied again (it would undo, say, an operator's
SIGUSR2 sent in between). Signals do not record: they are one-off overrides.
"""

from __future__ import annotations

import threading

from pulling_agent.commands import Action


class ObservedDesiredState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._action: Action | None = None

    @property
    def action(self) -> Action | None:
        with self._lock:
            return self._action

    def observe(self, action: Action) -> bool:
        """Record `action`; True when it differs from the last one observed."""
        with self._lock:
            changed = action is not self._action
            self._action = action
            return changed
