"""The probe runner's production backend: NVIDIA Triton Inference Server, over KServe v2 gRPC.

Everything goes through ``tritonclient.grpc.aio``; nothing about a model is assumed:

- the models come from Triton's repository index (``RepositoryIndex``), with their state;
- a model's inputs and outputs (names, datatypes, shapes) come from its metadata, and
  ``max_batch_size`` from its config; shapes are reported without the batch dimension when the
  model batches, as Triton's config gives them;
- in explicit model-control mode a model is loaded on request (``load``/``unload``), and a
  model that is in the repository but not loaded is loaded when it is first described or
  probed (``load_on_demand``), since Triton only knows a loaded model's inputs and outputs;
- every call carries a client deadline (``client_timeout``, seconds), and a call that fails with
  UNAVAILABLE is retried with exponential backoff a bounded number of times, within that
  deadline.

Errors: a model missing from the repository is NotFound; Triton unreachable is Unavailable
naming ``triton at HOST:PORT``; a model Triton cannot load or that rejects the probe tensor is
FailedPrecondition; a call past its deadline is DeadlineExceeded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProbeLogError,
    Unavailable,
)
from probelog.probe_runner.runner import output_spec
from probelog.v1 import probe_runner_pb2 as pb

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of a call that fails with UNAVAILABLE (the first included).
RETRY_ATTEMPTS = 4
#: First backoff between attempts, doubled each time (seconds).
RETRY_BASE_S = 0.1
#: Deadline of a model load (Python-backend models start a process: seconds, not milliseconds).
LOAD_TIMEOUT_S = 300.0

_MAX_MESSAGE_BYTES = 2**31 - 1
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # Reconnect within seconds once a restarted server is back (gRPC's default backoff grows to
    # two minutes).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]
_NUMPY = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "UINT8": np.uint8}


def _status(exc: InferenceServerException) -> str:
    """"UNAVAILABLE" from tritonclient's "StatusCode.UNAVAILABLE" (None when it has none)."""
    return str(exc.status() or "").removeprefix("StatusCode.")


