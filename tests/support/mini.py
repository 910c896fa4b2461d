"""A miniature, untrained world built in seconds, for tests that need real models but not the
trained world: a tiny open_clip model with random weights, a probe set of random shapes, and a
hub of ONNX models whose logits are *constructed*:

- ``matcher``: CLIP's image tower followed by a head whose rows are CLIP text embeddings of
  CONCEPTS, so logit j responds to each probe exactly as CLIP's similarity to concept j does;
- ``shuffled``: the same head with the rows in another order;
- ``imagematch``: a head whose row is the CLIP embedding of QUERY_IMAGE;
- ``random-N``: random heads (distractors);
- ``dead-logit`` (a constant logit) and ``bad-output`` (outputs a 2 x 2 grid): models that
  must be refused with FAILED_PRECONDITION.

So for concept j the truth is known: the matcher's logit j (and the shuffled model's
matching logit) must come first, whatever the weights are.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probelog.common.probe_sets import save_probe_set

CLIP_NAME = "probelog-test-clip"
CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CONCEPTS = ["golden retriever", "fire truck", "red striped circle", "pizza"]
SHUFFLE = [2, 0, 3, 1]  # shuffled model: logit i is CONCEPTS[SHUFFLE[i]]
BACKGROUND = [
    "cat", "dog", "car", "tree", "house", "boat", "bird", "flower", "chair", "lamp", "cup",
    "shoe", "clock", "train", "apple", "banana", "horse", "sheep", "kite", "bottle",
]
TEMPLATE = "a photo of a {}."
N_PROBES = 240
N_RANDOM_MODELS = 5
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class MiniWorld:
    root: Path
    clip_config: Path
    clip_checkpoint: Path
    probe_set_file: Path
    hub: Path
    background_file: Path
    query_image: bytes

    GOOD_MODELS = ("matcher", "shuffled", "imagematch", *(f"random-{i}" for i in range(N_RANDOM_MODELS)))
    BAD_MODELS = ("dead-logit", "bad-output")

    def embedded_settings(self, store_dir: Path) -> dict[str, str]:
        """Overrides for EmbeddedSettings (or CLI flags) that serve this world."""
        return {
            "store_url": f"file://{store_dir}",
            "runner_url": f"onnx://{self.hub}",
            "clip_model": CLIP_NAME,
            "clip_pretrained": str(self.clip_checkpoint),
            "clip_config": str(self.clip_config),
            "probe_set_file": str(self.probe_set_file),
            "background": str(self.background_file),
            "prompt_templates": (TEMPLATE,),
            "cache_dir": "",
        }


def _shapes(rng: np.random.Generator, n: int, size: int = 32) -> np.ndarray:
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        bg = rng.integers(0, 256, 3)
        img = np.broadcast_to(bg, (size, size, 3)).copy()
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.integers(4, size - 4, 2).tolist()
            r = int(rng.integers(3, 10))
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            img[mask] = rng.integers(0, 256, 3)
        images[i] = img
    return images


def build(root: Path, seed: int = 0) -> MiniWorld:
    import open_clip
    import torch
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    config = root / f"{CLIP_NAME}.json"
    config.write_text(json.dumps(CLIP_CONFIG))
    open_clip.add_model_config(str(config))
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(CLIP_NAME)
    model.eval()
    checkpoint = root / "clip.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    tokenizer = open_clip.get_tokenizer(CLIP_NAME)

    rng = np.random.default_rng(seed)
    probes = _shapes(rng, N_PROBES)
    probe_file = root / "probes.npz"
    save_probe_set(probe_file, "mini-shapes", probes)
    query = _shapes(rng, 1)[0]
    buf = io.BytesIO()
    Image.fromarray(query).save(buf, format="PNG")

    with torch.no_grad():
        text = model.encode_text(tokenizer([TEMPLATE.format(c) for c in CONCEPTS]))
        text = text / text.norm(dim=-1, keepdim=True)
        q = model.encode_image(preprocess(Image.fromarray(query)).unsqueeze(0))
        q = q / q.norm(dim=-1, keepdim=True)

    class Head(torch.nn.Module):
        def __init__(self, visual: torch.nn.Module, rows: torch.Tensor) -> None:
            super().__init__()
            self.visual = visual
            self.rows = torch.nn.Parameter(rows.clone())
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.visual((x - self.mean) / self.std)
            return (f / f.norm(dim=-1, keepdim=True)) @ self.rows.T

    heads = {
        "matcher": text,
        "shuffled": text[SHUFFLE],
        "imagematch": q,
    }
    gen = torch.Generator().manual_seed(seed + 1)
    for i in range(N_RANDOM_MODELS):
        heads[f"random-{i}"] = torch.randn(3, CLIP_CONFIG["embed_dim"], generator=gen)
    class Grid(Head):
        """Outputs (batch, 2, 2): not a vector of logits, so it cannot be indexed."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x).reshape(-1, 2, 2)

    dead = text.clone()
    dead[1] = 0.0  # logit 1 is constant over every probe
    modules = {name: Head(model.visual, rows) for name, rows in heads.items()}
    modules["dead-logit"] = Head(model.visual, dead)
    modules["bad-output"] = Grid(model.visual, text)
    hub = root / "hub"
    example = torch.rand(2, 3, 32, 32)
    for name, module in modules.items():
        dims = "2, 2" if isinstance(module, Grid) else str(len(module.rows))
        folder = hub / name / "1"
        folder.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(
            module.eval(), (example,), str(folder / "model.onnx"),
            input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False, opset_version=17,
        )
        (hub / name / "config.pbtxt").write_text(
            f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 64\n'
            'input [ { name: "images" data_type: TYPE_FP32 dims: [ 3, 32, 32 ] } ]\n'
            f'output [ {{ name: "logits" data_type: TYPE_FP32 dims: [ {dims} ] }} ]\n'
        )
    background = root / "background.txt"
    # Like the paper's background (ImageNet-21k names around ImageNet-1k concepts), the
    # background vocabulary covers the concepts the hub recognises.
    background.write_text("\n".join([*BACKGROUND, *CONCEPTS]) + "\n")
    return MiniWorld(root, config, checkpoint, probe_file, hub, background, buf.getvalue())


def service_flags(world: MiniWorld) -> dict[str, list[str]]:
    """`probelog serve` flags for this world: the CLIP encoder's and the orchestrator's."""
    return {
        "clip": [
            "--clip-model", CLIP_NAME, "--clip-pretrained", str(world.clip_checkpoint),
            "--clip-config", str(world.clip_config), "--prompt-templates", TEMPLATE, "--cache-dir", "",
        ],
        "orchestrator": [
            "--probe-set-file", str(world.probe_set_file), "--background", str(world.background_file),
        ],
    }
