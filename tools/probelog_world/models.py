"""Classifier architectures of the hub: four families, two sizes each.

Every hub model is a :class:`Classifier`: input normalisation, a backbone from one family and a
linear head. The normalisation is part of the module (and so of the exported graph), so a
deployed model takes images in [0, 1], whatever statistics it was trained with.

=========  ===================================================================
family     backbone
=========  ===================================================================
mlp        2x2 average pooling, then a two-layer perceptron on the pixels
cnn        plain VGG-style stack: stride-2 stem, conv-BN-ReLU and max pooling, global average
resnet     ResNet with basic blocks, stride-2 stem, global average pooling
vit        patch embedding, pre-norm transformer encoder, class token
clip       the image tower of one of the world's CLIPs (open_clip's own module), as the paper's
           hub fine-tunes CLIP image towers; its output is the CLIP image embedding
=========  ===================================================================

A CLIP tower normalises with its CLIP's statistics (open_clip's defaults), every other family
with the world's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Mean and std of the world's images (per RGB channel), measured on single objects.
IMAGE_MEAN = (0.49, 0.47, 0.45)
IMAGE_STD = (0.24, 0.23, 0.24)


class Normalise(nn.Module):
    """``(x - mean) / std`` per channel; x of shape (n, 3, H, W)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...] = IMAGE_MEAN, std: tuple[float, ...] = IMAGE_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _SequentialBackbone(nn.Module):
    """A backbone that is one ``nn.Sequential``, ``self.net``, from images to ``out_features``."""

    net: nn.Sequential
    out_features: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class MLPBackbone(_SequentialBackbone):
    def __init__(self, image_size: int, hidden: int) -> None:
        super().__init__()
        side = image_size // 2
        self.net = nn.Sequential(
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(3 * side * side, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
        )
        self.out_features = hidden


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvBackbone(_SequentialBackbone):
    def __init__(self, image_size: int, stem: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        # A stride-2 stem: full-resolution feature maps would cost most of the compute on a CPU.
        layers: list[nn.Module] = [_conv_bn(3, stem, stride=2)]
        c_in = stem
        for i, w in enumerate(widths):
            layers.append(_conv_bn(c_in, w))
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_features = c_in


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))
        return out


class ResNetBackbone(_SequentialBackbone):
    def __init__(self, image_size: int, width: int, blocks: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, width, stride=2)]
        c_in = width
        for stage, n_blocks in enumerate(blocks):
            c_out = width * 2**stage
            for b in range(n_blocks):
                layers.append(BasicBlock(c_in, c_out, 2 if (b == 0 and stage > 0) else 1))
                c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_features = c_in


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; attention written out so it exports to plain ONNX ops."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (n, heads, t, d_head)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class ViTBackbone(nn.Module):
    def __init__(self, image_size: int, patch: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        tokens = (image_size // patch) ** 2
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, 2.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.out_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        out: torch.Tensor = self.norm(self.blocks(x))[:, 0]
        return out


class ClipVisualBackbone(nn.Module):
    """A CLIP image tower built by open_clip from its vision config; outputs the image embedding.

    Parameters
    ----------
    image_size : int
        Must equal ``vision_cfg["image_size"]``.
    embed_dim : int
        The CLIP's joint embedding width (the tower's output).
    vision_cfg : dict
        open_clip's ``vision_cfg`` (the world CLIP's model config).
    """

    #: open_clip's default image statistics, which the world's CLIPs are trained with.
    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, image_size: int, embed_dim: int, vision_cfg: dict[str, Any]) -> None:
        super().__init__()
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        if int(vision_cfg["image_size"]) != image_size:
            raise ValueError(f"the CLIP tower takes {vision_cfg['image_size']} px images, not {image_size}")
        self.visual = _build_vision_tower(embed_dim, CLIPVisionCfg(**vision_cfg))
        self.out_features = embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.visual(x)
        return out


class Classifier(nn.Module):
    """A hub model: images in [0, 1] of shape (n, 3, H, W) -> logits of shape (n, n_classes)."""

    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.normalise = Normalise(getattr(backbone, "mean", IMAGE_MEAN), getattr(backbone, "std", IMAGE_STD))
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.out_features), n_classes)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.backbone(self.normalise(x)))
        return out

    def replace_head(self, n_classes: int) -> None:
        """A fresh linear head (fine-tuning a foundation onto a new label set)."""
        self.head = nn.Linear(self.head.in_features, n_classes)


@dataclass(frozen=True)
class Architecture:
    """A named architecture: a family and the arguments of its backbone."""

    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, image_size: int, n_classes: int) -> Classifier:
        return Classifier(_BACKBONES[self.family](image_size, **self.kwargs), n_classes)


_BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLPBackbone,
    "cnn": ConvBackbone,
    "resnet": ResNetBackbone,
    "vit": ViTBackbone,
    "clip": ClipVisualBackbone,
}

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("mlp-s", "mlp", {"hidden": 384}),
        Architecture("mlp-m", "mlp", {"hidden": 768}),
        Architecture("cnn-s", "cnn", {"stem": 16, "widths": (24, 48, 96)}),
        Architecture("cnn-m", "cnn", {"stem": 24, "widths": (32, 64, 128)}),
        Architecture("resnet-s", "resnet", {"width": 16, "blocks": (1, 1, 1)}),
        Architecture("resnet-m", "resnet", {"width": 24, "blocks": (1, 1, 1)}),
        Architecture("vit-s", "vit", {"patch": 8, "dim": 64, "depth": 3, "heads": 2}),
        Architecture("vit-m", "vit", {"patch": 8, "dim": 96, "depth": 4, "heads": 3}),
    )
}
FAMILIES: tuple[str, ...] = tuple(_BACKBONES)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups that decay only matrices and kernels, as open_clip's own training:
    no decay on gains, biases, norms, embeddings of one dimension and the CLIP temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "bn" in name or "ln" in name or "norm" in name or "bias" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def clip_tower_architecture(name: str, open_clip_config: dict[str, Any]) -> Architecture:
    """The architecture of a CLIP's image tower, from the CLIP's open_clip model config."""
    return Architecture(
        name, "clip", {"embed_dim": int(open_clip_config["embed_dim"]), "vision_cfg": open_clip_config["vision_cfg"]}
    )
