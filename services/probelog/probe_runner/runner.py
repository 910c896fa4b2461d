"""The probe runner: feeds a probe set through a served classifier, batch by batch.

Models are described by their backend (names, dtypes and shapes of inputs and outputs,
max_batch_size, config parameters, labels) rather than assumed. A model is probeable when it has
one image input and one chosen vector output:

- input: FP32, FP16 or UINT8 with per-sample dims [3, H, W] (NCHW) or [H, W, 3] (NHWC); H and
  W may be -1 when the preprocessing sets them. How probe images become that tensor (resize
  policy, value range, mean/std, channel order) is the model's
  :mod:`~probelog.probe_runner.preprocessing`, resolved from the request, the model's config
  parameters and a preset.
- output: per-sample dims [n_logits] (or [1, n_logits]). With several outputs, the one the
  request or the config parameter ``probelog.output`` names, else the one named ``logits``.
  Its values are the raw logits (paper Eq. 2); an output of probabilities (rows in [0, 1]
  summing to 1) is detected and turned into log-probabilities, which differ from the logits by
  a constant per probe; an output of class decisions (only 0s and 1s) is refused unless its
  kind is configured.

Anything else is FAILED_PRECONDITION, before a single probe is run (or, for an output whose
values are neither logits nor probabilities, after its first batch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np
import numpy.typing as npt

from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.common.ports import DescriptorStore, ProbeResult
from probelog.probe_runner import preprocessing
from probelog.probe_runner.preprocessing import PARAMETER_PREFIX
from probelog.v1 import probe_runner_pb2 as pb
from probelog.v1 import types_pb2

logger = logging.getLogger(__name__)

#: Batch size when a model batches but gives no limit we can use.
DEFAULT_BATCH_SIZE = 64
OUTPUT_KINDS = ("logits", "probabilities")
#: How far a row of probabilities may sum from 1 (FP16 outputs round each value to ~1e-4).
PROBABILITY_SUM_TOLERANCE = 1e-3


class ProbeBackend(Protocol):
    """Where models run: Triton (:mod:`probelog.probe_runner.triton`) or in-process ONNX."""

    name: str

    async def list_models(self, *, ready_only: bool = False) -> list[pb.ServedModel]: ...

    async def describe(self, model_name: str, model_version: str = "") -> pb.ServedModel:
        """The model's inputs, outputs, batching and config parameters; NotFound when unknown."""
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
        """Run one batch (with its batch dimension) and return the output named
        ``model.output_name``, (batch, n_logits)."""
        ...

    async def labels(self, model: pb.ServedModel, sample: npt.NDArray[np.generic]) -> list[str]:
        """The label per logit of ``model.output_name`` (its label file), [] when it has none;
        ``sample`` is one input (batch of 1) for a backend that learns labels by inference."""
        ...

    async def ping(self, timeout: float) -> None:
        """Return when the backend answers; Unavailable when not (the health check)."""
        ...

    async def close(self) -> None: ...


def _dims(spec: pb.TensorSpec) -> list[int]:
    return [int(d) for d in spec.dims]


