"""How probe images become a model's input tensor: described once, applied by every backend.

A :class:`~probelog.v1.types_pb2.Preprocessing` is resolved per model from, in order:

1. the request's fields (IndexModel / Probe ``preprocessing``), where set;
2. the model config's parameters (Triton ``parameters``, keys :data:`PARAMETER_KEYS`), where set;
3. the preset named by the request, else by the config's ``probelog.preset``, else ``raw``;

while the input's layout (NCHW/NHWC), datatype (FP32/FP16/UINT8) and size come from the
model's metadata (a configured size is required only where its height or width is -1).

It is applied in two steps, so that a hub of many models with few distinct preprocessings
decodes and resizes the probe set once per distinct geometry (:func:`geometry_key`):

- :func:`resize_images`: uint8 (n, h, w, 3) RGB probes to (n, height, width, 3), by the resize
  policy, with PIL's bilinear filter (the filter torchvision's ``Resize`` applies to PIL images);
- :func:`to_input`: a batch of those as the model's tensor (value range, mean/std, channel
  order, layout, dtype), cheap enough to do per inference batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.v1 import probe_runner_pb2 as pb
from probelog.v1 import types_pb2

#: Presets: the values a preprocessing starts from. Mean and std are in value_range units.
PRESETS: dict[str, dict[str, Any]] = {
    # torchvision / timm ImageNet weights: Resize(256) + CenterCrop(224) at 224.
    "imagenet": {
        "resize": "crop", "crop_fraction": 0.875, "value_range": "0-1",
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channel_order": "RGB",
    },
    # OpenAI CLIP / open_clip: shorter side to the input size, centre crop, CLIP's statistics.
    "clip": {
        "resize": "crop", "crop_fraction": 1.0, "value_range": "0-1",
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
        "channel_order": "RGB",
    },
    # Inception-style weights (timm inception_v3, many TF ports): values mapped to [-1, 1].
    "inception": {
        "resize": "crop", "crop_fraction": 0.875, "value_range": "0-1",
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "channel_order": "RGB",
    },
    # Pixels in [0, 1] and nothing else: for models that normalise inside their graph.
    "raw": {
        "resize": "crop", "crop_fraction": 1.0, "value_range": "0-1",
        "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channel_order": "RGB",
    },
}
DEFAULT_PRESET = "raw"
#: The prefix of ProbeLog's keys among a Triton model config's ``parameters``.
PARAMETER_PREFIX = "probelog."
#: Config parameter keys (after the prefix) that set a preprocessing field.
PARAMETER_KEYS = (
    "preset", "height", "width", "resize", "crop_fraction", "value_range", "mean", "std",
    "channel_order", "layout",
)
RESIZE_POLICIES = ("crop", "stretch")
VALUE_RANGES = {"0-1": 1.0, "0-255": 255.0}
CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
DATATYPES = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8}


def _requested_fields(requested: types_pb2.Preprocessing | None) -> dict[str, Any]:
    """The fields a request sets (proto3: 0 and empty mean unset)."""
    if requested is None:
        return {}
    fields: dict[str, Any] = {}
    for name in ("preset", "resize", "value_range", "channel_order", "layout", "datatype"):
        if getattr(requested, name):
            fields[name] = getattr(requested, name)
    for name in ("height", "width", "crop_fraction"):
        if getattr(requested, name):
            fields[name] = getattr(requested, name)
    for name in ("mean", "std"):
        if len(getattr(requested, name)):
            fields[name] = list(getattr(requested, name))
    return fields


def _number(text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FailedPrecondition(f"config parameter {key!r} = {text!r} is not a number") from None


def _config_fields(parameters: Mapping[str, str]) -> dict[str, Any]:
    """The fields the model config's ``probelog.*`` parameters set."""
    fields: dict[str, Any] = {}
    for name in PARAMETER_KEYS:
        key = PARAMETER_PREFIX + name
        text = parameters.get(key, "").strip()
        if not text:
            continue
        if name in ("mean", "std"):
            fields[name] = [_number(part, key) for part in text.replace(" ", ",").split(",") if part]
        elif name in ("height", "width"):
            value = _number(text, key)
            if value != int(value) or value <= 0:
                raise FailedPrecondition(f"config parameter {key!r} = {text!r} is not a positive integer")
            fields[name] = int(value)
        elif name == "crop_fraction":
            fields[name] = _number(text, key)
        else:
            fields[name] = text
    return fields


