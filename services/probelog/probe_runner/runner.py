"""The probe runner: feeds a probe set through a served classifier, batch by batch.

Models are described by their backend (names, dtypes and shapes of inputs and outputs,
max_batch_size) rather than assumed. A model is probeable when it has one image input and one
vector output:

- input: FP32 or UINT8 with per-sample dims [3, H, W] (NCHW) or [H, W, 3] (NHWC). FP32 inputs
  receive pixel values in [0, 1]; any mean/std normalisation belongs inside the model. Probe
  images are resized (bilinear) when the model's H, W differ from the probe set's.
- output: per-sample dims [n_logits] (or [1, n_logits]); its values are the raw logits
  (paper Eq. 2). With several outputs, the one named ``logits`` is used.

Anything else is FAILED_PRECONDITION, before a single probe is run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from probelog.common.errors import FailedPrecondition
from probelog.common.ports import DescriptorStore, ProbeResult
from probelog.v1 import probe_runner_pb2 as pb

logger = logging.getLogger(__name__)

#: Batch size when a model batches but gives no limit we can use.
DEFAULT_BATCH_SIZE = 64


class ProbeBackend(Protocol):
    """Where models run: Triton (:mod:`probelog.probe_runner.triton`) or in-process ONNX."""

    name: str

    async def list_models(self, *, ready_only: bool = False) -> list[pb.ServedModel]: ...

    async def describe(self, model_name: str, model_version: str = "") -> pb.ServedModel:
        """The model's inputs, outputs and batching; NotFound when unknown."""
        ...

    async def load(self, model_name: str) -> pb.ServedModel: ...

    async def unload(self, model_name: str) -> None: ...

    async def infer(
        self,
        model: pb.ServedModel,
        inputs: npt.NDArray[np.generic],
        *,
        timeout: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Run one batch (with its batch dimension) and return the output, (batch, n_logits)."""
        ...

    async def ping(self, timeout: float) -> None:
        """Return when the backend answers; Unavailable when not (the health check)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class InputLayout:
    """How to turn uint8 NHWC probe images into a model's input tensor."""

    datatype: str  # "FP32" or "UINT8"
    channels_first: bool
    height: int
    width: int
    batched: bool  # False: the model takes exactly one image with a leading dim of 1


def _dims(spec: pb.TensorSpec) -> list[int]:
    return [int(d) for d in spec.dims]


def input_layout(model: pb.ServedModel) -> InputLayout:
    """Check the model takes images and say how; FailedPrecondition otherwise."""
    if len(model.inputs) != 1:
        names = ", ".join(i.name for i in model.inputs) or "none"
        raise FailedPrecondition(
            f"model {model.name!r} has inputs [{names}]; a probeable model has exactly one image input"
        )
    spec = model.inputs[0]
    dims = _dims(spec)
    batched = model.max_batch_size > 0
    if not batched:
        if len(dims) != 4 or dims[0] not in (-1, 1):
            raise FailedPrecondition(
                f"model {model.name!r} input {spec.name!r} has dims {dims} without batching; "
                "expected [1, 3, H, W] or [1, H, W, 3]"
            )
        dims = dims[1:]
    if spec.datatype not in ("FP32", "UINT8"):
        raise FailedPrecondition(
            f"model {model.name!r} input {spec.name!r} is {spec.datatype}; expected FP32 or UINT8 images"
        )
    if len(dims) == 3 and dims[0] == 3 and dims[1] > 0 and dims[2] > 0:
        return InputLayout(spec.datatype, True, dims[1], dims[2], batched)
    if len(dims) == 3 and dims[2] == 3 and dims[0] > 0 and dims[1] > 0:
        return InputLayout(spec.datatype, False, dims[0], dims[1], batched)
    raise FailedPrecondition(
        f"model {model.name!r} input {spec.name!r} has dims {dims}; expected [3, H, W] or [H, W, 3] "
        "with fixed H and W"
    )


def output_spec(model: pb.ServedModel) -> pb.TensorSpec:
    """The output holding the logits; FailedPrecondition when there is no usable one."""
    outputs = list(model.outputs)
    if len(outputs) > 1:
        outputs = [o for o in outputs if o.name == "logits"]
    if len(outputs) != 1:
        names = ", ".join(o.name for o in model.outputs) or "none"
        raise FailedPrecondition(
            f"model {model.name!r} has outputs [{names}]; expected one output, or one named 'logits'"
        )
    spec = outputs[0]
    dims = _dims(spec)
    if model.max_batch_size == 0 and dims and dims[0] in (-1, 1):
        dims = dims[1:]
    if len(dims) == 2 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) != 1 or dims[0] == 0:
        raise FailedPrecondition(
            f"model {model.name!r} output {spec.name!r} has dims {_dims(spec)}; expected a vector "
            "of logits per image"
        )
    if spec.datatype not in ("FP32", "FP16", "FP64"):
        raise FailedPrecondition(
            f"model {model.name!r} output {spec.name!r} is {spec.datatype}; expected floating-point logits"
        )
    return spec


