"""Bad input from the command line, the environment and the control directory:
a one-line error naming the problem, or a warning and no harm; never a hang."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.types import FloatParamType

from pulling_agent.cli.main import main
from pulling_agent.cli.options import Duration
from testkit.agentproc import AGENT, cli
from tests.conftest import AgentFactory

pytestmark = pytest.mark.integration


def float_options() -> Iterator[tuple[list[str], click.Option]]:
    """(command path, option) for every float option of the command line (a number of
    seconds with a unit, `Duration`, included)."""

    def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Option]]:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
            return
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(
                param.type, FloatParamType | Duration
            ):
                yield path, param

    yield from walk(main, [])


FLOAT_OPTIONS = [
    pytest.param(path, option, id=f"{' '.join(path)} {option.opts[0]}")
    for path, option in float_options()
]


def harmless_args(path: list[str], tmp_path: Path) -> list[str]:
    """Options that keep a command away from the real /tmp/control, /tmp/health and queue."""
    command = main
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    names = {opt for param in command.params for opt in param.opts}
    args: list[str] = []
    for option, value in (
        ("--control-dir", tmp_path / "control"),
        ("--health-dir", tmp_path / "health"),
        ("--source", f"sqlite:///{tmp_path / 'queue.db'}"),
        ("--metrics-port", "0"),
        ("--kubeconfig", tmp_path / "no-kubeconfig"),
    ):
        if option in names:
            args += [option, str(value)]
    return args


def test_every_float_option_is_checked_for_finite_numbers() -> None:
    from pulling_agent.cli.options import FiniteFloatRange

    assert len(FLOAT_OPTIONS) >= 7
    for _, option in float_options():
        assert isinstance(option.type, FiniteFloatRange | Duration), option.opts


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
@pytest.mark.parametrize("through", ["flag", "environment"])
@pytest.mark.parametrize(("path", "option"), FLOAT_OPTIONS)
def test_nan_and_infinity_are_usage_errors(
    tmp_path: Path, path: list[str], option: click.Option, through: str, value: str
) -> None:
    args = [*path, *harmless_args(path, tmp_path)]
    env = dict(os.environ)
    if through == "flag":
        args += [option.opts[0], value]
    else:
        assert isinstance(option.envvar, str)
        env[option.envvar] = value
    try:
        proc = cli(*args, check=False, env=env, timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pulling-agent {' '.join(args)} accepted {value!r}") from None
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: Invalid value for '{option.opts[0]}'"), proc.stderr
    assert error.endswith(f"{value!r} is not a finite number."), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written"


def test_a_fifo_as_the_control_file_is_ignored_with_a_warning(
    agent_factory: AgentFactory, seeded_queue: Callable[[int], str]
) -> None:
    """Opening a FIFO for reading blocks until a writer comes: never at start,
    and never for good later (the control file channel must survive it)."""
    agent = agent_factory(source=seeded_queue(100_000), args=["--processor", "slow"])
    agent.control_dir.mkdir(parents=True)
    os.mkfifo(agent.control_dir / "state")
    agent.start(wait_state="running")
    warning = f"Ignoring control file {agent.control_dir / 'state'}: not a regular file (a FIFO)"
    agent.wait_for(lambda: warning in agent.messages(), "a warning about the FIFO")
    agent.write_control("pause")  # a regular file replaces the FIFO
    agent.wait_state("paused")
    # A FIFO that appears later does not kill the channel either.
    (agent.control_dir / "state").unlink()
    os.mkfifo(agent.control_dir / "state")
    agent.write_control("resume")
    agent.wait_state("running")
    assert agent.stop() == 0
    assert agent.messages().count(warning) >= 1


BROKEN_PROCESSORS = {
    "raises_on_import": ("raise RuntimeError('no licence key')\n", "RuntimeError: no licence key"),
    "syntax_error": ("def broken(:\n    pass\n", "SyntaxError: invalid syntax"),
    "init_raises": (
        "class Processor:\n"
        "    def __init__(self):\n"
        "        raise ConnectionError('model server down')\n",
        "ConnectionError: model server down",
    ),
    "missing_dependency": ("import no_such_dependency\n", "No module named 'no_such_dependency'"),
}


@pytest.mark.parametrize("module", list(BROKEN_PROCESSORS))
def test_a_processor_that_does_not_load_is_one_line_and_exit_2(tmp_path: Path, module: str) -> None:
    code, expected = BROKEN_PROCESSORS[module]
    (tmp_path / f"{module}.py").write_text(code)
    spec = f"{module}:Processor"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    args = ["run", "--processor", spec, *harmless_args(["run"], tmp_path)]
    proc = cli(*args, check=False, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"Error: processor '{spec}'"), lines[0]
    assert expected in lines[0]
    assert not (tmp_path / "queue.db").exists()  # the source is never opened
    # With --log-level debug, the processor's own traceback is there too.
    debug = cli(*args, "--log-level", "debug", check=False, env=env, timeout=60)
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr and f"{module}.py" in debug.stderr


def test_a_busy_metrics_port_is_named(tmp_path: Path, unused_tcp_port: int) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", unused_tcp_port))
        busy.listen()
        args = harmless_args(["run"], tmp_path)
        args[args.index("--metrics-port") + 1] = str(unused_tcp_port)
        proc = subprocess.run(
            [AGENT, "run", *args, "--metrics-address", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"Error: metrics port {unused_tcp_port} on 127.0.0.1: Address already in use "
        "(choose another --metrics-port, or 0 to turn metrics off)"
    )
    # Nothing claims the agent is up.
    assert (tmp_path / "health" / "liveness").read_text().splitlines()[0] == "stopped"
    assert not (tmp_path / "health" / "readiness").exists()