class TritonProbeBackend:
    """A :class:`~probelog.probe_runner.runner.ProbeBackend` on a Triton server.

    Parameters
    ----------
    address : str
        ``host:port`` of Triton's gRPC endpoint (the runner URL without ``triton://``).
    timeout_s : float
        Client deadline of one call when the caller gives none (inference: one batch).
    load_on_demand : bool
        Load a model that is in the repository but not loaded when it is described or probed.
    retry_attempts : int
        Attempts of a call that fails with UNAVAILABLE.
    """

    name = "triton"

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 60.0,
        load_on_demand: bool = True,
        retry_attempts: int = RETRY_ATTEMPTS,
    ) -> None:
        if not address or "/" in address:
            raise InvalidArgument(f"triton address must be host:port, got {address!r}")
        self.address = address
        self.timeout_s = timeout_s
        self.load_on_demand = load_on_demand
        self.retry_attempts = max(1, retry_attempts)
        self.endpoint = f"triton at {address}"
        self._client: Any = None
        self._load_locks: dict[str, asyncio.Lock] = {}
        #: model name -> names of its outputs that have a Triton label file.
        self._label_outputs: dict[str, set[str]] = {}
        #: images per second of the last probe batch per model (for logs and status).
        self.images_per_second: dict[str, float] = {}

    # ------------------------------------------------------------------ connection

    def _ensure_client(self) -> Any:
        if self._client is None:
            self._client = triton_aio.InferenceServerClient(self.address, channel_args=_CHANNEL_ARGS)
        return self._client

    async def open(self) -> None:
        """Connect and check the server is ready; Unavailable otherwise (fail fast at start)."""
        ready = await self._call("ServerReady", lambda c, t: c.is_server_ready(client_timeout=t), timeout=10.0)
        if not ready:
            raise Unavailable(f"{self.endpoint} is not ready")
        logger.info("connected to %s", self.endpoint)

    async def ping(self, timeout: float) -> None:
        """One ServerReady call, no retries (the health watcher's check)."""
        try:
            ready = await self._ensure_client().is_server_ready(client_timeout=timeout)
        except InferenceServerException as exc:
            raise Unavailable(f"{self.endpoint} does not answer: {exc.message()}") from None
        if not ready:
            raise Unavailable(f"{self.endpoint} is not ready")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _call(
        self,
        what: str,
        call: Callable[[Any, float], Awaitable[T]],
        *,
        timeout: float | None = None,
        model: str = "",
    ) -> T:
        """Run ``call(client, client_timeout)``, retrying UNAVAILABLE; domain errors out."""
        budget = self.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + budget
        delay = RETRY_BASE_S
        for attempt in range(1, self.retry_attempts + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"{what} on {self.endpoint}: deadline of {budget:.1f} s exceeded")
            try:
                return await call(self._ensure_client(), left)
            except InferenceServerException as exc:
                status = _status(exc)
                if status == "UNAVAILABLE" and attempt < self.retry_attempts and deadline - time.monotonic() > delay:
                    logger.warning(
                        "%s on %s: UNAVAILABLE (%s); retry %d/%d in %.1f s",
                        what, self.endpoint, exc.message(), attempt, self.retry_attempts - 1, delay,
                    )
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                raise self._translate(exc, what, model) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _translate(self, exc: InferenceServerException, what: str, model: str) -> ProbeLogError:
        status, message = _status(exc), exc.message() or str(exc)
        if status == "UNAVAILABLE":
            return Unavailable(f"{self.endpoint} is unavailable ({what}): {message}")
        if status == "DEADLINE_EXCEEDED":
            return DeadlineExceeded(f"{what} on {self.endpoint}: deadline exceeded")
        if status == "NOT_FOUND":
            return NotFound(f"model {model!r} is not loaded on {self.endpoint}: {message}")
        if status in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"):
            return FailedPrecondition(f"{self.endpoint} rejected {what} of model {model!r}: {message}")
        if status == "CANCELLED":
            return Unavailable(f"{what} on {self.endpoint} was cancelled: {message}")
        err = ProbeLogError(f"{what} on {self.endpoint} failed ({status or 'no status'}): {message}")
        return err

    # ------------------------------------------------------------------ repository

    async def _index(self, timeout: float | None = None) -> list[dict[str, Any]]:
        index = await self._call(
            "RepositoryIndex",
            lambda c, t: c.get_model_repository_index(as_json=True, client_timeout=t),
            timeout=timeout,
        )
        return list(index.get("models", []))

    async def _entry(self, model_name: str) -> dict[str, Any]:
        for entry in await self._index():
            if entry.get("name") == model_name:
                return entry
        raise NotFound(f"model {model_name!r} is not in the repository of {self.endpoint}")

    async def list_models(self, *, ready_only: bool = False) -> list[pb.ServedModel]:
        """The repository index; a model that is not loaded is UNAVAILABLE (or its state)."""
        models = [
            pb.ServedModel(name=e["name"], version=e.get("version", ""), state=e.get("state") or "UNAVAILABLE")
            for e in await self._index()
        ]
        return [m for m in models if m.state == "READY"] if ready_only else models

    async def describe(self, model_name: str, model_version: str = "") -> pb.ServedModel:
        """Inputs, outputs and batching from the model's metadata and config."""
        if not model_name or "/" in model_name:
            raise NotFound(f"model {model_name!r} is not in the repository of {self.endpoint}")
        entry = await self._entry(model_name)
        if entry.get("state") != "READY":
            if not self.load_on_demand:
                raise FailedPrecondition(
                    f"model {model_name!r} is {entry.get('state') or 'not loaded'} on {self.endpoint}; load it first"
                )
            await self._load(model_name)
        return await self._describe_loaded(model_name, model_version)

    async def _describe_loaded(self, model_name: str, model_version: str) -> pb.ServedModel:
        metadata = await self._call(
            "ModelMetadata",
            lambda c, t: c.get_model_metadata(model_name, model_version, as_json=True, client_timeout=t),
            model=model_name,
        )
        config = (
            await self._call(
                "ModelConfig",
                lambda c, t: c.get_model_config(model_name, model_version, as_json=True, client_timeout=t),
                model=model_name,
            )
        ).get("config", {})
        max_batch = int(config.get("max_batch_size", 0) or 0)
        # Outputs with a label file: Triton reads it, and answers classification requests with it.
        self._label_outputs[model_name] = {
            o["name"] for o in config.get("output", []) if o.get("label_filename") and "name" in o
        }

        def spec(tensor: dict[str, Any]) -> pb.TensorSpec:
            dims = [int(d) for d in tensor.get("shape", [])]
            if max_batch > 0 and dims:
                dims = dims[1:]  # metadata shapes carry the batch dimension (-1)
            return pb.TensorSpec(name=tensor["name"], datatype=tensor.get("datatype", ""), dims=dims)

        versions = [str(v) for v in metadata.get("versions", [])]
        model = pb.ServedModel(
            name=model_name,
            version=model_version or (max(versions, key=int) if versions else ""),
            state="READY",
            inputs=[spec(t) for t in metadata.get("inputs", [])],
            outputs=[spec(t) for t in metadata.get("outputs", [])],
            max_batch_size=max_batch,
            platform=str(metadata.get("platform") or config.get("backend") or config.get("platform") or ""),
            parameters={
                str(key): str(value.get("string_value", ""))
                for key, value in (config.get("parameters") or {}).items()
                if isinstance(value, dict)
            },
        )
        try:
            dims = list(output_spec(model).dims)
            model.n_logits = max(int(dims[-1]), 0)
        except FailedPrecondition:
            pass  # not probeable: the runner says why when it is asked to probe it
        return model

    async def _load(self, model_name: str) -> None:
        lock = self._load_locks.setdefault(model_name, asyncio.Lock())
        async with lock:
            entry = await self._entry(model_name)
            if entry.get("state") == "READY":
                return
            started = time.perf_counter()
            try:
                await self._call(
                    "LoadModel",
                    lambda c, t: c.load_model(model_name, client_timeout=t),
                    timeout=max(LOAD_TIMEOUT_S, self.timeout_s),
                    model=model_name,
                )
            except ProbeLogError as exc:
                if isinstance(exc, Unavailable | DeadlineExceeded):
                    raise
                raise FailedPrecondition(f"{self.endpoint} could not load model {model_name!r}: {exc}") from None
            logger.info("loaded %s on %s in %.1f s", model_name, self.endpoint, time.perf_counter() - started)

    async def load(self, model_name: str) -> pb.ServedModel:
        """Load (or reload) a model in explicit model-control mode, then describe it."""
        await self._entry(model_name)  # NotFound when it is not in the repository
        await self._load(model_name)
        return await self._describe_loaded(model_name, "")

    async def unload(self, model_name: str) -> None:
        await self._entry(model_name)
        await self._call(
            "UnloadModel", lambda c, t: c.unload_model(model_name, client_timeout=t), model=model_name
        )
        logger.info("unloaded %s from %s", model_name, self.endpoint)

    # ------------------------------------------------------------------ inference

    async def infer(
        self,
        model: pb.ServedModel,
        inputs: npt.NDArray[np.generic],
        *,
        timeout: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """One batch through the model; returns its logits output as (batch, n_logits) float32."""
        output = model.output_name or output_spec(model).name
        started = time.perf_counter()
        result = await self._infer(model, inputs, InferRequestedOutput(output), timeout)
        logits = result.as_numpy(output)
        if logits is None:
            raise FailedPrecondition(f"model {model.name!r} returned no output {output!r}")
        elapsed = time.perf_counter() - started
        if elapsed > 0:
            self.images_per_second[model.name] = len(inputs) / elapsed
        return np.asarray(logits, dtype=np.float32).reshape(len(inputs), -1)

    async def _infer(
        self, model: pb.ServedModel, inputs: npt.NDArray[np.generic], output: Any, timeout: float | None
    ) -> Any:
        """One ModelInfer call of ``inputs`` (batch dimension included) asking for ``output``."""
        spec = model.inputs[0]
        dtype = _NUMPY.get(spec.datatype)
        if dtype is None:
            raise FailedPrecondition(f"model {model.name!r} input {spec.name!r} is {spec.datatype}")
        data = np.ascontiguousarray(inputs, dtype=dtype)
        tensor = InferInput(spec.name, list(data.shape), spec.datatype)
        tensor.set_data_from_numpy(data)
        return await self._call(
            "ModelInfer",
            lambda c, t: c.infer(
                model.name, [tensor], model_version=model.version, outputs=[output], client_timeout=t
            ),
            timeout=self.timeout_s if timeout is None else min(timeout, self.timeout_s),
            model=model.name,
        )

    async def labels(self, model: pb.ServedModel, sample: npt.NDArray[np.generic]) -> list[str]:
        """The output's label file, through Triton's classification extension: one inference of
        ``sample`` asking for every class answers "value:index:label" per logit."""
        output = model.output_name or output_spec(model).name
        if output not in self._label_outputs.get(model.name, set()) or model.n_logits == 0:
            return []
        result = await self._infer(model, sample, InferRequestedOutput(output, class_count=int(model.n_logits)), None)
        labels = [""] * model.n_logits
        for entry in np.asarray(result.as_numpy(output)).reshape(-1):
            text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else str(entry)
            parts = text.split(":", 2)
            if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(labels):
                labels[int(parts[1])] = parts[2]
        return labels
