"""ProbeLog measured on a world's own hub, with the math and the CLIP the services use.

Shared by the build (a demo world records its ProbeLog top-1 in ``world.json``) and by the
quality bench: running the hub's ONNX models on probe images (as the in-process runner does),
encoding concept names through the world's CLIP (as the encoder does, with its prompt
ensembling), and ProbeLog's calibrated truncated distance (``probelog.core``). Ground truth is
read only to score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from probelog.common.world_layout import WorldLayout
from probelog.core import metrics
from probelog.core.descriptors import zscore
from probelog.core.distance import (
    DEFAULT_CALIBRATION_K,
    DEFAULT_R,
    LogitEntries,
    entry_distances,
    logit_entries,
)

F32 = npt.NDArray[np.float32]


def run_hub(
    layout: WorldLayout, model_names: Sequence[str], images: npt.NDArray[np.uint8], threads: int = 1
) -> Iterable[F32]:
    """Each hub model's raw logits on ``images`` (uint8, (n, H, W, 3)), as (n_logits, n) float32."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    for name in model_names:
        session = ort.InferenceSession(
            str(layout.hub / name / "1" / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        feed = session.get_inputs()[0].name
        chunks = [session.run(None, {feed: x[s : s + 512]})[0] for s in range(0, len(x), 512)]
        yield np.concatenate(chunks).T.astype(np.float32)


@dataclass
class WorldClip:
    """A world's CLIP loaded as the CLIP encoder loads it, with the prompt templates search uses."""

    encoder: Any
    templates: tuple[str, ...]

    @classmethod
    def load(cls, layout: WorldLayout) -> WorldClip:
        from probelog.clip_encoder.encoder import DEFAULT_PROMPT_TEMPLATES
        from probelog.clip_encoder.open_clip import OpenClipEncoder

        # Read from clip/ rather than world.json, which a build writes last.
        (config,) = [p for p in layout.clip_dir.glob("*.json") if p != layout.clip_report]
        encoder = OpenClipEncoder(config.stem, str(layout.clip_checkpoint), str(config))
        templates = layout.info().get("prompt_templates") if layout.is_world() else None
        return cls(encoder, tuple(templates or DEFAULT_PROMPT_TEMPLATES))

    def text(self, names: Sequence[str]) -> F32:
        from probelog.clip_encoder.encoder import ensemble_text_embeddings

        return ensemble_text_embeddings(self.encoder, list(names), self.templates)

    def images(self, images: npt.NDArray[np.uint8]) -> F32:
        from PIL import Image

        return np.asarray(self.encoder.encode_images([Image.fromarray(img) for img in images]), dtype=np.float32)


def calibrated(entries: LogitEntries, concepts_z: F32, background_z: F32, ks: Iterable[int]) -> dict[int, F32]:
    """ProbeLog's calibrated distances (Eq. 5-6) for several k at the cost of one background pass.

    Returns
    -------
    dict
        k -> D of shape (n_logits, n_concepts): ``D[l, c]`` is d(l, c) minus the mean of the k
        smallest truncated distances from logit l to the background concepts.
    """
    d = entry_distances(entries, concepts_z)
    to_background = np.sort(entry_distances(entries, background_z), axis=1)
    return {k: d - to_background[:, :k].mean(axis=1, keepdims=True) for k in ks}


@dataclass
class Hub:
    """A built world's hub, with its ground truth (for scoring only)."""

    world: Path
    model_names: list[str]
    logit_model: npt.NDArray[np.int64]  # (n_logits,)
    logit_concept: list[str]
    query_names: list[str]  # distinct concepts recognised by some logit, sorted
    logit_query: npt.NDArray[np.int64]  # (n_logits,) index into query_names
    truth: dict[str, Any]

    @property
    def n_logits(self) -> int:
        return len(self.logit_concept)

    def relevant(self, queries: Sequence[int] | npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.bool_]:
        """(n_logits, n_queries): logit l answers query q when it recognises that concept."""
        cols = np.arange(len(self.query_names)) if queries is None else np.asarray(queries)
        return self.logit_query[:, None] == cols[None, :]


def load_hub(world: Path) -> Hub:
    """A world's hub in sorted model order, its logits' concepts and the distinct query concepts."""
    layout = WorldLayout.at(world)
    truth = layout.models_truth()
    names = sorted(truth)
    logit_model, logit_concept = [], []
    for m, name in enumerate(names):
        for concept in truth[name]["concepts"]:
            logit_model.append(m)
            logit_concept.append(concept)
    queries = sorted(set(logit_concept))
    index = {q: i for i, q in enumerate(queries)}
    return Hub(
        world=layout.root,
        model_names=names,
        logit_model=np.asarray(logit_model, dtype=np.int64),
        logit_concept=logit_concept,
        query_names=queries,
        logit_query=np.asarray([index[c] for c in logit_concept], dtype=np.int64),
        truth=truth,
    )


def measure_probelog(layout: WorldLayout, r: int = DEFAULT_R, k: int = DEFAULT_CALIBRATION_K) -> dict[str, Any]:
    """ProbeLog's text-to-logit top-1 and top-5 over every concept of a world's hub.

    Each concept some hub logit recognises is a query (its name, through the CLIP's prompt
    templates), searched over all of the hub's logits on the default probe set (scenes) with the
    services' defaults: truncation to the top ``r`` probes and calibration against the world's
    background names with ``k`` (clamped to the background's size). A query is answered at rank 1
    when the best-scoring logit recognises that concept.

    Returns
    -------
    dict
        ``top1``, ``top5``, ``n_queries``, ``n_logits``, ``n_probes``, ``r``, ``k``.
    """
    from probelog.common.probe_sets import load_probe_set

    hub = load_hub(layout.root)
    probes = load_probe_set(layout.probe_set("scenes")).images
    logits = np.concatenate(list(run_hub(layout, hub.model_names, probes)), axis=0)
    clip = WorldClip.load(layout)
    probe_emb = clip.images(probes)
    background = [n for n in layout.background.read_text().splitlines() if n.strip()]
    k = min(k, len(background))
    query_z = zscore(np.asarray(clip.text(hub.query_names) @ probe_emb.T, dtype=np.float32))
    background_z = zscore(np.asarray(clip.text(background) @ probe_emb.T, dtype=np.float32))
    D = calibrated(logit_entries(logits, r), query_z, background_z, [k])[k]
    acc = metrics.retrieval_top_k_accuracy(D, hub.relevant(), (1, 5))
    return {
        "top1": round(float(acc[1]), 4),
        "top5": round(float(acc[5]), 4),
        "n_queries": len(hub.query_names),
        "n_logits": hub.n_logits,
        "n_probes": len(probes),
        "r": r,
        "k": k,
    }
