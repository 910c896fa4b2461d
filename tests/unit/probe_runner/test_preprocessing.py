"""Resolving a model's preprocessing: field by field, the request over the config's parameters
over the preset; the model's metadata decides layout, datatype and fixed sizes."""

from __future__ import annotations

import numpy as np
import pytest

from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.probe_runner import preprocessing
from probelog.v1 import probe_runner_pb2 as pb
from probelog.v1 import types_pb2


def model(dims, datatype="FP32", **parameters) -> pb.ServedModel:
    return pb.ServedModel(
        name="m", max_batch_size=8,
        inputs=[pb.TensorSpec(name="x", datatype=datatype, dims=dims)],
        outputs=[pb.TensorSpec(name="logits", datatype="FP32", dims=[4])],
        parameters={f"probelog.{k}": v for k, v in parameters.items()},
    )


def test_each_field_comes_from_the_request_then_the_config_then_the_preset():
    served = model([3, 32, 32], preset="imagenet", mean="0.5", crop_fraction="0.9")
    prep = preprocessing.resolve(served, types_pb2.Preprocessing(crop_fraction=1.0))
    assert prep.preset == "imagenet"
    assert list(prep.mean) == [0.5] * 3  # the config's one value, for every channel
    assert list(prep.std) == pytest.approx(preprocessing.PRESETS["imagenet"]["std"])
    assert prep.crop_fraction == 1.0  # the request over the config
    asked = preprocessing.resolve(served, types_pb2.Preprocessing(preset="clip"))
    assert asked.preset == "clip" and list(asked.mean) == [0.5] * 3  # the config's mean over the preset's
    assert list(asked.std) == pytest.approx(preprocessing.PRESETS["clip"]["std"])
    default = preprocessing.resolve(model([32, 32, 3], "UINT8"))
    assert (default.preset, default.layout, default.datatype, default.height) == ("raw", "NHWC", "UINT8", 32)


def test_the_metadata_decides_what_the_request_may_only_repeat():
    with pytest.raises(FailedPrecondition, match="has a variable height"):
        preprocessing.resolve(model([3, -1, -1]))
    prep = preprocessing.resolve(model([3, -1, -1], height="20"), types_pb2.Preprocessing(width=28))
    assert (prep.height, prep.width) == (20, 28)
    with pytest.raises(FailedPrecondition, match="which is not NHWC"):
        preprocessing.resolve(model([3, 32, 32]), types_pb2.Preprocessing(layout="NHWC"))
    assert preprocessing.resolve(model([3, 32, 3]), types_pb2.Preprocessing(layout="NHWC")).width == 32
    with pytest.raises(FailedPrecondition, match="expected FP32, FP16 or UINT8 images"):
        preprocessing.resolve(model([3, 32, 32], "INT64"))


def test_bad_values_name_whose_fault_they_are():
    with pytest.raises(InvalidArgument, match=r"std: .* has a value <= 0") as bad_request:
        preprocessing.resolve(model([3, 8, 8]), types_pb2.Preprocessing(std=[1, 0, 1]))
    assert bad_request.value.field == "preprocessing.std"
    with pytest.raises(FailedPrecondition, match=r"'probelog\.mean' = '0\.4;0\.4' is not a number"):
        preprocessing.resolve(model([3, 8, 8], mean="0.4;0.4"))
    with pytest.raises(FailedPrecondition, match="resize: 'squash' is not one of crop, stretch"):
        preprocessing.resolve(model([3, 8, 8], resize="squash"))


def test_values_channels_and_layout():
    pixels = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    prep = preprocessing.resolve(
        model([3, 2, 2], "FP16", value_range="0-255", channel_order="BGR", mean="1,2,3", std="2,2,2")
    )
    x = preprocessing.to_input(pixels, prep)
    want = ((pixels[..., ::-1].astype(np.float32) - [1, 2, 3]) / 2).transpose(0, 3, 1, 2)
    assert x.dtype == np.float16 and x.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(x.astype(np.float32), want, rtol=1e-3)
    uint8 = preprocessing.to_input(pixels, preprocessing.resolve(model([2, 2, 3], "UINT8")))
    np.testing.assert_array_equal(uint8, pixels)
