"""Fixtures shared by every tier: real agent processes that are always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from testkit.agentproc import AgentProcess, cli

AgentFactory = Callable[..., AgentProcess]


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[AgentFactory]:
    """Build `AgentProcess`es in their own directories; kill leftovers at the end."""
    made: list[AgentProcess] = []

    def make(
        name: str = "agent",
        *,
        source: str | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
    ) -> AgentProcess:
        directory = workdir or tmp_path / name
        directory.mkdir(parents=True, exist_ok=True)
        agent = AgentProcess(directory, source=source, args=args, env=env)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.kill()


@pytest.fixture
def seeded_queue(tmp_path: Path) -> Callable[[int], str]:
    """A SQLite queue URL with N demo documents."""

    def make(count: int) -> str:
        url = f"sqlite:///{tmp_path / 'queue.db'}"
        cli("seed", "--count", str(count), "--source", url)
        return url

    return make


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus_binary() -> None:
    """./bin/prometheus (`make tools`), or a skip naming what is missing."""
    from testkit.prometheus_server import why_missing

    if (reason := why_missing()) is not None:
        pytest.skip(reason)
