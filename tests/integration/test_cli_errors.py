"""Command-line mistakes end in one clear line and exit code 2, never a traceback; every serve
flag says what it is, its default and its environment variable."""

from __future__ import annotations

from tests.support import procs


def test_a_flag_the_service_does_not_take_is_an_error():
    result = procs.cli(["serve", "descriptor-store", "--clip-model", "NOPE", "--shard-count", "7"])
    assert result.returncode == 2
    assert result.stderr.strip() == "error: descriptor-store does not take --clip-model, --shard-count"


def test_bad_numbers_and_missing_files_are_one_line(tmp_path):
    result = procs.cli(["search", "cat", "--top-k", "-3", "--address", "127.0.0.1:9"])
    assert result.returncode == 2 and "--top-k: must be at least 1, got -3" in result.stderr
    result = procs.cli(["search", "--image", str(tmp_path / "missing.png"), "--address", "127.0.0.1:9"])
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: No such file or directory: {tmp_path / 'missing.png'}"
    assert "Traceback" not in result.stderr


def test_serve_help_describes_each_flag():
    result = procs.cli(["serve", "--help"])
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--text-cache-size TEXT_CACHE_SIZE Descriptors of this many recent query texts are kept in memory" in text
    assert "(default 1024; env PROBELOG_TEXT_CACHE_SIZE)" in text
    assert "(default 'json'; env PROBELOG_LOG_FORMAT)" in text