def prepare_inputs(images: npt.NDArray[np.uint8], layout: InputLayout) -> npt.NDArray[np.generic]:
    """Probe images (n, h, w, 3) uint8 as the model's input tensor (n, ...)."""
    if images.shape[1:3] != (layout.height, layout.width):
        images = np.stack(
            [
                np.asarray(
                    Image.fromarray(img).resize((layout.width, layout.height), Image.Resampling.BILINEAR)
                )
                for img in images
            ]
        )
    x: npt.NDArray[np.generic] = images
    if layout.channels_first:
        x = np.transpose(x, (0, 3, 1, 2))
    if layout.datatype == "FP32":
        x = x.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x)


class ProbeRunner:
    """Runs probe sets through the models of one backend.

    Parameters
    ----------
    backend : ProbeBackend
    probe_sets : DescriptorStore
        Where probe images come from (the store service, or the store itself when embedded).
    cache_size : int
        Prepared probe tensors kept per (probe set, input layout).
    """

    def __init__(self, backend: ProbeBackend, probe_sets: DescriptorStore, cache_size: int = 4) -> None:
        self.backend = backend
        self._probe_sets = probe_sets
        self._cache: OrderedDict[tuple[str, InputLayout], npt.NDArray[np.generic]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = asyncio.Lock()

    async def list_models(
        self, *, ready_only: bool = False, timeout: float | None = None
    ) -> list[pb.ServedModel]:
        return await self.backend.list_models(ready_only=ready_only)

    async def _inputs(self, probe_set_id: str, layout: InputLayout) -> npt.NDArray[np.generic]:
        key = (probe_set_id, layout)
        async with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            _, images = await self._probe_sets.get_probe_set(probe_set_id)
            prepared = await asyncio.to_thread(prepare_inputs, images, layout)
            self._cache[key] = prepared
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return prepared

    async def probe_chunks(
        self,
        model_name: str,
        model_version: str,
        probe_set_id: str,
        *,
        batch_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[tuple[pb.ServedModel, int, npt.NDArray[np.float32]]]:
        """Yield (model, first probe index, logits of consecutive probes) until every probe ran."""
        model = await self.backend.describe(model_name, model_version)
        layout = input_layout(model)
        out = output_spec(model)
        n_logits = _dims(out)[-1]
        inputs = await self._inputs(probe_set_id, layout)
        if layout.batched:
            limit = model.max_batch_size
            step = min(batch_size or limit or DEFAULT_BATCH_SIZE, limit)
        else:
            step = 1
        for start in range(0, len(inputs), step):
            batch = inputs[start : start + step]
            logits = np.asarray(await self.backend.infer(model, batch, timeout=timeout), dtype=np.float32)
            rows = logits.shape[0] if logits.ndim else 0
            if layout.batched and rows != len(batch):
                raise FailedPrecondition(
                    f"model {model.name!r} returned {rows} rows for a batch of {len(batch)} probes; "
                    "a batched model must answer one row per image; nothing was stored"
                )
            logits = logits.reshape(len(batch), -1)
            if logits.shape[1] != n_logits and n_logits > 0:
                raise FailedPrecondition(
                    f"model {model.name!r} returned {logits.shape[1]} values per image, its "
                    f"metadata declares {n_logits}"
                )
            yield model, start, logits

    async def probe(
        self,
        model_name: str,
        model_version: str,
        probe_set_id: str,
        *,
        batch_size: int = 0,
        timeout: float | None = None,
    ) -> ProbeResult:
        """All logits of a model on a probe set, shape (n_probes, n_logits)."""
        started = time.perf_counter()
        chunks: list[npt.NDArray[np.float32]] = []
        model: pb.ServedModel | None = None
        async for model, _, logits in self.probe_chunks(  # noqa: B007 - the last model is kept
            model_name, model_version, probe_set_id, batch_size=batch_size, timeout=timeout
        ):
            chunks.append(logits)
        if model is None:
            raise FailedPrecondition(f"probe set {probe_set_id} has no probes")
        all_logits = np.concatenate(chunks)
        elapsed = time.perf_counter() - started
        logger.info(
            "probed %s with %s: %d probes x %d logits in %.2f s",
            model.name, probe_set_id, all_logits.shape[0], all_logits.shape[1], elapsed,
        )
        return ProbeResult(model=model, logits=all_logits, images_per_second=len(all_logits) / elapsed)
