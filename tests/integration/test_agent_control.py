"""The agent as a real process, controlled by real signals and real control files."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.agentproc import AgentProcess, cli, write_kubelet_style
from tests.conftest import AgentFactory

pytestmark = pytest.mark.integration

SLOW = ["--processor", "slow", "--processor-option", "seconds=0.01", "--batch-size", "5"]


@pytest.fixture
def busy_agent(agent_factory: AgentFactory, seeded_queue: Callable[[int], str]) -> AgentProcess:
    """An agent with a long queue of slow documents, running."""
    agent = agent_factory(source=seeded_queue(100_000), args=SLOW)
    return agent.start(wait_state="running")


def test_a_pause_never_leaves_the_next_batch_claimed(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    """Each batch's end claims the next one. With `noop` the agent is almost
    always between those two, so every pause lands there: once PAUSED, it
    holds nothing, and nothing is lost."""
    total = 60_000
    source = seeded_queue(total)
    agent = agent_factory(source=source, args=["--processor", "noop"])
    agent.start(wait_state="running")
    done = 0
    for _ in range(5):
        agent.wait_for(lambda done=done: agent.stats()["done"] > done, "progress")
        agent.signal(signal.SIGUSR1)
        agent.wait_state("paused")
        stats = agent.stats()
        assert stats["in_progress"] == 0, stats
        assert stats["pending"] + stats["done"] == total
        done = stats["done"]
        if stats["pending"] < total // 2:
            # A fast machine drains the queue in well under a second: top it
            # up while paused, so that the next round has batches to stop.
            cli("seed", "--count", str(total), "--source", source)
            total += total
        agent.signal(signal.SIGUSR2)
        agent.wait_state("running")
    assert agent.stop() == 0
    assert agent.stats()["in_progress"] == 0


def test_sigusr1_pauses_and_sigusr2_resumes(busy_agent: AgentProcess) -> None:
    agent = busy_agent
    agent.wait_for(lambda: agent.liveness().get("documents", "0") != "0", "some documents done")
    assert agent.ready()
    agent.signal(signal.SIGUSR1)
    agent.wait_state("paused")
    assert not agent.ready()
    live = agent.liveness()
    assert live["desired_state"] == "paused"
    assert live["channel"] == "signal" and live["reason"] == "SIGUSR1"
    assert live["paused_since"]
    done = agent.liveness()["documents"]
    # Paused means no batch: the count holds over several heartbeats.
    before = agent.liveness_lines()[1]
    agent.wait_for(lambda: agent.liveness_lines()[1:2] != [before], "a heartbeat while paused")
    agent.wait_for(lambda: agent.liveness_lines()[1:2] != [before], "another heartbeat")
    assert agent.liveness()["documents"] == done
    agent.signal(signal.SIGUSR2)
    agent.wait_state("running")
    assert agent.ready()
    agent.wait_for(lambda: agent.liveness()["documents"] != done, "processing resumed")
    messages = agent.messages()
    assert "Pausing agent" in messages and "Resuming agent" in messages
    assert agent.stop() == 0


def test_control_file_pauses_and_resumes(busy_agent: AgentProcess) -> None:
    agent = busy_agent
    agent.write_control("pause\n")
    agent.wait_state("paused")
    assert "Control file command detected: pause" in agent.messages()
    agent.write_control("  Running ")
    agent.wait_state("running")
    agent.write_control("PAUSE")
    agent.wait_state("paused")
    agent.write_control("resume")
    agent.wait_state("running")
    assert agent.stop() == 0


def test_kubelet_style_symlink_swap(busy_agent: AgentProcess) -> None:
    agent = busy_agent
    write_kubelet_style(
        agent.control_dir, {"state": "pause", "reason": "db backup", "requested-by": "ops-team"}
    )
    agent.wait_state("paused")
    live = agent.liveness()
    assert (live["reason"], live["requested_by"], live["channel"]) == (
        "db backup",
        "ops-team",
        "file",
    )
    write_kubelet_style(agent.control_dir, {"state": "running", "reason": "done"})
    agent.wait_state("running")
    assert agent.stop() == 0


def test_garbage_control_file_changes_nothing(busy_agent: AgentProcess) -> None:
    agent = busy_agent
    agent.control_dir.mkdir(exist_ok=True)
    (agent.control_dir / "state").write_bytes(b"\x00\xffgarbage" * 1000)
    agent.wait_for(lambda: any("Ignoring control file" in m for m in agent.messages()), "a warning")
    assert agent.state() == "running" and agent.running()
    agent.write_control("halt")
    agent.wait_for(
        lambda: any("unknown control state 'halt'" in m for m in agent.messages()),
        "a warning naming the word",
    )
    assert agent.state() == "running"
    agent.write_control("pause")
    agent.wait_state("paused")
    assert agent.stop() == 0


def test_starts_paused_and_processes_nothing(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    agent = agent_factory(source=seeded_queue(50))
    agent.write_control("pause")
    agent.start(wait_state="paused")
    # Several heartbeats later, still nothing taken from the queue.
    first = agent.liveness_lines()[1]
    agent.wait_for(lambda: agent.liveness_lines()[1:2] != [first], "a heartbeat")
    assert agent.stats() == {"pending": 50, "in_progress": 0, "done": 0, "failed": 0}
    assert not agent.ready()
    agent.write_control("running")
    agent.wait_for(lambda: agent.stats()["done"] == 50, "all documents done")
    assert agent.stop() == 0


def test_signal_resume_is_not_undone_by_unchanged_file(busy_agent: AgentProcess) -> None:
    agent = busy_agent
    agent.write_control("pause")
    agent.wait_state("paused")
    agent.signal(signal.SIGUSR2)  # the operator's emergency resume
    agent.wait_state("running")
    agent.write_control("pause\n")  # same word rewritten (the kubelet's periodic copy)
    agent.wait_for(lambda: agent.liveness_lines()[1:2] != [], "a heartbeat")
    first = agent.liveness_lines()[1]
    agent.wait_for(lambda: agent.liveness_lines()[1:2] != [first], "another heartbeat")
    assert agent.state() == "running"
    assert agent.stop() == 0


def test_local_cli_pause_resume_status(busy_agent: AgentProcess) -> None:
    agent = busy_agent
    dirs = ["--control-dir", str(agent.control_dir), "--health-dir", str(agent.health_dir)]
    out = cli("pause", "--reason", "db maintenance", "--by", "alice", *dirs).stdout
    assert "SIGUSR1 signal sent to pid" in out and "✓ Agent successfully paused" in out
    assert agent.state() == "paused"
    assert (agent.control_dir / "state").read_text().strip() == "pause"
    status = json.loads(
        cli("status", "--output", "json", "--health-dir", str(agent.health_dir)).stdout
    )
    assert status["state"] == "PAUSED"
    assert status["reason"] == "db maintenance" and status["requested_by"] == "alice"
    assert status["ready"] is False
    text = cli("status", "--health-dir", str(agent.health_dir)).stdout
    assert "PAUSED" in text and "db maintenance" in text
    out = cli("resume", *dirs).stdout
    assert "✓ Agent successfully resumed" in out
    # The same word as `ctl resume` and the control script write.
    assert (agent.control_dir / "state").read_text().strip() == "resume"
    assert (
        json.loads(cli("status", "-o", "json", "--health-dir", str(agent.health_dir)).stdout)[
            "state"
        ]
        == "RUNNING"
    )
    assert agent.stop() == 0
    # After a clean stop the agent is reported as stopped, not running.
    status = json.loads(cli("status", "-o", "json", "--health-dir", str(agent.health_dir)).stdout)
    assert status["state"] == "STOPPED"


def test_status_shows_backlog_rate_and_time_to_drain(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    """The guide's "check if agent is behind", without grep: `pulling-agent status`."""
    agent = agent_factory(
        source=seeded_queue(3000),
        args=("--processor", "slow", "--processor-option", "seconds=0.005", "--batch-size", "5"),
    ).start("running")
    agent.wait_for(
        lambda: agent.liveness().get("drain_eta_seconds"), "a time to drain in the liveness file"
    )
    status = json.loads(cli("status", "-o", "json", "--health-dir", str(agent.health_dir)).stdout)
    assert 0 < status["backlog_documents"] < 3000
    assert status["documents_per_second"] > 0
    assert status["backlog_change_per_second"] < 0
    assert status["drain_eta_seconds"] > 0
    text = cli("status", "--health-dir", str(agent.health_dir)).stdout
    assert re.search(r"^Backlog: +\d+ documents$", text, re.M), text
    assert re.search(r"^Rate: +[0-9.]+ documents/s by this agent \(last \d+ s\)$", text, re.M)
    assert re.search(r"^Trend: +draining, -[0-9.]+ documents/s", text, re.M), text
    assert re.search(r"^Drained in: +~\d+", text, re.M), text
    # The first liveness lines stay what operators grep.
    assert agent.liveness_lines()[2].startswith("batches=")
    assert agent.liveness_lines()[3].startswith("documents=")
    assert agent.stop() == 0


