from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "services") not in sys.path:
    sys.path.insert(0, str(REPO / "services"))


@pytest.fixture(scope="session")
def mini_world(tmp_path_factory: pytest.TempPathFactory):
    from tests.support import mini

    return mini.build(tmp_path_factory.mktemp("mini-world"))


@pytest.fixture(scope="session")
def embedded_process(mini_world, tmp_path_factory):
    """`probelog serve --embedded` on the mini world, as its own process (nothing indexed)."""
    from tests.support import mini, procs

    work = tmp_path_factory.mktemp("embedded")
    flags = mini.service_flags(mini_world)
    service = procs.start("embedded", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{mini_world.hub}",
        *flags["clip"], *flags["orchestrator"],
    ], work)
    yield service
    assert service.stop() == 0, service.output()


@pytest.fixture(scope="session")
def tiny_world():
    """The trained tiny world (`probelog world build --scale tiny --seed 0`), built into the data
    directory on first use (a few minutes) and reused after."""
    from probelog_world.build import cached_world

    return cached_world("tiny", 0, progress=False)
