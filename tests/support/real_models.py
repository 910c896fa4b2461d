"""A hub of models shaped like the ones platform teams export, with random weights.

Each model is a Triton model directory (``config.pbtxt`` + ``1/model.onnx``, a label file where
it has one), exported from torchvision or a hand-written torch module:

``resnet18``
    torchvision ResNet-18 (10 classes), FP32 NCHW [3, 32, 32], ImageNet normalisation outside
    the graph (config parameter ``probelog.preset: imagenet``).
``resnet18-nhwc-fp16``
    The same weights behind a timm-style input: FP16 NHWC [32, 32, 3] normalised with mean = std
    = 0.5 (``probelog.preset: inception``); the graph maps that back to what ResNet-18 expects,
    so it computes the same function of the image as ``resnet18``.
``echo``
    Returns its FP32 NCHW [3, 24, 24] input flattened: what reaches the model, for comparison
    with torchvision's transforms (preset ``imagenet``).
``echo-variable``
    The same for an FP16 NHWC input of variable height and width; the config sets 20 x 28,
    stretch, BGR and 0-255 caffe-style statistics.
``softmax-head``
    A small CNN ending in a softmax (its pre-softmax logits are ``softmax-head-logits``).
``two-outputs``
    Outputs ``embedding`` [16] and ``scores`` [5]; ``probelog.output: scores`` chooses.
``labelled``
    A small CNN with a Triton label file (``labels.txt``) on its output.
``id2label``
    A small CNN whose ONNX metadata carries Hugging Face's ``id2label`` (JSON).
``one-hot-head``
    A small CNN whose output is its one-hot prediction: class decisions, not scores.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

#: torchvision's ImageNet statistics, as in its model cards.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_MEAN, CAFFE_STD = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)  # BGR, 0-255 units
LABELS = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead: the shark"]
VARIABLE_SIZE = (20, 28)
N_CLASSES = 10
MAX_BATCH = 8


def _config(name: str, inputs: list[tuple[str, str, list[int]]], outputs: list[tuple[str, str, list[int], str]],
            parameters: dict[str, str]) -> str:
    def tensor(name: str, dtype: str, dims: list[int], extra: str = "") -> str:
        return f'  {{ name: "{name}" data_type: TYPE_{dtype} dims: [ {", ".join(map(str, dims))} ] {extra}}}'

    lines = [f'name: "{name}"', 'backend: "onnxruntime"', f"max_batch_size: {MAX_BATCH}", "input ["]
    lines.append(",\n".join(tensor(*t) for t in inputs))
    lines += ["]", "output ["]
    lines.append(",\n".join(
        tensor(n, d, dims, f'label_filename: "{label}" ' if label else "") for n, d, dims, label in outputs
    ))
    lines.append("]")
    for key, value in parameters.items():
        lines.append(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def _export(module, example, path: Path, outputs: list[str]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    if example.dim() == 4 and getattr(module, "variable_size", False):
        axes["images"] = {0: "batch", 1: "height", 2: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), (example,), path, input_names=["images"], output_names=outputs,
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )


def _add_metadata(path: Path, **entries: object) -> None:
    """Add JSON entries to an ONNX file's metadata_props (what Hugging Face exports carry)."""
    import json

    import onnx

    graph = onnx.load(path)
    for key, value in entries.items():
        onnx.helper.set_model_props(graph, {key: json.dumps(value)})
    onnx.save(graph, path)


