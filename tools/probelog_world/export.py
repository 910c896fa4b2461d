"""Export hub models to ONNX in a Triton model repository.

Each model becomes ``REPO/<name>/config.pbtxt`` and ``REPO/<name>/1/model.onnx``: one input
``images`` (FP32, ``[3, H, W]``, values in [0, 1]), one output ``logits`` (FP32, ``[n_logits]``),
a dynamic batch axis, and nothing that names the classes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
MAX_BATCH_SIZE = 256
ONNX_OPSET = 17


def onnx_bytes(model: torch.nn.Module, image_size: int) -> bytes:
    """Serialise a classifier to ONNX with a dynamic batch axis.

    Parameters
    ----------
    model : torch.nn.Module
        Takes float32 (n, 3, image_size, image_size) in [0, 1], returns (n, n_logits).

    Returns
    -------
    bytes
        A checked ONNX model with input ``images`` and output ``logits``.
    """
    model = model.eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        path = Path(tmp) / "model.onnx"
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; for these plain feed-forward graphs both give the same ops.
        warnings.simplefilter("ignore")
        # nn.MultiheadAttention (CLIP image towers) takes a fused fast path in eval mode that has
        # no ONNX symbol; the plain path exports to standard ops and computes the same.
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, image_size, image_size),),
                path,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        data = path.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def triton_config(name: str, image_size: int, n_logits: int, max_batch_size: int = MAX_BATCH_SIZE) -> str:
    """The ``config.pbtxt`` of one model (protobuf text format, Triton's ModelConfig)."""
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        "input [\n"
        "  {\n"
        f'    name: "{INPUT_NAME}"\n'
        "    data_type: TYPE_FP32\n"
        f"    dims: [ 3, {image_size}, {image_size} ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        f'    name: "{OUTPUT_NAME}"\n'
        "    data_type: TYPE_FP32\n"
        f"    dims: [ {n_logits} ]\n"
        "  }\n"
        "]\n"
        "instance_group [\n"
        "  {\n"
        "    count: 1\n"
        "    kind: KIND_CPU\n"
        "  }\n"
        "]\n"
        "dynamic_batching { }\n"
    )


def run_onnx(data: bytes | Path, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Run an exported model with onnxruntime on one thread.

    Parameters
    ----------
    data : bytes or pathlib.Path
        The ONNX model.
    images : ndarray of shape (n, 3, H, W), float32, in [0, 1]

    Returns
    -------
    ndarray of shape (n, n_logits), float32
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = str(data) if isinstance(data, Path) else data
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})
    return np.asarray(out, dtype=np.float32)


def export_to_repository(
    model: torch.nn.Module,
    name: str,
    repository: Path,
    image_size: int,
    staging: Path,
    check_images: npt.NDArray[np.float32] | None = None,
    tolerance: float = 1e-3,
) -> Path:
    """Write one model into a Triton repository, atomically.

    The model directory is assembled under ``staging`` and renamed into ``repository`` in one
    step, so a reader (or a resumed build) sees either the whole model or nothing.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier taking [0, 1] images.
    name : str
        The model's directory name in the repository.
    repository, staging : pathlib.Path
        On the same file system.
    image_size : int
    check_images : ndarray of shape (n, 3, H, W), float32, optional
        If given, the ONNX model must reproduce the torch logits on these within ``tolerance``.

    Returns
    -------
    pathlib.Path
        ``repository / name``.

    Raises
    ------
    RuntimeError
        If the exported model disagrees with torch.
    """
    data = onnx_bytes(model, image_size)
    with torch.no_grad():
        n_logits = int(model(torch.zeros(1, 3, image_size, image_size)).shape[1])
    if check_images is not None:
        with torch.no_grad():
            expected = model(torch.from_numpy(check_images)).numpy()
        got = run_onnx(data, check_images)
        err = float(np.max(np.abs(got - expected)))
        if not err <= tolerance * max(1.0, float(np.max(np.abs(expected)))):
            raise RuntimeError(f"{name}: ONNX export differs from torch by {err:.2e}")
    tmp = staging / name
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "1").mkdir(parents=True)
    (tmp / "1" / "model.onnx").write_bytes(data)
    (tmp / "config.pbtxt").write_text(triton_config(name, image_size, n_logits))
    repository.mkdir(parents=True, exist_ok=True)
    final = repository / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final