def test_status_without_an_agent_is_unhealthy(tmp_path: Path) -> None:
    proc = cli("status", "--health-dir", str(tmp_path / "none"), check=False)
    assert proc.returncode == 1
    assert "UNHEALTHY" in proc.stdout and "is the agent running?" in proc.stdout


def test_metrics_endpoint(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str], unused_tcp_port: int
) -> None:
    agent = agent_factory(
        source=seeded_queue(20),
        args=["--metrics-port", str(unused_tcp_port), "--metrics-address", "127.0.0.1"],
    )
    agent.start(wait_state="running")
    agent.wait_for(lambda: agent.stats()["done"] == 20, "all done")
    agent.write_control("garbage")
    agent.wait_for(lambda: any("Ignoring control file" in m for m in agent.messages()), "warning")
    agent.signal(signal.SIGUSR1)
    agent.wait_state("paused")
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    assert 'pulling_agent_state{state="paused"} 1.0' in body
    # A signal pauses the agent, but what the control file/ConfigMap asks for
    # is still running: the mismatch the PrometheusRule alerts on.
    assert 'pulling_agent_declared_state{state="running"} 1.0' in body
    assert 'pulling_agent_documents_total{outcome="done"} 20.0' in body
    assert (
        'pulling_agent_control_commands_total{channel="signal",command="pause",'
        'result="applied"} 1.0'
    ) in body
    assert "pulling_agent_batch_duration_seconds_bucket" in body
    assert 'pulling_agent_control_errors_total{channel="file",kind="invalid"} 1.0' in body
    agent.write_control("pause")
    agent.wait_for(lambda: agent.liveness().get("declared_state") == "paused", "declared paused")
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    assert 'pulling_agent_declared_state{state="paused"} 1.0' in body
    assert agent.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nosuch:///x"], "unknown source scheme 'nosuch'"),
        (["--source", "no-scheme"], "has no scheme"),
        (["--processor", "nosuch"], "unknown processor 'nosuch'"),
        (["--processor", "os:nosuch"], "has no attribute"),
        (["--processor-option", "novalue"], "is not key=value"),
        (["--batch-size", "0"], "--batch-size"),
        (["--processor", "slow", "--processor-option", "seconds=-1"], "seconds"),
    ],
)
def test_bad_input_is_a_usage_error_naming_it(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = cli(
        "run",
        "--health-dir",
        str(tmp_path / "h"),
        "--control-dir",
        str(tmp_path / "c"),
        "--metrics-port",
        "0",
        *args,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_shell_redirect_writes_are_read_whole(busy_agent: AgentProcess) -> None:
    """`echo pause > state` truncates before it writes: never read in between."""
    agent = busy_agent
    agent.control_dir.mkdir(exist_ok=True)
    for word, state in [("pause", "paused"), ("running", "running")] * 5:
        subprocess.run(["sh", "-c", f"echo {word} > state"], cwd=agent.control_dir, check=True)
        agent.wait_state(state)
    assert not any("control state is empty" in m for m in agent.messages())
    assert agent.stop() == 0


def test_local_cli_no_wait_and_exit_3_when_the_state_is_not_reached(
    agent_factory: AgentFactory,
) -> None:
    """The exit table the three front ends share (issue 13): --no-wait returns once the
    request is written and signalled; a pause still waiting for its batch boundary when
    --timeout ends is exit 3, naming what the agent reports instead."""
    agent = agent_factory(
        "long-batch",
        args=["--seed", "50", "--processor", "slow", "--processor-option", "seconds=1",
              "--processor-option", "interruptible=false", "--batch-size", "10"],
    ).start("running")  # fmt: skip
    dirs = ["--control-dir", str(agent.control_dir), "--health-dir", str(agent.health_dir)]
    # A batch of 10 one-second documents is in flight: a pause waits up to 10 s for its end.
    agent.wait_for(lambda: agent.stats()["in_progress"] > 0, "a batch in flight")
    proc = cli("pause", "--timeout", "1s", *dirs, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "is running, not paused, after 1s" in proc.stderr
    assert proc.stderr.startswith("✗ agent (pid ")
    assert (agent.control_dir / "state").read_text().strip() == "pause"  # written all the same
    proc = cli("resume", "--no-wait", *dirs)
    assert "SIGUSR2 signal sent to pid" in proc.stdout
    assert "Not waiting (--no-wait)" in proc.stdout and "successfully" not in proc.stdout
    agent.wait_state("running")
    assert agent.stop() == 0
