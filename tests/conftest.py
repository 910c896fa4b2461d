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
