from __future__ import annotations

import pytest

from probelog.clip_encoder.config import EncoderSettings
from probelog.orchestrator.config import OrchestratorSettings


def test_environment_then_overrides():
    env = {
        "PROBELOG_RANKER_ADDRESSES": "a:1, b:2,,c:3",
        "PROBELOG_CALIBRATION_K": "7",
        "PROBELOG_AUTO_INDEX": "yes",
        "PROBELOG_LISTEN_ADDRESS": "127.0.0.1:1",
    }
    s = OrchestratorSettings.from_env({"calibration_k": 3, "r": None}, environ=env)
    assert s.ranker_addresses == ("a:1", "b:2", "c:3")
    assert s.calibration_k == 3  # the override wins
    assert s.r == 50  # None overrides nothing
    assert s.auto_index is True
    assert s.address(50051) == "127.0.0.1:1"
    assert OrchestratorSettings().address(50051) == "[::]:50051"


def test_prompt_templates_split_on_bars_not_commas():
    s = EncoderSettings.from_env(environ={"PROBELOG_PROMPT_TEMPLATES": "a photo of a {}, small.|art of {}"})
    assert s.prompt_templates == ("a photo of a {}, small.", "art of {}")


@pytest.mark.parametrize(("key", "value"), [("PROBELOG_AUTO_INDEX", "maybe"), ("PROBELOG_R", "many")])
def test_bad_values_name_the_variable(key, value):
    with pytest.raises(ValueError, match=key):
        OrchestratorSettings.from_env(environ={key: value})


def test_tls_settings():
    s = OrchestratorSettings(tls_cert_file="c.pem", tls_key_file="k.pem", tls_ca_file="ca.pem")
    assert s.server_tls is not None and s.server_tls.cert_file == "c.pem"
    assert s.client_tls is not None and s.client_tls.ca_file == "ca.pem"
    assert OrchestratorSettings().server_tls is None


def test_embedded_settings_nest_the_services_settings_under_their_flat_names():
    from probelog.common.settings import flat_fields
    from probelog.embedded import EmbeddedSettings

    env = {"PROBELOG_STORE_URL": "file:///tmp/s", "PROBELOG_CALIBRATION_K": "5", "PROBELOG_INDEX_DTYPE": "float32"}
    s = EmbeddedSettings.from_env({"clip_model": "ViT-B-32", "world": "w"}, environ=env)
    assert (s.store.store_url, s.orchestrator.calibration_k, s.ranker.index_dtype) == ("file:///tmp/s", 5, "float32")
    assert (s.encoder.clip_model, s.world) == ("ViT-B-32", "w")
    assert not s.runner.onnx_allow_paths  # paths as model names: an explicit development flag only
    names = set(flat_fields(EmbeddedSettings))
    # Peers are in-process: their addresses are no settings of the embedded process.
    assert not names & {"store_address", "runner_address", "encoder_address", "ranker_addresses"}
    assert {"listen_address", "store_url", "runner_url", "clip_model", "background", "r"} <= names
    with pytest.raises(TypeError, match="no settings"):
        EmbeddedSettings(store_address="x:1")
