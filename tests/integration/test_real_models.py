"""Models shaped like torchvision/timm exports, probed through a real tritonserver and the
in-process ONNX runner: preprocessing against torchvision.transforms.v2, outputs, labels.

The hub (:mod:`tests.support.real_models`) is exported from torch with random weights and
written as a Python-backend Triton repository; every check runs on both runners.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytest_asyncio

from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.probe_runner import preprocessing, triton_repo
from probelog.probe_runner.onnx_backend import OnnxProbeBackend
from probelog.probe_runner.runner import ProbeRunner
from probelog.probe_runner.triton import TritonProbeBackend
from probelog.v1 import types_pb2
from probelog_devstack import triton_server
from tests.support import real_models

R = 5  # top-r probes compared per logit (of 24)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return real_models.build_hub(tmp_path_factory.mktemp("real-hub"))


@pytest.fixture(scope="module")
def triton(hub, tmp_path_factory):
    repo = tmp_path_factory.mktemp("real-repo") / "models"
    triton_repo.write_repository(hub, repo, backend="python")
    server = triton_server.start(repo, tmp_path_factory.mktemp("real-triton"))
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def runners(hub, triton, tmp_path_factory):
    """{"triton": runner, "onnx": runner}, and the probe set's id and images."""
    store = FileDescriptorStore(tmp_path_factory.mktemp("real-store"))
    await store.open()
    images = real_models.probe_images()
    info, _ = await store.put_probe_set("real-probes", images)
    backend = TritonProbeBackend(triton.address, timeout_s=60)
    await backend.open()
    yield {"triton": ProbeRunner(backend, store), "onnx": ProbeRunner(OnnxProbeBackend(hub), store)}, info, images
    await backend.close()


def _oracle(images, transform):
    """torchvision.transforms.v2 applied to each probe as a PIL image: (n, C, H, W) float32."""
    from PIL import Image

    return np.stack([transform(Image.fromarray(img)).numpy() for img in images])


BOTH = pytest.mark.parametrize("which", ["triton", "onnx"])


@BOTH
async def test_what_reaches_an_imagenet_model_is_torchvisions_resize_crop_normalize(runners, which):
    import torch
    from torchvision.transforms import v2

    by_runner, info, images = runners
    result = await by_runner[which].probe("echo", "", info.probe_set_id)
    # torchvision's evaluation transform for 224 inputs (Resize(256), CenterCrop(224)), at 24.
    want = _oracle(images, v2.Compose([
        v2.Resize(27, interpolation=v2.InterpolationMode.BILINEAR),
        v2.CenterCrop(24),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(real_models.IMAGENET_MEAN, real_models.IMAGENET_STD),
    ]))
    np.testing.assert_allclose(result.logits.reshape(want.shape), want, rtol=0, atol=2e-6)
    prep = result.model.preprocessing
    assert (prep.preset, prep.height, prep.width, prep.resize, prep.layout, prep.datatype) == (
        "imagenet", 24, 24, "crop", "NCHW", "FP32"
    )
    assert preprocessing.crop_resize_size(prep) == 27  # floor(24 / 0.875)
    assert result.model.output_kind == "logits"


@BOTH
async def test_a_variable_size_fp16_nhwc_bgr_input_gets_its_configured_size(runners, which):
    import torch
    from torchvision.transforms import v2

    by_runner, info, images = runners
    result = await by_runner[which].probe("echo-variable", "", info.probe_set_id)
    h, w = real_models.VARIABLE_SIZE
    bgr = _oracle(images, v2.Compose([
        v2.Resize((h, w), interpolation=v2.InterpolationMode.BILINEAR),
        v2.ToImage(),
        v2.Lambda(lambda x: x[[2, 1, 0]]),
        v2.ToDtype(torch.float32, scale=False),
        v2.Normalize(real_models.CAFFE_MEAN, real_models.CAFFE_STD),
    ]))
    want = bgr.transpose(0, 2, 3, 1).astype(np.float16).astype(np.float32)  # NHWC, through FP16
    np.testing.assert_allclose(result.logits.reshape(want.shape), want, rtol=0, atol=1e-6)
    prep = result.model.preprocessing
    assert (prep.height, prep.width, prep.resize, prep.channel_order, prep.value_range) == (h, w, "stretch", "BGR", "0-255")
    assert (prep.layout, prep.datatype) == ("NHWC", "FP16")
    assert preprocessing.describe(prep).startswith("raw: 20x28 stretch, 0-255, mean [103.53, 116.28, 123.675]")


