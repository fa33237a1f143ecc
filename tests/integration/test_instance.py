"""One agent per health directory, and `pause|resume|status` only ever reach that agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.agentproc import AgentProcess, cli
from tests.conftest import AgentFactory

pytestmark = pytest.mark.integration


def dirs(agent: AgentProcess) -> list[str]:
    return ["--control-dir", str(agent.control_dir), "--health-dir", str(agent.health_dir)]


@pytest.fixture
def stranger(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that records every SIGUSR1/SIGUSR2 it gets (and is not an agent)."""
    script = (
        "import signal, sys, time\n"
        "def note(signum, frame):\n"
        "    print(signal.Signals(signum).name, flush=True)\n"
        "signal.signal(signal.SIGUSR1, note)\n"
        "signal.signal(signal.SIGUSR2, note)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc
    proc.kill()
    proc.wait()


def killed_agent_with_stale_files(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> AgentProcess:
    agent = agent_factory(source=seeded_queue(10))
    agent.start(wait_state="running")
    agent.kill()  # kill -9: the health files stay as they were
    return agent


def test_pause_never_signals_the_process_that_took_a_dead_agents_pid(
    agent_factory: AgentFactory,
    seeded_queue: Callable[[int], str],
    stranger: subprocess.Popen[str],
) -> None:
    agent = killed_agent_with_stale_files(agent_factory, seeded_queue)
    # The dead agent's pid now belongs to someone else.
    liveness = agent.health_dir / "liveness"
    text = liveness.read_text().replace(f"pid={agent.pid}", f"pid={stranger.pid}")
    liveness.write_text(text)
    for command in ("pause", "resume"):
        proc = cli(command, *dirs(agent), "--timeout", "5", check=False)
        assert proc.returncode == 0, proc.stderr
        assert "No running agent found" in proc.stdout
    status = json.loads(
        cli("status", "-o", "json", "--health-dir", str(agent.health_dir), check=False).stdout
    )
    assert status["state"] == "UNHEALTHY" and status["pid_alive"] is False
    stranger.kill()
    out, _ = stranger.communicate()
    assert "SIGUSR" not in out  # never signalled


def test_a_second_agent_on_the_same_directories_refuses_to_start(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str], tmp_path: Path
) -> None:
    first = agent_factory("first", source=seeded_queue(100_000), args=["--processor", "slow"])
    first.start(wait_state="running")
    second = agent_factory(
        "second", source=f"sqlite:///{tmp_path / 'other.db'}", workdir=tmp_path / "second"
    )
    second.control_dir, second.health_dir = first.control_dir, first.health_dir
    before = (first.health_dir / "liveness").read_text().splitlines()[2:]
    proc = subprocess.run(second.command(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()
    assert error == [
        f"Error: health directory {first.health_dir} is in use by another agent "
        f"(pid {first.pid}); give each agent its own --health-dir"
    ]
    assert not (tmp_path / "other.db").exists()
    # The first agent's files are untouched, and it still answers.
    assert f"pid={first.pid}" in (first.health_dir / "liveness").read_text()
    assert (first.health_dir / "liveness").read_text().splitlines()[2:][-1] == before[-1]
    first.signal(signal.SIGUSR1)
    first.wait_state("paused")
    assert first.stop() == 0
    # Once the first is gone, the health directory is free again.
    second.start(wait_state="running")
    assert second.stop() == 0


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's own is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="pa-shared-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_signal_the_user_may_not_send_is_a_one_line_error(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str], shared_dir: Path
) -> None:
    agent = agent_factory(source=seeded_queue(10), workdir=shared_dir)
    agent.start(wait_state="running")
    agent.control_dir.mkdir()
    agent.control_dir.chmod(0o777)
    # The same CLI, as an unprivileged user: the agent runs as root.
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *pause_command(agent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: not allowed to signal the agent (pid {agent.pid}): Operation not permitted "
        "(run as the agent's user)"
    ], proc.stdout + proc.stderr
    assert agent.stop() == 0


def pause_command(agent: AgentProcess) -> list[str]:
    return [str(Path(sys.executable).parent / "pulling-agent"), "pause", *dirs(agent)]


def test_resume_of_a_stopped_agent_fails_at_once(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    """SIGSTOP (kill -STOP, a debugger): the agent cannot act; say so now, not in 30 s."""
    agent = agent_factory(source=seeded_queue(10))
    agent.start(wait_state="running")
    agent.signal(signal.SIGUSR1)
    agent.wait_state("paused")
    agent.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        proc = cli("resume", *dirs(agent), check=False)
        took = time.monotonic() - started
    finally:
        agent.signal(signal.SIGCONT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: agent process {agent.pid} is stopped (SIGSTOP, or a debugger); "
        f"send it SIGCONT first: kill -CONT {agent.pid}"
    ]
    assert took < 20, took  # not the 30 s wait
    # SIGCONT: the resume queued by the control file is applied.
    agent.wait_state("running")
    assert agent.stop() == 0


def test_resume_of_an_agent_that_is_stopping_fails_at_once(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    agent = agent_factory(
        source=seeded_queue(100),
        args=[
            "--processor",
            "slow",
            "--processor-option",
            "seconds=2",
            "--processor-option",
            "interruptible=false",
            "--batch-size",
            "5",
        ],
    )
    agent.start(wait_state="running")
    agent.wait_for(lambda: agent.stats()["in_progress"] > 0, "a batch in flight")
    agent.signal(signal.SIGTERM)
    agent.wait_state("stopping")
    proc = cli("resume", *dirs(agent), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: agent (pid {agent.pid}) is stopping; it takes no more commands"
    ]
    assert agent.wait_exit() == 0


def test_status_does_not_trust_a_reused_pid(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    agent = killed_agent_with_stale_files(agent_factory, seeded_queue)
    liveness = agent.health_dir / "liveness"
    liveness.write_text(liveness.read_text().replace(f"pid={agent.pid}", f"pid={os.getpid()}"))
    proc = cli("status", "-o", "json", "--health-dir", str(agent.health_dir), check=False)
    assert proc.returncode == 1
    status = json.loads(proc.stdout)
    assert status["state"] == "UNHEALTHY"
    assert status["problem"] == f"agent process {os.getpid()} is not running"