def build_hub(hub: Path, seed: int = 0) -> Path:
    """Write the hub described in the module docstring into ``hub``; returns it."""
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(seed)
    hub.mkdir(parents=True, exist_ok=True)

    def small_cnn(n_out: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_out),
        )

    def write(name: str, module, example, inputs, outputs, parameters, files=None) -> None:
        _export(module, example, hub / name / "1" / "model.onnx", [o[0] for o in outputs])
        (hub / name / "config.pbtxt").write_text(_config(name, inputs, outputs, parameters))
        for file_name, text in (files or {}).items():
            (hub / name / file_name).write_text(text)

    resnet = torchvision.models.resnet18(num_classes=N_CLASSES).eval()
    with torch.no_grad():  # random BatchNorm statistics, so that the logits vary across images
        for m in resnet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    write("resnet18", resnet, torch.zeros(1, 3, 32, 32),
          [("images", "FP32", [3, 32, 32])], [("logits", "FP32", [N_CLASSES], "")],
          {"probelog.preset": "imagenet"})

    class TimmStyle(nn.Module):
        """FP16 NHWC, normalised with mean = std = 0.5, into ResNet-18's ImageNet input."""

        def __init__(self) -> None:
            super().__init__()
            self.net = resnet
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

        def forward(self, x):
            x = x.float().permute(0, 3, 1, 2) * 0.5 + 0.5
            return self.net((x - self.mean) / self.std)

    write("resnet18-nhwc-fp16", TimmStyle(), torch.zeros(1, 32, 32, 3, dtype=torch.float16),
          [("images", "FP16", [32, 32, 3])], [("logits", "FP32", [N_CLASSES], "")],
          {"probelog.preset": "inception"})

    class Echo(nn.Module):
        def __init__(self, variable_size: bool = False) -> None:
            super().__init__()
            self.variable_size = variable_size

        def forward(self, x):
            return x.float().flatten(1)

    write("echo", Echo(), torch.zeros(1, 3, 24, 24), [("images", "FP32", [3, 24, 24])],
          [("pixels", "FP32", [3 * 24 * 24], "")], {"probelog.preset": "imagenet"})
    h, w = VARIABLE_SIZE
    write("echo-variable", Echo(variable_size=True), torch.zeros(1, h, w, 3, dtype=torch.float16),
          [("images", "FP16", [-1, -1, 3])], [("pixels", "FP32", [-1], "")],
          {"probelog.height": str(h), "probelog.width": str(w), "probelog.resize": "stretch",
           "probelog.channel_order": "BGR", "probelog.value_range": "0-255",
           "probelog.mean": ",".join(map(str, CAFFE_MEAN)), "probelog.std": ",".join(map(str, CAFFE_STD))})

    logits_net = small_cnn(N_CLASSES)
    write("softmax-head-logits", logits_net, torch.zeros(1, 3, 32, 32), [("images", "FP32", [3, 32, 32])],
          [("logits", "FP32", [N_CLASSES], "")], {})
    write("softmax-head", nn.Sequential(logits_net, nn.Softmax(dim=1)), torch.zeros(1, 3, 32, 32),
          [("images", "FP32", [3, 32, 32])], [("probs", "FP32", [N_CLASSES], "")], {})

    class TwoOutputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = small_cnn(16)
            self.head = nn.Linear(16, len(LABELS))

        def forward(self, x):
            embedding = self.body(x)
            return embedding, self.head(embedding)

    write("two-outputs", TwoOutputs(), torch.zeros(1, 3, 32, 32), [("images", "FP32", [3, 32, 32])],
          [("embedding", "FP32", [16], ""), ("scores", "FP32", [len(LABELS)], "")], {"probelog.output": "scores"})
    write("labelled", small_cnn(len(LABELS)), torch.zeros(1, 3, 32, 32), [("images", "FP32", [3, 32, 32])],
          [("logits", "FP32", [len(LABELS)], "labels.txt")], {}, {"labels.txt": "\n".join(LABELS) + "\n"})
    write("id2label", small_cnn(len(LABELS)), torch.zeros(1, 3, 32, 32), [("images", "FP32", [3, 32, 32])],
          [("logits", "FP32", [len(LABELS)], "")], {})
    _add_metadata(hub / "id2label" / "1" / "model.onnx", id2label={str(i): label for i, label in enumerate(LABELS)})

    class OneHot(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_cnn(N_CLASSES)

        def forward(self, x):
            scores = self.net(x)
            return (scores == scores.max(dim=1, keepdim=True).values).float()

    write("one-hot-head", OneHot(), torch.zeros(1, 3, 32, 32),
          [("images", "FP32", [3, 32, 32])], [("logits", "FP32", [N_CLASSES], "")], {})
    return hub


def probe_images(n: int = 24, height: int = 40, width: int = 52, seed: int = 0) -> np.ndarray:
    """Smooth random colour images (n, height, width, 3) uint8, not square, so that resizing
    and centre-cropping both matter."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 5, 6, 3), dtype=np.uint8)
    return np.stack([
        np.asarray(Image.fromarray(c).resize((width, height), Image.Resampling.BICUBIC)) for c in coarse
    ])