@BOTH
async def test_fp32_nchw_and_fp16_nhwc_exports_of_one_resnet_have_the_same_top_r_probes(runners, which):
    by_runner, info, _ = runners
    runner = by_runner[which]
    fp32 = await runner.probe("resnet18", "", info.probe_set_id)
    fp16 = await runner.probe("resnet18-nhwc-fp16", "", info.probe_set_id)
    assert fp16.model.preprocessing.preset == "inception" and fp16.model.preprocessing.layout == "NHWC"
    # FP16 inputs move these logits by about 1e-4: compare the top-r sets of the logits whose
    # r-th and (r+1)-th responses are ten times further apart than that.
    order = np.argsort(-fp32.logits, axis=0, kind="stable")
    compared = 0
    for logit in range(fp32.logits.shape[1]):
        column = fp32.logits[order[:, logit], logit]
        if column[R - 1] - column[R] < 1e-3:
            continue
        compared += 1
        want = set(order[:R, logit].tolist())
        assert set(np.argsort(-fp16.logits[:, logit], kind="stable")[:R].tolist()) == want
    assert compared >= real_models.N_CLASSES // 2
    np.testing.assert_allclose(fp16.logits, fp32.logits, rtol=0, atol=1e-3)


@BOTH
async def test_a_softmax_output_is_detected_and_indexed_as_log_probabilities(runners, which):
    by_runner, info, _ = runners
    runner = by_runner[which]
    probs = await runner.probe("softmax-head", "", info.probe_set_id)
    logits = await runner.probe("softmax-head-logits", "", info.probe_set_id)
    assert probs.model.output_kind == "probabilities" and logits.model.output_kind == "logits"
    shifted = logits.logits - logits.logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(probs.logits, log_softmax, rtol=0, atol=1e-4)


@BOTH
async def test_class_decisions_are_neither_logits_nor_probabilities_and_are_refused(runners, which):
    by_runner, info, _ = runners
    runner = by_runner[which]
    with pytest.raises(FailedPrecondition, match=r"neither logits nor probabilities: every value is 0 or 1"):
        await runner.probe("one-hot-head", "", info.probe_set_id)
    forced = await runner.probe("one-hot-head", "", info.probe_set_id, output_kind_request="logits")
    assert forced.model.output_kind == "logits" and set(np.unique(forced.logits)) == {0.0, 1.0}


@BOTH
async def test_the_configured_output_of_several_is_read_and_another_can_be_asked_for(runners, which):
    by_runner, info, _ = runners
    runner = by_runner[which]
    scores = await runner.probe("two-outputs", "", info.probe_set_id)
    assert (scores.model.output_name, scores.logits.shape) == ("scores", (24, len(real_models.LABELS)))
    embedding = await runner.probe("two-outputs", "", info.probe_set_id, output_name="embedding")
    assert (embedding.model.output_name, embedding.logits.shape) == ("embedding", (24, 16))
    with pytest.raises(FailedPrecondition, match=r"no output 'nope'; its outputs are \[embedding, scores\]"):
        await runner.probe("two-outputs", "", info.probe_set_id, output_name="nope")


@BOTH
async def test_a_triton_label_file_gives_a_label_per_logit(runners, which):
    by_runner, info, _ = runners
    labelled = await by_runner[which].probe("labelled", "", info.probe_set_id)
    assert list(labelled.model.labels) == real_models.LABELS
    unlabelled = await by_runner[which].probe("resnet18", "", info.probe_set_id)
    assert list(unlabelled.model.labels) == []


async def test_id2label_in_the_onnx_metadata_gives_the_in_process_runner_its_labels(runners):
    by_runner, info, _ = runners
    labelled = await by_runner["onnx"].probe("id2label", "", info.probe_set_id)
    assert list(labelled.model.labels) == real_models.LABELS


@BOTH
async def test_request_preprocessing_overrides_the_config_and_bad_values_are_refused(runners, which):
    by_runner, info, _ = runners
    runner = by_runner[which]
    raw = await runner.probe(
        "echo", "", info.probe_set_id, preprocessing_request=types_pb2.Preprocessing(preset="raw", resize="stretch")
    )
    assert (raw.model.preprocessing.preset, list(raw.model.preprocessing.mean)) == ("raw", [0, 0, 0])
    assert raw.logits.min() >= 0 and raw.logits.max() <= 1
    with pytest.raises(InvalidArgument, match="preset: 'vgg' is not one of imagenet, clip, inception, raw"):
        await runner.probe("echo", "", info.probe_set_id, preprocessing_request=types_pb2.Preprocessing(preset="vgg"))
    with pytest.raises(FailedPrecondition, match="has height 24, the preprocessing says 30"):
        await runner.probe("echo", "", info.probe_set_id, preprocessing_request=types_pb2.Preprocessing(height=30))
    with pytest.raises(FailedPrecondition, match="input 'images' is FP32, the request says FP16"):
        await runner.probe(
            "echo", "", info.probe_set_id, preprocessing_request=types_pb2.Preprocessing(datatype="FP16")
        )


async def test_the_probe_set_is_resized_once_per_distinct_geometry(runners):
    by_runner, info, _ = runners
    runner = ProbeRunner(by_runner["onnx"].backend, by_runner["onnx"]._probe_sets)
    # resnet18 and resnet18-nhwc-fp16 differ in preset, layout and dtype, not in geometry
    # (32 x 32, crop 0.875); softmax-head and labelled share another (32 x 32, crop 1).
    for name in ("resnet18", "resnet18-nhwc-fp16", "softmax-head", "labelled", "resnet18"):
        await runner.probe(name, "", info.probe_set_id)
    assert runner.resizes == 2
