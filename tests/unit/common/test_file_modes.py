"""Files the package writes are readable by the user a container runs as: 0644 less the umask."""

from __future__ import annotations

import os
import stat

from probelog.common.files import atomic_write_bytes


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_are_world_readable_under_the_usual_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a" / "b.bin", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a" / "b.bin") == 0o644
    assert _mode(tmp_path / "a") == 0o755
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"x"


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "c.bin", b"y")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "c.bin") == 0o600
