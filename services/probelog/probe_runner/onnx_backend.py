"""In-process model backend for embedded mode: ONNX models through onnxruntime.

Reads the same model repository layout Triton does (``NAME/config.pbtxt``,
``NAME/<version>/model.onnx``); plain ``NAME.onnx`` files in the repository work too. Inputs and
outputs come from the ONNX graph; ``max_batch_size``, ``parameters`` and outputs'
``label_filename`` from config.pbtxt when present (else batching from whether the graph's first
dimension is dynamic). Labels come from the output's label file, else from an ``id2label``
entry (JSON) in the ONNX model's metadata.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from probelog.common.errors import FailedPrecondition, NotFound, Unavailable
from probelog.v1 import probe_runner_pb2 as pb

logger = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(uint8)": "UINT8",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
}
_MAX_BATCH = re.compile(r"^\s*max_batch_size\s*:\s*(\d+)", re.MULTILINE)
# The config.pbtxt entries read here, in protobuf text format: `parameters { key: "K" value {
# string_value: "V" } }`, and `label_filename: "F"` inside an output's braces beside its name.
_PARAMETER = re.compile(
    r'parameters\s*:?\s*\{\s*key\s*:\s*"([^"]*)"\s*value\s*:?\s*\{\s*string_value\s*:\s*"([^"]*)"\s*\}\s*\}'
)
_BLOCK = re.compile(r"\{[^{}]*\}")
_NAME = re.compile(r'\bname\s*:\s*"([^"]+)"')
_LABEL_FILE = re.compile(r'\blabel_filename\s*:\s*"([^"]+)"')
#: max_batch_size for a dynamic-batch ONNX model without a config.pbtxt.
DEFAULT_MAX_BATCH = 256


@dataclass
class _Entry:
    name: str
    version: str
    path: Path
    max_batch_size: int | None  # from config.pbtxt, None when absent
    parameters: dict[str, str] = field(default_factory=dict)
    label_files: dict[str, Path] = field(default_factory=dict)  # output name -> its label file


def read_config(text: str, model_dir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """A config.pbtxt's string parameters and its outputs' label files (paths in ``model_dir``)."""
    parameters = {key: value for key, value in _PARAMETER.findall(text)}
    label_files = {}
    for block in _BLOCK.findall(text):
        name, label_file = _NAME.search(block), _LABEL_FILE.search(block)
        if name and label_file:
            label_files[name.group(1)] = model_dir / label_file.group(1)
    return parameters, label_files


def _versions(model_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for child in model_dir.iterdir():
        if child.is_dir() and child.name.isdigit() and (child / "model.onnx").exists():
            found.append((int(child.name), child / "model.onnx"))
    return sorted(found)


class OnnxProbeBackend:
    """A :class:`~probelog.probe_runner.runner.ProbeBackend` running ONNX files in this process.

    Parameters
    ----------
    repository : path
        A model repository (Triton layout) or a folder of ``.onnx`` files.
    threads : int
        onnxruntime intra-op threads per model (1 keeps two models from fighting over 2 cores).
    allow_paths : bool
        Accept an absolute path to a model directory or ``.onnx`` file as a model name
        (``probelog index PATH`` with ``--onnx-allow-paths``): local development only, since it
        lets any caller load a file from the server's disk.
    """

    name = "onnx"

    def __init__(self, repository: str | Path, *, threads: int = 1, allow_paths: bool = False) -> None:
        self.repository = Path(repository)
        self.threads = threads
        self.allow_paths = allow_paths
        self._sessions: dict[Path, Any] = {}
        # (name, version) -> file, filled by describe() so inference needs no directory scan.
        self._paths: dict[tuple[str, str], Path] = {}
        # (name, version) -> its entry, for the label files.
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    async def ping(self, timeout: float) -> None:
        """The model repository is still there (the health watcher's check)."""
        if not await asyncio.to_thread(self.repository.is_dir):
            raise Unavailable(f"the model repository {self.repository} is missing")

    async def close(self) -> None:
        self._sessions.clear()

    def _scan(self) -> dict[str, list[_Entry]]:
        models: dict[str, list[_Entry]] = {}
        if not self.repository.is_dir():
            return models
        for child in sorted(self.repository.iterdir()):
            if child.is_dir():
                entry = self._entries_of_dir(child)
                if entry:
                    models[child.name] = entry
            elif child.suffix == ".onnx":
                models[child.stem] = [_Entry(child.stem, "1", child, None)]
        return models

    def _entries_of_dir(self, model_dir: Path) -> list[_Entry]:
        config = model_dir / "config.pbtxt"
        max_batch = None
        parameters: dict[str, str] = {}
        label_files: dict[str, Path] = {}
        if config.exists():
            text = config.read_text(encoding="utf-8")
            match = _MAX_BATCH.search(text)
            max_batch = int(match.group(1)) if match else 0
            parameters, label_files = read_config(text, model_dir)
        return [
            _Entry(model_dir.name, str(v), p, max_batch, parameters, label_files) for v, p in _versions(model_dir)
        ]

    def _resolve(self, model_name: str, model_version: str) -> _Entry:
        path = Path(model_name)
        # One message for every model that cannot be served, whatever the reason: it must not
        # tell a caller which paths exist on the server's disk.
        unknown = NotFound(f"model {model_name!r} is not in the repository")
        if path.is_absolute():
            if not self.allow_paths:
                raise unknown
            if path.is_dir():
                entries = self._entries_of_dir(path)
            elif path.suffix == ".onnx" and path.is_file():
                entries = [_Entry(model_name, "1", path, None)]
            else:
                raise unknown
        else:
            if "/" in model_name or model_name.startswith("."):
                raise unknown
            entries = self._scan().get(model_name, [])
        if not entries:
            raise unknown
        if model_version:
            chosen = [e for e in entries if e.version == model_version]
            if not chosen:
                raise NotFound(f"model {model_name!r} has no version {model_version}")
            entry = chosen[0]
        else:
            entry = entries[-1]
        entry.name = model_name
        return entry

    def _session(self, path: Path) -> Any:
        with self._lock:
            if path not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                try:
                    self._sessions[path] = ort.InferenceSession(
                        str(path), sess_options=options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise FailedPrecondition(f"{path}: cannot load ONNX model: {exc}") from exc
            return self._sessions[path]

    def _describe_sync(self, model_name: str, model_version: str) -> pb.ServedModel:
        entry = self._resolve(model_name, model_version)
        session = self._session(entry.path)
        self._paths[(model_name, entry.version)] = entry.path
        self._entries[(model_name, entry.version)] = entry
        inputs, outputs = session.get_inputs(), session.get_outputs()
        dynamic = bool(inputs) and not isinstance(inputs[0].shape[0], int)
        if entry.max_batch_size is not None:
            max_batch = entry.max_batch_size
        else:
            max_batch = DEFAULT_MAX_BATCH if dynamic else 0

        def spec(arg: Any) -> pb.TensorSpec:
            shape = [d if isinstance(d, int) else -1 for d in arg.shape]
            if max_batch > 0:
                shape = shape[1:]
            return pb.TensorSpec(name=arg.name, datatype=_ORT_TYPES.get(arg.type, arg.type), dims=shape)

        model = pb.ServedModel(
            name=model_name,
            version=entry.version,
            state="READY",
            inputs=[spec(a) for a in inputs],
            outputs=[spec(a) for a in outputs],
            max_batch_size=max_batch,
            platform="onnxruntime_onnx",
            parameters=entry.parameters,
        )
        if len(model.outputs) == 1 and model.outputs[0].dims:
            model.n_logits = max(int(model.outputs[0].dims[-1]), 0)
        return model

    async def describe(self, model_name: str, model_version: str = "") -> pb.ServedModel:
        return await asyncio.to_thread(self._describe_sync, model_name, model_version)

    async def list_models(self, *, ready_only: bool = False) -> list[pb.ServedModel]:
        entries = await asyncio.to_thread(self._scan)
        return [
            pb.ServedModel(name=name, version=versions[-1].version, state="READY", platform="onnxruntime_onnx")
            for name, versions in entries.items()
        ]

    async def load(self, model_name: str) -> pb.ServedModel:
        return await self.describe(model_name)

    async def unload(self, model_name: str) -> None:
        entry = await asyncio.to_thread(self._resolve, model_name, "")
        with self._lock:
            self._sessions.pop(entry.path, None)
            self._paths = {k: v for k, v in self._paths.items() if v != entry.path}

    def _infer_sync(self, model: pb.ServedModel, inputs: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        path = self._paths.get((model.name, model.version))
        if path is None:
            path = self._resolve(model.name, model.version).path
        session = self._session(path)
        output = model.output_name or ("logits" if len(model.outputs) > 1 else model.outputs[0].name)
        (result,) = session.run([output], {model.inputs[0].name: inputs})
        return np.asarray(result, dtype=np.float32)

    async def infer(
        self,
        model: pb.ServedModel,
        inputs: npt.NDArray[np.generic],
        *,
        timeout: float | None = None,
    ) -> npt.NDArray[np.float32]:
        return await asyncio.to_thread(self._infer_sync, model, inputs)

    def _labels_sync(self, model: pb.ServedModel) -> list[str]:
        entry = self._entries.get((model.name, model.version)) or self._resolve(model.name, model.version)
        label_file = entry.label_files.get(model.output_name)
        if label_file is not None:
            try:
                return label_file.read_text(encoding="utf-8").splitlines()[: model.n_logits or None]
            except OSError as exc:
                raise FailedPrecondition(
                    f"model {model.name!r}: cannot read its label file {label_file.name}: {exc.strerror}"
                ) from None
        metadata = self._session(entry.path).get_modelmeta().custom_metadata_map
        if "id2label" not in metadata:
            return []
        try:
            id2label = json.loads(metadata["id2label"])
            if isinstance(id2label, dict):
                id2label = [id2label.get(str(i), "") for i in range(model.n_logits)]
            return [str(label) for label in id2label]
        except (ValueError, TypeError):
            raise FailedPrecondition(f"model {model.name!r}: its id2label metadata is not JSON") from None

    async def labels(self, model: pb.ServedModel, sample: npt.NDArray[np.generic]) -> list[str]:
        return await asyncio.to_thread(self._labels_sync, model)
