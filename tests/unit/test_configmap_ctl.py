"""`pulling-agent ctl` as a real process, where no API server is needed:
usage errors (exit 2), configuration and network failures (exit 1, one line).
The API's own answers (missing ConfigMap, forbidden) are in tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulling_agent.cli.ctl import ctl
from testkit.agentproc import cli
from tests.unit.test_configmap_channel import write_kubeconfig


@pytest.mark.parametrize("command", ["pause", "resume", "status"])
def test_unreachable_api_is_one_line_and_exit_1(
    command: str, tmp_path: Path, unused_tcp_port: int
) -> None:
    server = f"https://127.0.0.1:{unused_tcp_port}"
    kubeconfig = write_kubeconfig(tmp_path, server)
    proc = cli("ctl", command, "--kubeconfig", str(kubeconfig), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        proc.stderr == f"Error: cannot reach the Kubernetes API at {server}: Connection refused\n"
    )
    assert "Traceback" not in proc.stdout + proc.stderr


def test_kubeconfig_from_the_environment(tmp_path: Path, unused_tcp_port: int) -> None:
    kubeconfig = write_kubeconfig(tmp_path, f"https://127.0.0.1:{unused_tcp_port}")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}
    proc = cli("ctl", "status", "-o", "json", check=False, env=env)
    assert proc.returncode == 1
    assert "cannot reach the Kubernetes API" in proc.stderr


def test_missing_kubeconfig(tmp_path: Path) -> None:
    proc = cli("ctl", "pause", "--kubeconfig", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 1
    assert proc.stderr == f"Error: kubeconfig {tmp_path / 'nope'} does not exist\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ctl", "pause", "--output", "yaml"], "Invalid value for '--output' / '-o'"),
        (["ctl", "status", "--no-such-option"], "No such option '--no-such-option'"),
        (["ctl", "stop"], "No such command 'stop'"),
        (["ctl", "pause", "--request-timeout", "0"], "Invalid value for '--request-timeout'"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = cli(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_defaults_match_a_default_install() -> None:
    def defaults(command: str) -> dict[str, object]:
        return {p.name: p.default for p in ctl.commands[command].params if p.name}

    for command in ("pause", "resume"):
        assert defaults(command)["configmap"] == "agent-control"
        assert defaults(command)["signal_selector"] == ""
    # The selector: the chart's annotation on the status ConfigMap, else the guide's label.
    assert defaults("status")["selector"] == ""
    assert defaults("pause")["status_configmap"] == ""  # <configmap>-status
    assert defaults("pause")["wait"] is True
    assert defaults("pause")["timeout"] == 60.0
    envvars = {p.name: p.envvar for p in ctl.commands["pause"].params if p.name}
    assert envvars["namespace"] == "PULLING_AGENT_NAMESPACE"
    assert envvars["signal_selector"] == "PULLING_AGENT_SIGNAL_SELECTOR"  # the chart's Jobs
