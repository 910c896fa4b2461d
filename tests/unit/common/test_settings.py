from __future__ import annotations

import pytest

from probelog.clip_encoder.config import EncoderSettings
from probelog.orchestrator.config import OrchestratorSettings
from probelog.ranker.config import RankerSettings


def setenv(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_environment_then_overrides(monkeypatch):
    setenv(monkeypatch, {
        "PROBELOG_RANKER_ADDRESSES": "a:1, b:2,,c:3",
        "PROBELOG_CALIBRATION_K": "7",
        "PROBELOG_AUTO_INDEX": "yes",
        "PROBELOG_LISTEN_ADDRESS": "127.0.0.1:1",
    })
    s = OrchestratorSettings.from_env({"calibration_k": 3, "r": None})
    assert s.ranker_addresses == ("a:1", "b:2", "c:3")
    assert s.calibration_k == 3  # the override wins
    assert s.r == 50  # None overrides nothing
    assert s.auto_index is True
    assert s.address(50051) == "127.0.0.1:1"
    monkeypatch.delenv("PROBELOG_LISTEN_ADDRESS")
    assert OrchestratorSettings().address(50051) == "[::]:50051"


def test_prompt_templates_split_on_bars_not_commas(monkeypatch):
    monkeypatch.setenv("PROBELOG_PROMPT_TEMPLATES", "a photo of a {}, small.|art of {}")
    s = EncoderSettings.from_env()
    assert s.prompt_templates == ("a photo of a {}, small.", "art of {}")


@pytest.mark.parametrize(("key", "value"), [("PROBELOG_AUTO_INDEX", "maybe"), ("PROBELOG_R", "many")])
def test_bad_values_name_the_variable(monkeypatch, key, value):
    monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=key):
        OrchestratorSettings.from_env()


def test_bad_flag_values_name_the_flag():
    with pytest.raises(ValueError, match=r"^--shard-count: Input should be a valid integer"):
        RankerSettings.from_env({"shard_count": "seven"})


def test_tls_settings():
    s = OrchestratorSettings(tls_cert_file="c.pem", tls_key_file="k.pem", tls_ca_file="ca.pem")
    assert s.server_tls is not None and s.server_tls.cert_file == "c.pem"
    assert s.client_tls is not None and s.client_tls.ca_file == "ca.pem"
    assert OrchestratorSettings().server_tls is None


def test_embedded_settings_nest_the_services_settings_under_their_flat_names(monkeypatch):
    from probelog.common.settings import flat_fields
    from probelog.embedded import EmbeddedSettings

    setenv(monkeypatch, {
        "PROBELOG_STORE_URL": "file:///tmp/s", "PROBELOG_CALIBRATION_K": "5", "PROBELOG_INDEX_DTYPE": "float32",
        "PROBELOG_CLIP_MODEL": "RN50",
    })
    s = EmbeddedSettings.from_env({"clip_model": "ViT-B-32", "world": "w"})
    assert (s.store.store_url, s.orchestrator.calibration_k, s.ranker.index_dtype) == ("file:///tmp/s", 5, "float32")
    assert (s.encoder.clip_model, s.world) == ("ViT-B-32", "w")  # the flag over the environment
    assert not s.runner.onnx_allow_paths  # paths as model names: an explicit development flag only
    names = set(flat_fields(EmbeddedSettings))
    # Peers are in-process: their addresses are no settings of the embedded process.
    assert not names & {"store_address", "runner_address", "encoder_address", "ranker_addresses"}
    assert {"listen_address", "store_url", "runner_url", "clip_model", "background", "r"} <= names
    with pytest.raises(TypeError, match="no settings"):
        EmbeddedSettings(store_address="x:1")


def test_embedded_world_fills_only_what_is_left_at_its_default(tmp_path):
    from probelog.embedded import EmbeddedSettings, resolve

    world = tmp_path / "world"
    world.mkdir()
    (world / "world.json").write_text('{"clip_model_name": "tiny-clip"}')
    s = resolve(EmbeddedSettings(world=str(world), background="mine.txt", r=7))
    assert (s.orchestrator.background, s.orchestrator.r) == ("mine.txt", 7)  # given: kept
    assert s.encoder.clip_model == "tiny-clip" and s.runner.runner_url.startswith("onnx://")  # from the world
    assert s.orchestrator.probe_set_file.startswith(str(world.resolve()))


def test_nested_settings_passed_whole_or_by_flat_name():
    from probelog.descriptor_store.config import StoreSettings
    from probelog.embedded import EmbeddedSettings

    s = EmbeddedSettings(store=StoreSettings(store_url="file:///a", redis_retry_s=1.0), redis_key_prefix="p")
    assert (s.store.store_url, s.store.redis_retry_s, s.store.redis_key_prefix) == ("file:///a", 1.0, "p")
    changed = s.updated({"store_url": "file:///b", "web_port": 0, "index_dtype": "float32"})
    assert (changed.store.store_url, changed.web_port, changed.ranker.index_dtype) == ("file:///b", 0, "float32")
    assert s.store.store_url == "file:///a"  # settings are frozen: updated() copies
    with pytest.raises(ValueError, match="frozen"):
        s.web_port = 3
