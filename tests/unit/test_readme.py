"""The README's claims that the code can check: its example processor is
examples/upper.py, and the liveness keys and metric names it names exist."""

from __future__ import annotations

import re
from pathlib import Path

from pulling_agent.health import COUNTER_KEYS, LAG_KEYS, TEXT_KEYS, render_liveness
from pulling_agent.metrics import Metrics
from pulling_agent.snapshot import Counters, Snapshot
from pulling_agent.state import Desired, State

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_example_processor_is_examples_upper_py() -> None:
    block = re.search(r"```python\n# examples/upper\.py\n(.*?)```", README, re.DOTALL)
    assert block is not None, "the README's processor example"
    source = (ROOT / "examples" / "upper.py").read_text()
    body = source.split('"""\n', 2)[-1].lstrip("\n")  # without the module docstring
    assert block.group(1) == body


def test_the_liveness_keys_the_readme_lists_are_the_ones_written() -> None:
    paragraph = README[README.index("- **Health files**") : README.index("- **Logs**")]
    listed = re.findall(r"`([a-z_]+)=`", paragraph)
    written = render_liveness(Snapshot(State.RUNNING, Desired.RUNNING, Counters(), pid=1))
    keys = [line.split("=", 1)[0] for line in written.splitlines()[2:]]
    assert listed == keys == [*COUNTER_KEYS, *TEXT_KEYS, *LAG_KEYS, "pid"]


def test_the_metrics_the_readme_names_exist() -> None:
    # The guide's own alert names one that does not exist: the README says so.
    named = set(re.findall(r"\b(pulling_agent_[a-z_]+?)(?:_total)?\b", README))
    named.discard("pulling_agent_expected_state")
    exported = {metric.name for metric in Metrics().registry.collect()}
    assert named and named <= exported, named - exported


def test_every_option_of_run_is_in_the_readme() -> None:
    from pulling_agent.cli.main import run

    row = next(line for line in README.splitlines() if line.startswith("| `pulling-agent run`"))
    for param in run.params:
        names = [*param.opts, *param.secondary_opts]
        assert any(f"`{name}" in row for name in names), names


def test_the_signal_table_names_every_signal_the_agent_handles() -> None:
    import signal

    from pulling_agent.channels.signals import CRASH_SIGNALS, SIGNAL_TABLE, signal_name

    section = README[README.index("### Signals") : README.index("**Order.**")]
    named = set(re.findall(r"`(SIG[A-Z0-9]+)`", section))
    for signum in (*SIGNAL_TABLE, *CRASH_SIGNALS):
        if signal.SIGRTMIN < signum < signal.SIGRTMAX:
            continue  # the table's `SIGRTMIN` … `SIGRTMAX`
        assert signal_name(signum) in named, signal_name(signum)
    assert {"SIGKILL", "SIGSTOP", "SIGPIPE", "SIGCHLD"} <= named
