"""The images deploy/docker builds: the roles table."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = REPO_ROOT / "deploy" / "docker" / "roles"


def roles() -> dict[str, set[str]]:
    """deploy/docker/roles: each role's extras (of pyproject.toml's optional dependencies)."""
    table = {}
    for line in ROLES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            role, extras = line.split()
            table[role] = set(extras.split(","))
    return table