def _check(fields: dict[str, Any], error: type[InvalidArgument] | type[FailedPrecondition], where: str) -> None:
    """Validate the fields one source sets; ``error`` names whose fault a bad value is."""

    def fail(name: str, message: str) -> None:
        text = f"{where} {name}: {message}"
        raise InvalidArgument(text, field=f"preprocessing.{name}") if error is InvalidArgument else error(text)

    if "preset" in fields and fields["preset"] not in PRESETS:
        fail("preset", f"{fields['preset']!r} is not one of {', '.join(PRESETS)}")
    if "resize" in fields and fields["resize"] not in RESIZE_POLICIES:
        fail("resize", f"{fields['resize']!r} is not one of {', '.join(RESIZE_POLICIES)}")
    if "crop_fraction" in fields and not 0 < fields["crop_fraction"] <= 1:
        fail("crop_fraction", f"{fields['crop_fraction']} is not in (0, 1]")
    if "value_range" in fields and fields["value_range"] not in VALUE_RANGES:
        fail("value_range", f"{fields['value_range']!r} is not one of {', '.join(VALUE_RANGES)}")
    if "channel_order" in fields and fields["channel_order"] not in CHANNEL_ORDERS:
        fail("channel_order", f"{fields['channel_order']!r} is not RGB or BGR")
    if "layout" in fields and fields["layout"] not in LAYOUTS:
        fail("layout", f"{fields['layout']!r} is not NCHW or NHWC")
    if "datatype" in fields and fields["datatype"] not in DATATYPES:
        fail("datatype", f"{fields['datatype']!r} is not one of {', '.join(DATATYPES)}")
    for name in ("mean", "std"):
        values = fields.get(name)
        if values is not None and (len(values) not in (1, 3) or not all(math.isfinite(v) for v in values)):
            fail(name, f"{values} is not 1 or 3 finite numbers")
    if "std" in fields and min(fields["std"]) <= 0:
        fail("std", f"{fields['std']} has a value <= 0")


def resolve(model: pb.ServedModel, requested: types_pb2.Preprocessing | None = None) -> types_pb2.Preprocessing:
    """The preprocessing of ``model``: every field resolved and checked.

    Raises
    ------
    InvalidArgument
        A requested value is malformed.
    FailedPrecondition
        The model does not take images, a config parameter is malformed, or the request
        contradicts the model (another layout, datatype or fixed size).
    """
    asked = _requested_fields(requested)
    _check(asked, InvalidArgument, "requested preprocessing")
    configured = _config_fields(model.parameters)
    _check(configured, FailedPrecondition, f"model {model.name!r} config parameter {PARAMETER_PREFIX}")
    preset = asked.get("preset") or configured.get("preset") or DEFAULT_PRESET
    fields: dict[str, Any] = {"preset": preset, **PRESETS[preset], **configured, **asked}
    spec, dims = _image_input(model)
    layout = _layout(model, spec, dims, fields.get("layout"))
    if "datatype" in fields and fields["datatype"] != spec.datatype:
        raise FailedPrecondition(
            f"model {model.name!r} input {spec.name!r} is {spec.datatype}, the request says {fields['datatype']}"
        )
    height, width = (dims[1], dims[2]) if layout == "NCHW" else (dims[0], dims[1])
    size = []
    for name, declared in (("height", height), ("width", width)):
        wanted = int(fields.get(name) or 0)
        if declared > 0 and wanted and wanted != declared:
            raise FailedPrecondition(
                f"model {model.name!r} input {spec.name!r} has {name} {declared}, the preprocessing says {wanted}"
            )
        if declared <= 0 and not wanted:
            raise FailedPrecondition(
                f"model {model.name!r} input {spec.name!r} has a variable {name} (dims {dims}); set it with "
                f"the config parameter {PARAMETER_PREFIX}{name} or the request's preprocessing.{name}"
            )
        size.append(declared if declared > 0 else wanted)
    mean, std = list(fields["mean"]), list(fields["std"])
    return types_pb2.Preprocessing(
        preset=preset,
        height=size[0],
        width=size[1],
        resize=fields["resize"],
        crop_fraction=float(fields["crop_fraction"]),
        value_range=fields["value_range"],
        mean=mean * 3 if len(mean) == 1 else mean,
        std=std * 3 if len(std) == 1 else std,
        channel_order=fields["channel_order"],
        layout=layout,
        datatype=spec.datatype,
    )


def _image_input(model: pb.ServedModel) -> tuple[pb.TensorSpec, list[int]]:
    """The one image input and its per-image dims; FailedPrecondition when there is none."""
    if len(model.inputs) != 1:
        names = ", ".join(i.name for i in model.inputs) or "none"
        raise FailedPrecondition(
            f"model {model.name!r} has inputs [{names}]; a probeable model has exactly one image input"
        )
    spec = model.inputs[0]
    dims = [int(d) for d in spec.dims]
    if model.max_batch_size == 0:
        if len(dims) != 4 or dims[0] not in (-1, 1):
            raise FailedPrecondition(
                f"model {model.name!r} input {spec.name!r} has dims {dims} without batching; "
                "expected [1, 3, H, W] or [1, H, W, 3]"
            )
        dims = dims[1:]
    if spec.datatype not in DATATYPES:
        raise FailedPrecondition(
            f"model {model.name!r} input {spec.name!r} is {spec.datatype}; expected FP32, FP16 or UINT8 images"
        )
    return spec, dims


