"""Writing a hub of ONNX models as a Triton model repository (``probelog triton-repo``).

The hub is the layout :class:`~probelog.probe_runner.onnx_backend.OnnxProbeBackend` reads:
``NAME/config.pbtxt`` + ``NAME/<version>/model.onnx``, or plain ``NAME.onnx`` files. Two
repository flavours come out:

``onnxruntime`` (default)
    The standard layout GPU servers use: ``NAME/config.pbtxt`` with ``backend: "onnxruntime"``
    and ``NAME/<version>/model.onnx``.
``python``
    For CPU-only hosts where the Python backend is the only one (the nvidia-pytriton wheel's
    tritonserver): ``backend: "python"``, one CPU instance, and ``NAME/<version>/model.py`` that
    runs ``model.onnx`` beside it with onnxruntime on one thread.

A model's config keeps the hub's ``config.pbtxt`` (inputs, outputs, max_batch_size, ...) and only
changes the backend; a model without one gets a config read off its ONNX graph. Each model is
assembled in a hidden directory and renamed into place, so a server (or the auto-indexer)
polling the repository never sees half a model.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from probelog.common.errors import FailedPrecondition, InvalidArgument, NotFound

logger = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "python")

#: The Python-backend model: runs the ONNX file next to it, one onnxruntime thread.
MODEL_PY = '''\
"""Triton Python-backend model written by `probelog triton-repo --backend python`: runs
model.onnx (next to this file) with onnxruntime on the CPU, one thread per instance."""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        # One compute thread per instance: two threads on two shared cores double latency.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            try:
                results = self.session.run([name for name, _ in self.outputs], feeds)
            except Exception as exc:  # onnxruntime's own exception types
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
                continue
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=dtype))
                for (name, dtype), value in zip(self.outputs, results)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.session = None
'''

_TYPES = {"FP32": "TYPE_FP32", "FP16": "TYPE_FP16", "FP64": "TYPE_FP64", "UINT8": "TYPE_UINT8",
          "INT32": "TYPE_INT32", "INT64": "TYPE_INT64"}


def _model_sources(hub: Path) -> dict[str, tuple[Path | None, list[tuple[str, Path]]]]:
    """name -> (its config.pbtxt or None, [(version, model.onnx)])."""
    found: dict[str, tuple[Path | None, list[tuple[str, Path]]]] = {}
    for child in sorted(hub.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            versions = sorted(
                (int(v.name), v / "model.onnx")
                for v in child.iterdir()
                if v.is_dir() and v.name.isdigit() and (v / "model.onnx").is_file()
            )
            if versions:
                config = child / "config.pbtxt"
                found[child.name] = (config if config.is_file() else None, [(str(v), p) for v, p in versions])
        elif child.suffix == ".onnx":
            found[child.stem] = (None, [("1", child)])
    return found


def _config_from_graph(name: str, onnx_file: Path) -> Any:
    """A ModelConfig read off the ONNX graph (what the in-process runner sees)."""
    from tritonclient.grpc import model_config_pb2 as mc

    from probelog.probe_runner.onnx_backend import OnnxProbeBackend

    served = OnnxProbeBackend(onnx_file.parent, allow_paths=True)._describe_sync(str(onnx_file.resolve()), "")
    config = mc.ModelConfig(name=name, max_batch_size=served.max_batch_size)
    for specs, target in ((served.inputs, config.input), (served.outputs, config.output)):
        for spec in specs:
            if spec.datatype not in _TYPES:
                raise FailedPrecondition(f"{onnx_file}: tensor {spec.name!r} has type {spec.datatype}")
            tensor = target.add(name=spec.name, dims=list(spec.dims))
            tensor.data_type = mc.DataType.Value(_TYPES[spec.datatype])
    return config


def model_config(name: str, config_file: Path | None, onnx_file: Path, backend: str) -> str:
    """The ``config.pbtxt`` text of one model in the ``backend`` flavour."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    if config_file is not None:
        try:
            config = text_format.Parse(config_file.read_text(encoding="utf-8"), mc.ModelConfig())
        except text_format.ParseError as exc:
            raise FailedPrecondition(f"{config_file}: not a Triton model config: {exc}") from None
    else:
        config = _config_from_graph(name, onnx_file)
    config.name = name
    config.platform = ""
    config.backend = backend
    if backend == "python":
        del config.instance_group[:]
        config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    return str(text_format.MessageToString(config))


def _copy_label_files(config_file: Path, staging: Path) -> None:
    """The outputs' label files (``label_filename``) go beside the config, where Triton reads them."""
    from probelog.probe_runner.onnx_backend import read_config

    _, label_files = read_config(config_file.read_text(encoding="utf-8"), config_file.parent)
    for label_file in label_files.values():
        if not label_file.is_file():
            raise FailedPrecondition(f"{config_file}: its label file {label_file.name} is missing")
        target = staging / label_file.relative_to(config_file.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(label_file, target)


def _place(source: Path, target: Path) -> None:
    """Hard-link when the file system allows (hubs can be large), else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_model(
    name: str,
    config_file: Path | None,
    versions: Sequence[tuple[str, Path]],
    out: Path,
    backend: str = "onnxruntime",
) -> Path:
    """Write one model into the repository ``out`` atomically (replacing an earlier one)."""
    if backend not in BACKENDS:
        raise InvalidArgument(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        (staging / "config.pbtxt").write_text(model_config(name, config_file, versions[-1][1], backend), encoding="utf-8")
        if config_file is not None:
            _copy_label_files(config_file, staging)
        for version, onnx_file in versions:
            folder = staging / version
            folder.mkdir()
            _place(onnx_file, folder / "model.onnx")
            if backend == "python":
                (folder / "model.py").write_text(MODEL_PY, encoding="utf-8")
        staging.chmod(0o755)
        target = out / name
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=out))
            target.rename(old / name)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            staging.rename(target)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_repository(
    hub: str | Path,
    out: str | Path,
    *,
    backend: str = "onnxruntime",
    models: Sequence[str] = (),
) -> list[str]:
    """Write every model of ``hub`` (or only ``models``) as a Triton repository in ``out``.

    Returns
    -------
    list of str
        The model names written, sorted.
    """
    hub, out = Path(hub), Path(out)
    if not hub.is_dir():
        raise NotFound(f"hub {hub} is not a directory")
    if hub.resolve() == out.resolve():
        raise InvalidArgument("the repository must be another directory than the hub")
    sources = _model_sources(hub)
    wanted = list(models) or sorted(sources)
    missing = [m for m in wanted if m not in sources]
    if missing:
        raise NotFound(f"not in hub {hub}: {', '.join(missing)}")
    for name in wanted:
        config_file, versions = sources[name]
        write_model(name, config_file, versions, out, backend)
    logger.info("wrote %d models of %s to %s (%s backend)", len(wanted), hub, out, backend)
    return wanted
