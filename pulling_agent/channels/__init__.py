"""Control channels: each turns what it observes into a `Command` on the queue.

- `signals`: SIGUSR1, SIGUSR2, SIGTERM, SIGINT (handlers installed on the main thread);
- `control_file`: the control directory (a ConfigMap volume in a pod);
- `configmap_watch`: the control ConfigMap through the Kubernetes API;
- `observed`: the last request the two declarative channels saw, which they share.

The file and the ConfigMap channels run beside the controller as `Channel`s.
"""

from __future__ import annotations

from typing import Protocol

from pulling_agent.commands import Command


class Channel(Protocol):
    """A control channel that runs beside the controller."""

    def read_command(self) -> Command | None:
        """Observe once, synchronously (used at start before any batch)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
