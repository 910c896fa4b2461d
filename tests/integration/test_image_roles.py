"""Each image role (deploy/docker/roles) imports with exactly its extras: the role's modules
import in a fresh interpreter where every other extra's packages are absent, and fail to import
without each of its own. Real imports of the installed packages (torch for the encoder)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.images import REPO_ROOT, roles

# The modules of each extra of pyproject.toml, and what each role imports to serve.
EXTRA_MODULES = {
    "clip": ("torch", "torchvision", "open_clip"),
    "redis": ("redis",),
    "triton": ("tritonclient",),
    "fast": ("numba",),
    "web": ("starlette", "jinja2", "uvicorn", "multipart"),
    "tracing": ("opentelemetry",),
}
# What each role runs to serve: its composition root and the adapters that load its extras
# (the encoder imports torch only when it picks a device).
ROLE_CODE = {
    "orchestrator": "import probelog.cli, probelog.orchestrator.main, probelog.common.tracing",
    "indexer": "import probelog.cli, probelog.orchestrator.main, probelog.orchestrator.work_queue",
    "descriptor-store": "import probelog.descriptor_store.main, probelog.descriptor_store.redis_store",
    "probe-runner": "import probelog.probe_runner.main, probelog.probe_runner.triton",
    "clip-encoder": (
        "import probelog.clip_encoder.main\n"
        "from probelog.clip_encoder.open_clip import resolve_device\n"
        "resolve_device('cpu')"
    ),
    "ranker": "import probelog.ranker.main, probelog.core._compiled",
    "web": "import probelog.web.main",
    "embedded": "import probelog.embedded",
}
_RUN_WITHOUT = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(",")) - {""}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (left out of this image)", name=name)
        return None
sys.meta_path.insert(0, Block())
exec(sys.argv[2])
"""


def run_without(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where the top-level packages ``blocked`` are absent."""
    return subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT, ",".join(sorted(blocked)), code],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "services")},
    )


def test_roles_cover_the_services_and_only_the_encoder_carries_torch() -> None:
    table = roles()
    assert set(table) == set(ROLE_CODE)
    assert set().union(*table.values()) <= set(EXTRA_MODULES)
    assert {role for role, extras in table.items() if "clip" in extras} == {"clip-encoder", "embedded"}
    assert all("tracing" in extras for extras in table.values())


@pytest.mark.parametrize("role", sorted(ROLE_CODE))
def test_each_role_imports_with_its_extras_only(role: str) -> None:
    extras = roles()[role]
    absent = {m for extra, modules in EXTRA_MODULES.items() if extra not in extras for m in modules}
    result = run_without(absent, ROLE_CODE[role])
    assert result.returncode == 0, result.stderr[-3000:]
    if role == "embedded":
        return  # every service's adapters: the union of the others' extras
    # And needs each of them: without its modules, the role's adapters do not import.
    for extra in extras - {"tracing"}:  # tracing is imported only when OTEL_* asks for it
        result = run_without(absent | set(EXTRA_MODULES[extra]), ROLE_CODE[role])
        assert result.returncode != 0 and "left out of this image" in result.stderr, (role, extra)


