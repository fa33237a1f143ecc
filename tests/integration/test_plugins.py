"""Third-party plug-ins found the way a pip-installed package is found.

The examples in `examples/` are put on the agent's PYTHONPATH next to a
`.dist-info` directory declaring their entry points: exactly what pip leaves
behind when it installs a package, so the agent discovers them through
`importlib.metadata` as it would in production.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import AgentFactory

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def install_like_pip(site: Path) -> None:
    for module in ("memory_queue.py", "upper.py"):
        shutil.copy(EXAMPLES / module, site / module)
    dist = site / "example_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: example-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[pulling_agent.sources]\nmemory = memory_queue:MemorySource\n\n"
        "[pulling_agent.processors]\nupper = upper:Upper\n"
    )


@pytest.mark.parametrize("processor", ["upper", "upper:Upper"])
def test_third_party_source_and_processor(
    agent_factory: AgentFactory, tmp_path: Path, processor: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_like_pip(site)
    agent = agent_factory(
        source="memory://",
        args=["--seed", "50", "--processor", processor, "--processor-option", "suffix=!"],
        env={"PYTHONPATH": str(site)},
    )
    agent.start(wait_state="running")
    agent.wait_for(lambda: agent.liveness().get("documents") == "50", "50 documents done")
    assert agent.stop() == 0
    assert any("source=memory://" in m for m in agent.messages())
