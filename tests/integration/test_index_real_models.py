"""Indexing torchvision-style models through the public API (`probelog serve --embedded`): the
resolved preprocessing, output and labels are stored with the model and shown by GetModel,
`probelog models` and the hits; bad requests get a clear status."""

from __future__ import annotations

import pytest
import pytest_asyncio

from probelog.client import ProbeLogClient
from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.common.probe_sets import save_probe_set
from probelog.v1 import types_pb2
from tests.support import mini, procs, real_models

N_PROBES = 60  # more than the default r = 50


@pytest.fixture(scope="module")
def server(mini_world, tmp_path_factory):
    """The embedded server on the real-model hub, with the mini world's CLIP."""
    work = tmp_path_factory.mktemp("real-embedded")
    hub = real_models.build_hub(work / "hub")
    probes = work / "probes.npz"
    save_probe_set(probes, "real-probes", real_models.probe_images(N_PROBES))
    flags = mini.service_flags(mini_world)
    service = procs.start("embedded", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{hub}",
        *flags["clip"], "--probe-set-file", str(probes), "--background", str(mini_world.background_file),
    ], work)
    yield service
    assert service.stop() == 0, service.output()


@pytest_asyncio.fixture
async def client(server):
    async with ProbeLogClient(server.address) as client:
        yield client


async def test_the_resolved_preprocessing_output_and_labels_are_stored_and_shown(server, client):
    indexed = await client.index("labelled")
    assert list(indexed.model.labels) == real_models.LABELS
    await client.index("resnet18-nhwc-fp16", preprocessing=types_pb2.Preprocessing(crop_fraction=1.0))
    await client.index("softmax-head")

    info = await client.get_model("resnet18-nhwc-fp16")
    prep = info.preprocessing
    assert (prep.preset, prep.layout, prep.datatype, prep.height, prep.width) == ("inception", "NHWC", "FP16", 32, 32)
    assert (list(prep.mean), list(prep.std), prep.crop_fraction) == ([0.5] * 3, [0.5] * 3, 1.0)  # the request won
    assert (info.output_name, info.output_kind) == ("logits", "logits")
    softmax = await client.get_model("softmax-head")
    assert (softmax.output_name, softmax.output_kind) == ("probs", "probabilities")

    listed = procs.cli(["models", "--address", server.address])
    assert listed.returncode == 0, listed.stderr
    assert "input    inception: 32x32 crop 1, 0-1, mean [0.5, 0.5, 0.5], std [0.5, 0.5, 0.5], RGB NHWC FP16" in listed.stdout
    assert "output   probs (probabilities)" in listed.stdout
    assert "labels   tench, goldfish, great white shark, tiger shark, hammerhead: the shark" in listed.stdout

    hits = (await client.search("a fish", top_k=50, include=["labelled"])).hits
    assert sorted(h.label for h in hits) == sorted(real_models.LABELS)


async def test_bad_preprocessing_and_unusable_outputs_get_a_clear_status(server, client):
    # The client raises the domain error of the call's gRPC status.
    with pytest.raises(InvalidArgument, match="preset: 'vgg' is not one of imagenet, clip, inception, raw"):
        await client.index("resnet18", preprocessing=types_pb2.Preprocessing(preset="vgg"))
    with pytest.raises(FailedPrecondition, match="neither logits nor probabilities"):
        await client.index("one-hot-head")
    result = procs.cli(["index", "resnet18", "--preset", "clip", "--quiet", "--address", server.address])
    assert result.returncode == 0, result.stderr
    assert (await client.get_model("resnet18")).preprocessing.preset == "clip"
    cli_error = procs.cli(["index", "one-hot-head", "--quiet", "--address", server.address])
    assert cli_error.returncode == 1 and "Traceback" not in cli_error.stderr
    assert "one-hot-head: FAILED_PRECONDITION: model 'one-hot-head' output is neither" in cli_error.stderr
