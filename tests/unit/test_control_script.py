"""control/control-agent.sh run for real with bash: its arguments, exit codes
and failure messages, and colour only on a terminal. What it does to a
cluster is in tests/e2e/test_control_script.py."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "control" / "control-agent.sh"
KUBECTL = ROOT / "bin" / "kubectl"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"

needs_kubectl = pytest.mark.skipif(
    not KUBECTL.exists(), reason="bin/kubectl missing: run 'make tools'"
)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=60,
    )


def run_on_a_terminal(*args: str, **env: str) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; (exit status, output)."""
    leader, follower = pty.openpty()
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), *args], stdout=follower, stderr=follower, env={**base, **env}
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode()


def test_shellcheck_clean() -> None:
    if not SHELLCHECK.exists():
        pytest.skip("shellcheck missing from the virtualenv: pip install -e '.[dev]'")
    proc = subprocess.run([str(SHELLCHECK), str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_help_exits_0_and_documents_the_defaults() -> None:
    for arg in ("help", "--help", "-h"):
        proc = run(arg)
        assert proc.returncode == 0
        assert proc.stdout.startswith("Usage: control-agent.sh [options] pause|resume|status|help")
    text = run("help").stdout
    for expected in (
        "default: pulling-agent",
        "default: agent-control",
        "the one the chart\n                       made for it (found by the release label)",
        "app.kubernetes.io/instance=<release>,app.kubernetes.io/component=agent",
        "NAMESPACE",
        "3 verification failed",
    ):
        assert expected in text


def test_no_command_prints_usage_and_exits_2() -> None:
    proc = run()
    assert proc.returncode == 2
    assert proc.stderr.startswith("Usage: ")


def test_unknown_command_prints_usage_and_exits_2() -> None:
    proc = run("frobnicate")
    assert proc.returncode == 2
    assert proc.stderr.startswith("control-agent.sh: unknown command: frobnicate\n\nUsage: ")
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "--bogus"], "unknown option: --bogus"),
        (["pause", "--reason"], "option --reason needs a value"),
        (["-n"], "option -n needs a value"),
        (
            ["pause", "--timeout", "soon"],
            "--timeout must be whole seconds (or 90s, 2m, 1h), not 'soon'",
        ),
        (["pause", "resume"], "one command at a time (pause, resume)"),
        (["status", "--release="], "--release must not be empty"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"control-agent.sh: {message}\nRun 'control-agent.sh help' for usage.\n"


def test_missing_kubectl_exits_1() -> None:
    proc = run("pause", KUBECTL="/nonexistent/kubectl")
    assert proc.returncode == 1
    assert proc.stderr == (
        "✗ kubectl not found: '/nonexistent/kubectl' (install it, or set KUBECTL to its path)\n"
    )


@needs_kubectl
@pytest.mark.parametrize("command", ["pause", "resume", "status"])
def test_unreachable_cluster_fails_fast_with_kubectls_reason(
    command: str, tmp_path: Path, unused_tcp_port: int
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:{unused_tcp_port}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: t}}
contexts:
- name: c
  context: {{cluster: c, user: u}}
current-context: c
"""
    )
    proc = run(command, KUBECTL=str(KUBECTL), KUBECONFIG=str(kubeconfig), NAMESPACE="prod")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "✗ cannot reach the cluster or read ConfigMap agent-control in namespace prod: "
    )
    assert f"127.0.0.1:{unused_tcp_port}" in last and "refused" in last
    # Nothing was claimed: no "ConfigMap updated", no signals.
    assert "updated" not in proc.stdout and "signal" not in proc.stdout


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    red = "\x1b[31m"
    code, output = run_on_a_terminal("pause", KUBECTL="/nonexistent/kubectl")
    assert code == 1 and red in output
    code, output = run_on_a_terminal("pause", KUBECTL="/nonexistent/kubectl", NO_COLOR="1")
    assert code == 1 and "\x1b[" not in output and "kubectl not found" in output
    proc = run("pause", KUBECTL="/nonexistent/kubectl")  # a pipe, not a terminal
    assert "\x1b[" not in proc.stderr
