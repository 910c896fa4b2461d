"""Command-line mistakes end in one clear line and exit code 2, never a traceback; every serve
flag says what it is, its default and its environment variable."""

from __future__ import annotations

import pytest

from probelog import cli
from probelog.common.settings import env_name, flag, flat_fields, separator
from tests.support import procs


def one_line_error(result, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr


def test_a_flag_the_service_does_not_take_is_an_error():
    result = procs.cli(["serve", "descriptor-store", "--clip-model", "NOPE", "--shard-count", "7"])
    one_line_error(result, "error: descriptor-store does not take --clip-model, --shard-count")
    # Embedded mode runs its peers in process: their addresses are no flags of it.
    result = procs.cli(["serve", "--embedded", "--store-address", "x:1"])
    one_line_error(result, "error: embedded does not take --store-address")


def test_an_unknown_flag_is_one_line():
    for args, flag_name in ((["serve", "ranker", "--no-such-flag", "1"], "--no-such-flag"), (["search", "cat", "--topk", "3"], "--topk")):
        result = procs.cli(args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"error: No such option '{flag_name}'") and len(result.stderr.splitlines()) == 1
    one_line_error(procs.cli(["serve", "nope"]), "error: service: 'nope' is not one of 'orchestrator', "
                   "'indexer', 'probe-runner', 'clip-encoder', 'descriptor-store', 'ranker', 'web'.")


def test_bad_numbers_and_missing_files_are_one_line(tmp_path):
    result = procs.cli(["search", "cat", "--top-k", "-3", "--address", "127.0.0.1:9"])
    one_line_error(result, "error: --top-k: must be at least 1, got -3")
    result = procs.cli(["serve", "ranker", "--shard-count", "seven"])
    one_line_error(result, "error: --shard-count: 'seven' is not a valid integer.")
    result = procs.cli(["serve", "ranker", "--batch-window-ms", "soon"])
    one_line_error(result, "error: --batch-window-ms: 'soon' is not a valid float.")
    result = procs.cli(["serve", "ranker"], env=procs.test_env(PROBELOG_SHARD_COUNT="seven"))
    assert result.returncode == 2 and result.stderr.strip().startswith(
        "error: PROBELOG_SHARD_COUNT: Input should be a valid integer"
    )
    result = procs.cli(["search", "--image", str(tmp_path / "missing.png"), "--address", "127.0.0.1:9"])
    one_line_error(result, f"error: No such file or directory: {tmp_path / 'missing.png'}")


def test_no_server_is_one_line():
    result = procs.cli(["models", "--address", "127.0.0.1:9"])
    assert result.returncode == 2 and result.stderr.startswith("error: UNAVAILABLE: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_help_describes_each_flag():
    result = procs.cli(["serve", "--help"])
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--text-cache-size TEXT_CACHE_SIZE Descriptors of this many recent query texts are kept in memory" in text
    assert "(default 1024; env PROBELOG_TEXT_CACHE_SIZE)" in text
    assert "(default 'json'; env PROBELOG_LOG_FORMAT)" in text
    assert "--prompt-templates PROMPT_TEMPLATES" in text and "('|'-separated)" in text
    assert "--auto-index / --no-auto-index" in text


@pytest.fixture(scope="module")
def serve_help() -> str:
    return " ".join(procs.cli(["serve", "--help"]).stdout.split())


@pytest.mark.parametrize("role", sorted(cli._services()))
def test_help_lists_description_default_and_env_of_every_flag_of_every_role(role, serve_help):
    settings_cls, _ = cli._services()[role]
    text = serve_help.replace(" ", "")  # the help wraps lines at spaces and hyphens
    for name, field in flat_fields(settings_cls).items():
        assert field.description, f"{role}: {name} has no description"
        default = field.get_default(call_default_factory=True)
        sep = separator(field)
        shown = sep.join(default) if sep is not None else default
        entry = f"{field.description} (default {shown!r}; env {env_name(name)})".replace(" ", "")
        assert flag(name) in text and entry in text, f"{role}: {flag(name)}"


def test_the_flag_wins_over_the_environment_which_wins_over_the_default(tmp_path):
    env_store, flag_store = tmp_path / "env-store", tmp_path / "flag-store"
    env = procs.test_env(PROBELOG_STORE_URL=f"file://{env_store}")
    service = procs.start("store", ["descriptor-store", "--store-url", f"file://{flag_store}"], tmp_path / "a", env=env)
    service.stop()
    assert (flag_store / "models").is_dir() and not env_store.exists()
    service = procs.start("store", ["descriptor-store"], tmp_path / "b", env=env)
    service.stop()
    assert (env_store / "models").is_dir()
    service = procs.start("store", ["descriptor-store"], tmp_path / "c")
    service.stop()
    assert (tmp_path / "c" / ".data" / "store" / "models").is_dir()  # the default, relative to the workdir