def _layout(model: pb.ServedModel, spec: pb.TensorSpec, dims: list[int], wanted: str | None) -> str:
    """NCHW or NHWC, from where the 3 channels are (``wanted`` decides a [3, H, 3] input)."""
    possible = []
    if len(dims) == 3 and dims[0] == 3:
        possible.append("NCHW")
    if len(dims) == 3 and dims[2] == 3:
        possible.append("NHWC")
    if not possible:
        raise FailedPrecondition(
            f"model {model.name!r} input {spec.name!r} has dims {dims}; expected [3, H, W] or [H, W, 3]"
        )
    if wanted and wanted not in possible:
        raise FailedPrecondition(
            f"model {model.name!r} input {spec.name!r} has dims {dims}, which is not {wanted}"
        )
    return wanted or possible[0]


def geometry_key(prep: types_pb2.Preprocessing) -> tuple[int, int, str, float]:
    """What :func:`resize_images` depends on: probes resized once per distinct key."""
    return (prep.height, prep.width, prep.resize, round(prep.crop_fraction, 6))


def crop_resize_size(prep: types_pb2.Preprocessing) -> int:
    """The shorter side before the centre crop: floor(min(height, width) / crop_fraction)."""
    # The epsilon keeps 224 / 0.875 at 256 when 0.875 arrives through a float32 field.
    return math.floor(min(prep.height, prep.width) / prep.crop_fraction + 1e-4)


def _resize_one(image: Image.Image, prep: types_pb2.Preprocessing) -> Image.Image:
    if prep.resize == "stretch":
        if image.size != (prep.width, prep.height):
            image = image.resize((prep.width, prep.height), Image.Resampling.BILINEAR)
        return image
    # Shorter side to `short`, the longer in proportion (truncated, as torchvision's Resize does).
    short = crop_resize_size(prep)
    w, h = image.size
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top = round((new_h - prep.height) / 2.0)
    left = round((new_w - prep.width) / 2.0)
    return image.crop((left, top, left + prep.width, top + prep.height))


def resize_images(images: npt.NDArray[np.uint8], prep: types_pb2.Preprocessing) -> npt.NDArray[np.uint8]:
    """Probe images at the model's input size.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, 3), uint8
        RGB probes at the probe set's resolution.
    prep : Preprocessing
        A resolved preprocessing (:func:`resolve`).

    Returns
    -------
    ndarray of shape (n, prep.height, prep.width, 3), uint8
    """
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"probe images must be (n, h, w, 3), got {images.shape}")
    if images.shape[1:3] == (prep.height, prep.width) and (prep.resize == "stretch" or prep.crop_fraction == 1):
        return images
    return np.stack([np.asarray(_resize_one(Image.fromarray(img), prep)) for img in images])


def to_input(pixels: npt.NDArray[np.uint8], prep: types_pb2.Preprocessing) -> npt.NDArray[np.generic]:
    """A batch of resized probes as the model's input tensor.

    Parameters
    ----------
    pixels : ndarray of shape (n, height, width, 3), uint8
        Output of :func:`resize_images`.
    prep : Preprocessing
        A resolved preprocessing.

    Returns
    -------
    ndarray of shape (n, 3, height, width) (NCHW) or (n, height, width, 3) (NHWC)
        ``(pixels * value_max / 255 - mean) / std`` in ``prep.datatype``, channels in
        ``prep.channel_order``; UINT8 inputs get the pixels unchanged.
    """
    x: npt.NDArray[np.generic] = pixels[..., ::-1] if prep.channel_order == "BGR" else pixels
    if prep.datatype != "UINT8":
        scale = np.float32(VALUE_RANGES[prep.value_range] / 255.0)
        mean = np.asarray(prep.mean, dtype=np.float32)
        std = np.asarray(prep.std, dtype=np.float32)
        x = ((x.astype(np.float32) * scale - mean) / std).astype(DATATYPES[prep.datatype])
    if prep.layout == "NCHW":
        x = np.transpose(x, (0, 3, 1, 2))
    return np.ascontiguousarray(x)


def describe(prep: types_pb2.Preprocessing) -> str:
    """One line for people: ``imagenet: 224x224 crop 0.875, 0-1, mean [...], std [...], RGB NCHW FP32``."""
    if not prep.height:
        return "-"
    resize = f"crop {prep.crop_fraction:g}" if prep.resize == "crop" else prep.resize
    if prep.datatype == "UINT8":
        values = "pixels as uint8"
    else:
        mean = ", ".join(f"{v:g}" for v in prep.mean)
        std = ", ".join(f"{v:g}" for v in prep.std)
        values = f"{prep.value_range}, mean [{mean}], std [{std}]"
    return (
        f"{prep.preset}: {prep.height}x{prep.width} {resize}, {values}, "
        f"{prep.channel_order} {prep.layout} {prep.datatype}"
    )