def output_spec(model: pb.ServedModel, requested: str = "") -> pb.TensorSpec:
    """The output holding the logits; FailedPrecondition when there is no usable one.

    ``requested`` (else the config parameter ``probelog.output``) names it; without a name a
    model's only output is used, or among several the one named ``logits``.
    """
    wanted = requested or model.parameters.get(PARAMETER_PREFIX + "output", "")
    names = ", ".join(o.name for o in model.outputs) or "none"
    outputs = list(model.outputs)
    if wanted:
        outputs = [o for o in outputs if o.name == wanted]
        if not outputs:
            raise FailedPrecondition(f"model {model.name!r} has no output {wanted!r}; its outputs are [{names}]")
    elif len(outputs) > 1:
        outputs = [o for o in outputs if o.name == "logits"]
    if len(outputs) != 1:
        raise FailedPrecondition(
            f"model {model.name!r} has outputs [{names}]; choose one with the request's output_name or "
            f"the config parameter {PARAMETER_PREFIX}output (or name it 'logits')"
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


def configured_output_kind(model: pb.ServedModel, requested: str = "") -> str:
    """The output kind the request or the config parameter ``probelog.output_kind`` sets ("" = detect)."""
    if requested and requested not in OUTPUT_KINDS:
        raise InvalidArgument(
            f"output_kind must be one of {', '.join(OUTPUT_KINDS)} or empty, got {requested!r}", field="output_kind"
        )
    kind = requested or model.parameters.get(PARAMETER_PREFIX + "output_kind", "")
    if kind and kind not in OUTPUT_KINDS:
        raise FailedPrecondition(
            f"model {model.name!r} config parameter {PARAMETER_PREFIX}output_kind = {kind!r} is not one of "
            f"{', '.join(OUTPUT_KINDS)}"
        )
    return kind


def output_kind(values: npt.NDArray[np.float32], configured: str, model_name: str) -> str:
    """What an output's values are: "logits" or "probabilities".

    Parameters
    ----------
    values : ndarray of shape (n_probes, n_logits), float32
        The output for some probes (the first batch).
    configured : str
        "logits", "probabilities", or "" to detect: probabilities when there are several
        values per probe, all in [0, 1], and every row sums to 1 (within
        :data:`PROBABILITY_SUM_TOLERANCE`); otherwise logits. Scores such as cosine
        similarities or sigmoid outputs rank probes as logits do, so they are kept as they are.

    Raises
    ------
    FailedPrecondition
        Non-finite values; probabilities configured for values outside [0, 1]; or, detecting,
        an output of class decisions (every value 0 or 1, e.g. one-hot predictions), which is
        neither: it does not say how strongly a logit responds.
    """
    if not np.all(np.isfinite(values)):
        raise FailedPrecondition(f"model {model_name!r} returned non-finite values (NaN or inf); nothing was stored")
    low, high = float(values.min()), float(values.max())
    if configured == "logits":
        return "logits"
    if configured == "probabilities":
        if low < 0 or high > 1:
            raise FailedPrecondition(
                f"model {model_name!r} output is configured as probabilities but has values in [{low:g}, {high:g}]"
            )
        return "probabilities"
    if values.shape[1] < 2 or low < 0 or high > 1:
        return "logits"
    if np.all((values == 0) | (values == 1)):
        raise FailedPrecondition(
            f"model {model_name!r} output is neither logits nor probabilities: every value is 0 or 1 "
            "(class decisions, e.g. one-hot predictions), which do not rank probes; index an output of "
            f"scores, or set output_kind (the config parameter {PARAMETER_PREFIX}output_kind) to 'logits'"
        )
    sums = values.sum(axis=1, dtype=np.float64)
    if np.all(np.abs(sums - 1.0) <= PROBABILITY_SUM_TOLERANCE):
        return "probabilities"
    return "logits"


def as_logits(values: npt.NDArray[np.float32], kind: str) -> npt.NDArray[np.float32]:
    """Logits from an output of ``kind``: probabilities become their natural log (a zero
    becomes log of float32's smallest normal, about -87.3, not -inf)."""
    if kind != "probabilities":
        return values
    tiny = np.finfo(np.float32).tiny
    logits: npt.NDArray[np.float32] = np.log(np.maximum(values, tiny)).astype(np.float32)
    return logits


class ProbeRunner:
    """Runs probe sets through the models of one backend.

    Parameters
    ----------
    backend : ProbeBackend
    probe_sets : DescriptorStore
        Where probe images come from (the store service, or the store itself when embedded).
    cache_size : int
        Resized probe sets kept, one per (probe set, input geometry): a hub whose models share
        a few preprocessings decodes and resizes each probe set a few times, not once a model.
    """

    def __init__(self, backend: ProbeBackend, probe_sets: DescriptorStore, cache_size: int = 4) -> None:
        self.backend = backend
        self._probe_sets = probe_sets
        self._cache: OrderedDict[tuple[str, tuple[int, int, str, float]], npt.NDArray[np.uint8]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = asyncio.Lock()
        #: Probe sets decoded and resized so far (the cache's misses).
        self.resizes = 0

    async def list_models(
        self, *, ready_only: bool = False, timeout: float | None = None
    ) -> list[pb.ServedModel]:
        return await self.backend.list_models(ready_only=ready_only)

    async def _pixels(self, probe_set_id: str, prep: types_pb2.Preprocessing) -> npt.NDArray[np.uint8]:
        key = (probe_set_id, preprocessing.geometry_key(prep))
        async with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            _, images = await self._probe_sets.get_probe_set(probe_set_id)
            resized = await asyncio.to_thread(preprocessing.resize_images, images, prep)
            self.resizes += 1
            self._cache[key] = resized
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return resized

    async def prepare(
        self,
        model_name: str,
        model_version: str,
        *,
        preprocessing_request: types_pb2.Preprocessing | None = None,
        output_name: str = "",
    ) -> pb.ServedModel:
        """The model's description with its resolved preprocessing and chosen output set."""
        model = await self.backend.describe(model_name, model_version)
        prep = preprocessing.resolve(model, preprocessing_request)
        out = output_spec(model, output_name)
        model.preprocessing.CopyFrom(prep)
        model.output_name = out.name
        model.n_logits = max(_dims(out)[-1], 0)
        return model

    async def probe_chunks(
        self,
        model_name: str,
        model_version: str,
        probe_set_id: str,
        *,
        batch_size: int = 0,
        timeout: float | None = None,
        preprocessing_request: types_pb2.Preprocessing | None = None,
        output_name: str = "",
        output_kind_request: str = "",
    ) -> AsyncIterator[tuple[pb.ServedModel, int, npt.NDArray[np.float32]]]:
        """Yield (model, first probe index, logits of consecutive probes) until every probe ran.

        The model is yielded complete (preprocessing, output, its kind, labels) from the first
        chunk on.
        """
        model = await self.prepare(
            model_name, model_version, preprocessing_request=preprocessing_request, output_name=output_name
        )
        configured_kind = configured_output_kind(model, output_kind_request)
        prep, n_logits = model.preprocessing, model.n_logits
        pixels = await self._pixels(probe_set_id, prep)
        batched = model.max_batch_size > 0
        if batched:
            limit = model.max_batch_size
            step = min(batch_size or limit or DEFAULT_BATCH_SIZE, limit)
        else:
            step = 1
        for start in range(0, len(pixels), step):
            batch = preprocessing.to_input(pixels[start : start + step], prep)
            logits = np.asarray(await self.backend.infer(model, batch, timeout=timeout), dtype=np.float32)
            rows = logits.shape[0] if logits.ndim else 0
            if batched and rows != len(batch):
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
            if start == 0:
                model.output_kind = output_kind(logits, configured_kind, model.name)
                labels = await self.backend.labels(model, batch[:1])
                if labels and len(labels) != logits.shape[1]:
                    raise FailedPrecondition(
                        f"model {model.name!r} has {len(labels)} labels for {logits.shape[1]} logits"
                    )
                model.labels[:] = labels
            yield model, start, as_logits(logits, model.output_kind)

    async def probe(
        self,
        model_name: str,
        model_version: str,
        probe_set_id: str,
        *,
        batch_size: int = 0,
        timeout: float | None = None,
        preprocessing_request: types_pb2.Preprocessing | None = None,
        output_name: str = "",
        output_kind_request: str = "",
    ) -> ProbeResult:
        """All logits of a model on a probe set, shape (n_probes, n_logits)."""
        started = time.perf_counter()
        chunks: list[npt.NDArray[np.float32]] = []
        model: pb.ServedModel | None = None
        async for model, _, logits in self.probe_chunks(  # noqa: B007 - the last model is kept
            model_name,
            model_version,
            probe_set_id,
            batch_size=batch_size,
            timeout=timeout,
            preprocessing_request=preprocessing_request,
            output_name=output_name,
            output_kind_request=output_kind_request,
        ):
            chunks.append(logits)
        if model is None:
            raise FailedPrecondition(f"probe set {probe_set_id} has no probes")
        all_logits = np.concatenate(chunks)
        elapsed = time.perf_counter() - started
        logger.info(
            "probed %s with %s: %d probes x %d logits (%s) in %.2f s",
            model.name, probe_set_id, all_logits.shape[0], all_logits.shape[1], model.output_kind, elapsed,
        )
        return ProbeResult(model=model, logits=all_logits, images_per_second=len(all_logits) / elapsed)
