"""Static checks that keep the code as STYLE asks: ruff everywhere, mypy strict on the paper's
math (core/) and the shared service code (common/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff():
    result = run(str(BIN / "ruff"), "check", "services", "tests", "bench", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_core_and_common():
    result = run(str(BIN / "mypy"), "services/probelog/core", "services/probelog/common")
    assert result.returncode == 0, result.stdout + result.stderr
