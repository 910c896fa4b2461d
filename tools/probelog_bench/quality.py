"""``probelog bench quality``: the paper's experiments re-run on a trained world's model hub.

Everything is measured with the code the services run (``probelog.core``), the world's own CLIP
(loaded as the CLIP encoder loads it) and the hub's ONNX models (run as the in-process runner
runs them). Ground truth is read only to score.

Probe pools are rendered by the world's generator with a seed of their own (never the world's
training seed); each seed of *probe sampling* draws the probes of an experiment from its pool.

Tables and figures (numbering of the paper):

- Table 1: logit classification, top-1/top-5 over the closed set of the hub's concepts.
- Table 2: text-to-logit retrieval, top-1/top-5.
- Table 4: probe distributions (single objects, scenes, shifted, dead leaves).
- Table 5: search by image, k = 1, 5, 10 example images.
- Fig. 4: hubness (queries covered by the K most-returned logits).
- Fig. 5: number of probes; Fig. 8: r; Table 7: background-set size.
- Table 3 and Fig. 7: PR-AUC of retrieved logits on held-out single objects, against the hub's
  mean and CLIP's own zero-shot PR-AUC.
- A sweep of the calibration k, whose best value becomes the system's default.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from probelog.common.files import atomic_write
from probelog.core import baselines, metrics
from probelog.core.descriptors import image_set_descriptor, normalize_embeddings, zscore
from probelog.core.distance import LogitEntries, entry_distances, logit_entries

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

#: Pool sizes rendered for the bench: the scene pool covers Fig. 5 up to 8,000 probes with
#: room for distinct samples; the other distributions are sampled 4,000 at a time. Every pool
#: image goes through every hub model, which is most of the bench's running time.
POOL_SIZES = {"scenes": 9_000, "objects": 4_500, "shifted": 4_500, "noise": 4_500}
POOL_SEED = 9_999
N_PROBES = 4_000
R = 50
K_SWEEP = (1, 2, 3, 5, 10, 20, 50, 100, 200)
PROBE_COUNTS = (125, 250, 500, 1000, 2000, 4000, 8000)
R_SWEEP = (5, 10, 25, 50, 100, 250, 500, 1000, 4000)
BACKGROUND_SIZES = (5, 25, 50, 100, 250, 500)
IMAGE_QUERY_SIZES = (1, 5, 10)
PR_AUC_PER_CONCEPT = 10
PR_AUC_RANKS = 20
METHODS = ("CLIP-Dissect (WPMI)", "CLIP-Dissect (SoftWPMI)", "All probes + anti-hub", "ProbeLog")


# ---------------------------------------------------------------------------------------------
# The hub as evaluation sees it


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
    templates: tuple[str, ...]

    @property
    def n_logits(self) -> int:
        return len(self.logit_concept)

    def relevant(self, queries: Sequence[int] | None = None) -> npt.NDArray[np.bool_]:
        """(n_logits, n_queries): logit l answers query q when it recognises that concept."""
        cols = np.arange(len(self.query_names)) if queries is None else np.asarray(queries)
        return self.logit_query[:, None] == cols[None, :]


def load_hub(world: Path) -> Hub:
    truth = json.loads((world / "ground_truth.json").read_text())["models"]
    meta = json.loads((world / "world.json").read_text())
    names = sorted(truth)
    logit_model, logit_concept = [], []
    for m, name in enumerate(names):
        for concept in truth[name]["concepts"]:
            logit_model.append(m)
            logit_concept.append(concept)
    queries = sorted(set(logit_concept))
    index = {q: i for i, q in enumerate(queries)}
    templates = tuple(meta.get("prompt_templates") or ("a photo of a {}.",))
    return Hub(
        world=world,
        model_names=names,
        logit_model=np.asarray(logit_model, dtype=np.int64),
        logit_concept=logit_concept,
        query_names=queries,
        logit_query=np.asarray([index[c] for c in logit_concept], dtype=np.int64),
        truth=truth,
        templates=templates,
    )


# ---------------------------------------------------------------------------------------------
# Data: probe pools, hub logits, CLIP embeddings (all cached under <world>/bench-cache)


class Cache:
    def __init__(self, world: Path) -> None:
        self.root = world / "bench-cache"
        self.root.mkdir(parents=True, exist_ok=True)

    def array(self, name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.root / f"{name}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        arrays = make()
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return arrays


def render_pools(world: Path, cache: Cache, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """The bench's probe pools, rendered by the world's generator with the bench's own seed."""
    from probelog_world.concepts import ConceptSet, rng_for
    from probelog_world.render import (
        IMAGE_SIZE,
        render_dead_leaves,
        render_objects,
        render_scenes,
        render_shifted,
    )

    fine = ConceptSet().fine_attributes
    pools = {}
    for name, n in sizes.items():

        def make(name: str = name, n: int = n) -> dict[str, np.ndarray]:
            rng = rng_for(POOL_SEED, "bench-pool", name)
            if name == "scenes":
                images, _ = render_scenes(rng, n, fine, IMAGE_SIZE)
            elif name == "objects":
                images = render_objects(rng, fine[rng.integers(0, len(fine), n)], IMAGE_SIZE)
            elif name == "shifted":
                images = render_shifted(rng, fine[rng.integers(0, len(fine), n)], IMAGE_SIZE)
            else:
                images = render_dead_leaves(rng, n, IMAGE_SIZE)
            return {"images": images}

        pools[name] = cache.array(f"pool-{name}-{n}", make)["images"]
    return pools


def eval_objects(world: Path, per_concept: int = PR_AUC_PER_CONCEPT) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Held-out single objects (never trained on), at most ``per_concept`` per fine concept."""
    with np.load(world / "eval" / "objects.npz") as data:
        images, labels, names = data["images"], data["labels"], [str(n) for n in data["concept_names"]]
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_concept] for c in np.unique(labels)])
    return images[keep], labels[keep], names


def hub_logits(hub: Hub, pool: str, images: np.ndarray, cache: Cache, threads: int) -> F32:
    """Raw logits of every hub logit on ``images``, shape (n_logits, n_images), cached per model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    out = np.empty((hub.n_logits, len(images)), dtype=np.float32)
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    row = 0
    for name in tqdm(hub.model_names, desc=f"hub logits on {pool}", unit="model", leave=False):

        def make(name: str = name) -> dict[str, np.ndarray]:
            model = hub.world / "hub" / name / "1" / "model.onnx"
            session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
            feed = session.get_inputs()[0].name
            chunks = [session.run(None, {feed: x[s : s + 512]})[0] for s in range(0, len(x), 512)]
            return {"logits": np.concatenate(chunks).T.astype(np.float32)}

        logits = cache.array(f"logits/{pool}/{name}", make)["logits"]
        out[row : row + len(logits)] = logits
        row += len(logits)
    return out


@dataclass
class Clip:
    encoder: Any
    templates: tuple[str, ...]

    def text(self, names: Sequence[str]) -> F32:
        from probelog.clip_encoder.encoder import ensemble_text_embeddings

        return ensemble_text_embeddings(self.encoder, list(names), self.templates)

    def images(self, images: np.ndarray) -> F32:
        from PIL import Image

        return self.encoder.encode_images([Image.fromarray(img) for img in images])


def load_clip(world: Path, templates: tuple[str, ...]) -> Clip:
    from probelog.clip_encoder.open_clip import OpenClipEncoder

    meta = json.loads((world / "world.json").read_text())
    name = meta["clip_model_name"]
    encoder = OpenClipEncoder(name, str(world / "clip" / "checkpoint.pt"), str(world / "clip" / f"{name}.json"))
    return Clip(encoder, templates)


# ---------------------------------------------------------------------------------------------
# Scoring one configuration


@dataclass
class Scores:
    """Distance matrices (n_logits, n_queries), lower is better, per method."""

    D: dict[str, F32] = field(default_factory=dict)


def calibrated(entries: LogitEntries, concepts_z: F32, background_z: F32, ks: Iterable[int]) -> dict[int, F32]:
    """ProbeLog's calibrated distances for several k at the cost of one background pass."""
    d = entry_distances(entries, concepts_z)
    to_background = np.sort(entry_distances(entries, background_z), axis=1)
    return {k: d - to_background[:, :k].mean(axis=1, keepdims=True) for k in ks}


def score_methods(
    logits: F32, queries: F32, background: F32, *, r: int, k: int, vocabulary: F32 | None = None,
    methods: Sequence[str] = METHODS,
) -> Scores:
    """Distances of every logit to every query by each method (paper Tab. 1-2 rows).

    ``vocabulary`` is the concept set CLIP-Dissect's softmax runs over (default: the queries).
    """
    vocab = queries if vocabulary is None else vocabulary
    out = Scores()
    if "ProbeLog" in methods:
        entries = logit_entries(logits, r)
        out.D["ProbeLog"] = calibrated(entries, zscore(queries), zscore(background), [k])[k]
    if "All probes + anti-hub" in methods:
        out.D["All probes + anti-hub"] = baselines.all_probes_calibrated_distances(logits, queries, background, k)
    n_q = len(queries)
    if "CLIP-Dissect (WPMI)" in methods:
        out.D["CLIP-Dissect (WPMI)"] = -baselines.wpmi(logits, vocab)[:, :n_q]
    if "CLIP-Dissect (SoftWPMI)" in methods:
        out.D["CLIP-Dissect (SoftWPMI)"] = -baselines.soft_wpmi(logits, vocab)[:, :n_q]
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std())


def fmt(values: Sequence[float]) -> str:
    m, s = mean_std(values)
    return f"{100 * m:.1f}% ± {100 * s:.1f}" if len(values) > 1 else f"{100 * m:.1f}%"


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Run:
    hub: Hub
    pools: dict[str, np.ndarray]
    logits: dict[str, F32]  # pool -> (n_logits, pool size)
    probe_emb: dict[str, F32]  # pool -> (pool size, dim)
    query_text: F32  # (n_queries, dim)
    background_names: list[str]
    background_text: F32
    seeds: list[int]
    n_probes: int = N_PROBES
    results: dict[str, Any] = field(default_factory=dict)

    def sample(self, pool: str, n: int, seed: int) -> npt.NDArray[np.int64]:
        size = self.logits[pool].shape[1]
        if n >= size:
            return np.arange(size)
        return np.sort(np.random.default_rng([seed, n]).choice(size, n, replace=False))

    def descriptors(self, pool: str, idx: npt.NDArray[np.int64]) -> tuple[F32, F32, F32]:
        probes = self.probe_emb[pool][idx]
        return (
            self.logits[pool][:, idx],
            np.asarray(self.query_text @ probes.T, dtype=np.float32),
            np.asarray(self.background_text @ probes.T, dtype=np.float32),
        )


def experiment_main(run: Run, k: int) -> None:
    """Tables 1, 2 and Fig. 4 on scene probes."""
    hub = run.hub
    rel = hub.relevant()
    table: dict[str, dict[str, list[float]]] = {m: {} for m in (*METHODS, "Truncated, no calibration")}
    hubness: dict[str, list[int]] = {}
    for seed in tqdm(run.seeds, desc="tables 1-2", leave=False):
        logits, queries, background = run.descriptors("scenes", run.sample("scenes", run.n_probes, seed))
        scores = score_methods(logits, queries, background, r=R, k=k)
        scores.D["Truncated, no calibration"] = entry_distances(logit_entries(logits, R), zscore(queries))
        for method, D in scores.D.items():
            acc = metrics.retrieval_top_k_accuracy(D, rel, (1, 5))
            cls = metrics.classification_top_k_accuracy(D, hub.logit_query, (1, 5))
            row = table[method]
            for key, value in (("ret1", acc[1]), ("ret5", acc[5]), ("cls1", cls[1]), ("cls5", cls[5])):
                row.setdefault(key, []).append(value)
            if seed == run.seeds[0]:
                hubness[method] = metrics.hubness_coverage(D).tolist()
    run.results["main"] = table
    run.results["hubness"] = hubness


def experiment_k_sweep(run: Run) -> int:
    rel = run.hub.relevant()
    top1: dict[int, list[float]] = {k: [] for k in K_SWEEP}
    top5: dict[int, list[float]] = {k: [] for k in K_SWEEP}
    ks = [k for k in K_SWEEP if k <= len(run.background_names)]
    for seed in tqdm(run.seeds, desc="calibration k", leave=False):
        logits, queries, background = run.descriptors("scenes", run.sample("scenes", run.n_probes, seed))
        for k, D in calibrated(logit_entries(logits, R), zscore(queries), zscore(background), ks).items():
            acc = metrics.retrieval_top_k_accuracy(D, rel, (1, 5))
            top1[k].append(acc[1])
            top5[k].append(acc[5])
    best = max(ks, key=lambda k: (np.mean(top1[k]), np.mean(top5[k]), -k))
    run.results["k_sweep"] = {"top1": {k: top1[k] for k in ks}, "top5": {k: top5[k] for k in ks}, "best": best}
    return best


def experiment_distributions(run: Run, k: int) -> None:
    rel = run.hub.relevant()
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for pool in ("objects", "scenes", "shifted", "noise"):
        out[pool] = {m: {"top1": [], "top5": []} for m in METHODS}
        for seed in tqdm(run.seeds, desc=f"table 4: {pool}", leave=False):
            logits, queries, background = run.descriptors(pool, run.sample(pool, run.n_probes, seed))
            for method, D in score_methods(logits, queries, background, r=R, k=k).D.items():
                acc = metrics.retrieval_top_k_accuracy(D, rel, (1, 5))
                out[pool][method]["top1"].append(acc[1])
                out[pool][method]["top5"].append(acc[5])
    run.results["distributions"] = out


def experiment_probe_counts(run: Run, k: int) -> None:
    rel = run.hub.relevant()
    out: dict[int, list[float]] = {}
    pool = run.logits["scenes"].shape[1]
    for n in tqdm([n for n in PROBE_COUNTS if n <= pool], desc="fig 5: probes", leave=False):
        out[n] = []
        for seed in run.seeds:
            logits, queries, background = run.descriptors("scenes", run.sample("scenes", n, seed))
            r = min(R, n)
            D = calibrated(logit_entries(logits, r), zscore(queries), zscore(background), [k])[k]
            out[n].append(metrics.retrieval_top_k_accuracy(D, rel, (1,))[1])
    run.results["probe_counts"] = out


def experiment_r(run: Run, k: int) -> None:
    rel = run.hub.relevant()
    out: dict[int, list[float]] = {r: [] for r in R_SWEEP if r <= run.n_probes}
    for seed in tqdm(run.seeds, desc="fig 8: r", leave=False):
        logits, queries, background = run.descriptors("scenes", run.sample("scenes", run.n_probes, seed))
        qz, bz = zscore(queries), zscore(background)
        for r in out:
            D = calibrated(logit_entries(logits, r), qz, bz, [k])[k]
            out[r].append(metrics.retrieval_top_k_accuracy(D, rel, (1,))[1])
    run.results["r"] = out


def experiment_background_size(run: Run, k: int, draws: int = 5) -> None:
    rel = run.hub.relevant()
    logits, queries, _ = run.descriptors("scenes", run.sample("scenes", run.n_probes, run.seeds[0]))
    idx = run.sample("scenes", run.n_probes, run.seeds[0])
    entries = logit_entries(logits, R)
    d = entry_distances(entries, zscore(queries))
    all_bg = zscore(np.asarray(run.background_text @ run.probe_emb["scenes"][idx].T, dtype=np.float32))
    to_bg = entry_distances(entries, all_bg)
    n_bg = len(run.background_names)
    out: dict[int, list[float]] = {}
    for size in BACKGROUND_SIZES:
        if size > n_bg:
            continue
        out[size] = []
        for draw in range(draws):
            rng = np.random.default_rng([draw, size])
            if size * draws <= n_bg:  # non-overlapping sets, as in the paper
                cols = np.random.default_rng(size).permutation(n_bg)[draw * size : (draw + 1) * size]
            else:  # too few names for disjoint sets: independent draws
                cols = rng.choice(n_bg, size, replace=False)
            kk = min(k, size)
            offsets = np.sort(to_bg[:, cols], axis=1)[:, :kk].mean(axis=1, keepdims=True)
            out[size].append(metrics.retrieval_top_k_accuracy(d - offsets, rel, (1,))[1])
    run.results["background_size"] = out


def objects_pool_labels(n: int) -> npt.NDArray[np.int64]:
    """The fine concept of each image of the bench's single-object pool: the first draw of the
    pool's generator in :func:`render_pools`, repeated."""
    from probelog_world.concepts import ConceptSet, rng_for

    return rng_for(POOL_SEED, "bench-pool", "objects").integers(0, len(ConceptSet().fine), n)


def experiment_selectivity(run: Run) -> None:
    """How selective the hub's logits are, next to the CLIP's text queries.

    On the single-object pool, where each probe's concept is known: of a fine-concept logit's
    top-R probes, the share showing its concept, and the share sharing at least two of its three
    attributes (colour, pattern, shape); the same for the top-R probes of each fine query's CLIP
    similarity; and the ceiling (the pool's images of a concept, at most R, over R).
    """
    from probelog_world.concepts import ConceptSet

    concepts = ConceptSet()
    attrs = concepts.fine_attributes  # (n_fine, 3)
    fine = {c.name: i for i, c in enumerate(concepts.fine)}
    logits = run.logits["objects"]
    labels = objects_pool_labels(logits.shape[1])

    def shares(top: npt.NDArray[np.int64], own: npt.NDArray[np.int64]) -> tuple[float, float]:
        exact = labels[top] == own[:, None]
        close = (attrs[labels[top]] == attrs[own][:, None, :]).sum(axis=2) >= 2
        return float(exact.mean()), float(close.mean())

    logit_fine = np.array([fine.get(c, -1) for c in run.hub.logit_concept])
    keep = logit_fine >= 0
    logit_top = np.argpartition(-logits[keep], R, axis=1)[:, :R]
    query_fine = np.array([fine.get(q, -1) for q in run.hub.query_names])
    qkeep = query_fine >= 0
    sims = run.query_text[qkeep] @ run.probe_emb["objects"].T
    query_top = np.argpartition(-sims, R, axis=1)[:, :R]
    per_concept = np.bincount(labels, minlength=len(fine))
    run.results["selectivity"] = {
        "n_logits": int(keep.sum()),
        "n_queries": int(qkeep.sum()),
        "logits": shares(logit_top, logit_fine[keep]),
        "clip": shares(query_top, query_fine[qkeep]),
        "ceiling": float(np.minimum(per_concept[query_fine[qkeep]], R).mean() / R),
    }


def experiment_image_queries(run: Run, k: int, clip: Clip, eval_images: np.ndarray, eval_labels: np.ndarray,
                             eval_names: list[str]) -> None:
    """Table 5: each fine concept of the hub queried by 1, 5 or 10 held-out example images."""
    hub = run.hub
    name_to_eval = {n: i for i, n in enumerate(eval_names)}
    cols = [q for q, name in enumerate(hub.query_names) if name in name_to_eval]
    rel = hub.relevant(cols)
    emb = normalize_embeddings(clip.images(eval_images))
    out: dict[int, dict[str, dict[str, list[float]]]] = {}
    for s in IMAGE_QUERY_SIZES:
        out[s] = {m: {"top1": [], "top5": []} for m in METHODS}
        for seed in tqdm(run.seeds, desc=f"table 5: k={s}", leave=False):
            idx = run.sample("scenes", run.n_probes, seed)
            probes = run.probe_emb["scenes"][idx]
            rng = np.random.default_rng([seed, s])
            queries = []
            for q in cols:
                members = np.flatnonzero(eval_labels == name_to_eval[hub.query_names[q]])
                pick = rng.choice(members, min(s, len(members)), replace=False)
                queries.append(image_set_descriptor(emb[pick], probes))
            q_desc = np.asarray(queries, dtype=np.float32)
            background = np.asarray(run.background_text @ probes.T, dtype=np.float32)
            scores = score_methods(run.logits["scenes"][:, idx], q_desc, background, r=R, k=k)
            for method, D in scores.D.items():
                acc = metrics.retrieval_top_k_accuracy(D, rel, (1, 5))
                out[s][method]["top1"].append(acc[1])
                out[s][method]["top5"].append(acc[5])
    run.results["image_queries"] = out


def experiment_pr_auc(run: Run, k: int, clip: Clip, eval_images: np.ndarray, eval_labels: np.ndarray,
                      eval_logits: F32) -> None:
    """Table 3 and Fig. 7: how good the retrieved logits are as one-vs-all detectors."""
    from probelog_world.concepts import ConceptSet

    hub = run.hub
    concepts = ConceptSet()
    # Eval labels are fine-concept indices; a coarse concept's positives are all its members.
    positive_sets = {name: np.isin(eval_labels, concepts.members(name)) for name in hub.query_names}

    def positives(name: str) -> npt.NDArray[np.bool_]:
        return positive_sets[name]

    logit_ap = np.full(hub.n_logits, np.nan)
    for l in range(hub.n_logits):
        y = positives(hub.logit_concept[l])
        if y.any() and not y.all():
            logit_ap[l] = metrics.average_precision(eval_logits[l], y)
    idx = run.sample("scenes", run.n_probes, run.seeds[0])
    logits, queries, background = run.descriptors("scenes", idx)
    D = calibrated(logit_entries(logits, R), zscore(queries), zscore(background), [k])[k]
    text = clip.text(hub.query_names)
    img = normalize_embeddings(clip.images(eval_images))
    first_correct, top1, clip_ap = [], [], []
    by_rank: dict[int, list[float]] = {i: [] for i in range(1, PR_AUC_RANKS + 1)}
    for q, name in enumerate(hub.query_names):
        y = positives(name)
        if not y.any() or y.all():
            continue
        order = np.argsort(D[:, q], kind="stable")
        correct = [l for l in order if hub.logit_query[l] == q]
        if correct:
            first_correct.append(logit_ap[correct[0]])
            for i, l in enumerate(correct[:PR_AUC_RANKS], start=1):
                by_rank[i].append(logit_ap[l])
        # The top-1 logit, correct or not, as a detector of the query concept.
        top1.append(metrics.average_precision(eval_logits[order[0]], y))
        clip_ap.append(metrics.average_precision(img @ text[q], y))
    run.results["pr_auc"] = {
        "hub_mean": float(np.nanmean(logit_ap)),
        "clip_zero_shot": float(np.mean(clip_ap)),
        "probelog_first_correct": float(np.mean(first_correct)),
        "probelog_top1": float(np.mean(top1)),
        "by_rank": {i: float(np.mean(v)) for i, v in by_rank.items() if v},
        "n_queries": len(clip_ap),
    }


# ---------------------------------------------------------------------------------------------
# Report


def _plot(path: Path, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list[Any], list[float], list[float] | None]],
          logx: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for label, (x, y, err) in series.items():
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _mean(v: Sequence[float]) -> float:
    return float(np.mean(v))


def findings(res: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The paper's findings, each checked against this run's numbers."""
    main = res["main"]
    pl, ap = main["ProbeLog"], main["All probes + anti-hub"]
    out = []
    target1, target5 = _mean(pl["ret1"]), _mean(pl["ret5"])
    out.append((
        "ProbeLog text-to-logit top-1 >= 64% and top-5 >= 82% (the paper's INet-Hub with COCO probes)",
        target1 >= 0.64 and target5 >= 0.82,
        f"top-1 {100 * target1:.1f}%, top-5 {100 * target5:.1f}%",
    ))
    ahead = all(_mean(pl["ret1"]) > _mean(main[m]["ret1"]) for m in METHODS if m != "ProbeLog")
    out.append((
        "ProbeLog is ahead of every baseline (text-to-logit top-1)",
        ahead,
        ", ".join(f"{m} {100 * _mean(main[m]['ret1']):.1f}%" for m in METHODS),
    ))
    out.append((
        "Truncation beats all probes (both calibrated)",
        _mean(pl["ret1"]) > _mean(ap["ret1"]),
        f"top-1 {100 * _mean(pl['ret1']):.1f}% vs {100 * _mean(ap['ret1']):.1f}%",
    ))
    hub_cal, hub_raw = res["hubness"]["ProbeLog"], res["hubness"]["Truncated, no calibration"]
    n_q = hub_cal[-1]

    def k_half(curve: list[int]) -> int:
        return int(np.searchsorted(np.asarray(curve), n_q / 2) + 1)

    out.append((
        "Calibration reduces hubness (more logits needed to cover half the queries; more distinct top-1 logits)",
        k_half(hub_cal) > k_half(hub_raw) and len(hub_cal) > len(hub_raw),
        f"half the {n_q} queries covered by the top {k_half(hub_cal)} logits with calibration vs "
        f"{k_half(hub_raw)} without; {len(hub_cal)} vs {len(hub_raw)} distinct top-1 logits",
    ))
    dist = res["distributions"]
    o, s, n = (_mean(dist[p]["ProbeLog"]["top1"]) for p in ("objects", "scenes", "noise"))
    out.append((
        "Probes closer to the training distribution beat scenes, which beat noise",
        o > s > n,
        f"objects {100 * o:.1f}%, scenes {100 * s:.1f}%, dead leaves {100 * n:.1f}%",
    ))
    counts = res["probe_counts"]
    ns = sorted(counts)
    means = [_mean(counts[n]) for n in ns]
    gains = np.diff(means)
    out.append((
        "More probes help, with diminishing returns",
        means[-1] > means[0] and gains[-1] < gains[: len(gains) // 2].max(),
        ", ".join(f"{n}: {100 * m:.1f}%" for n, m in zip(ns, means, strict=True)),
    ))
    rs = sorted(res["r"])
    r_means = [_mean(res["r"][r]) for r in rs]
    best = rs[int(np.argmax(r_means))]
    out.append((
        "r has an interior optimum",
        best not in (rs[0], rs[-1]),
        f"best r = {best} ({100 * max(r_means):.1f}%); r = {rs[0]}: {100 * r_means[0]:.1f}%, "
        f"r = {rs[-1]}: {100 * r_means[-1]:.1f}%",
    ))
    return out


def write_report(res: dict[str, Any], out_dir: Path, command: str, meta: dict[str, Any]) -> Path:
    figs = out_dir / "quality"
    figs.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Quality: the paper's experiments on a trained world's model hub",
        "",
        f"Produced by `{command}` on {meta['date']} in {meta['minutes']:.0f} minutes "
        f"({meta['machine']}).",
        "",
        f"World: {meta['world']} — {meta['n_models']} models, {meta['n_logits']} logits, "
        f"{meta['n_queries']} distinct concepts queried; CLIP zero-shot top-1 on held-out single "
        f"objects: {meta['clip_fine_top1']} (fine), {meta['clip_coarse_top1']} (coarse). "
        f"Probes: {meta['n_probes']} drawn per seed from pools rendered with seed {POOL_SEED} "
        f"({', '.join(f'{k} {v}' for k, v in meta['pool_sizes'].items())}); mean ± std over seeds "
        f"{res['seeds']} of probe sampling. r = {R}, calibration k = {res['k']} (chosen below), "
        f"background: {meta['n_background']} world concept names.",
        "",
        "## The paper's findings, checked",
        "",
        "| finding | holds | numbers |",
        "|---|---|---|",
    ]
    for text, ok, numbers in findings(res):
        lines.append(f"| {text} | {'yes' if ok else '**no**'} | {numbers} |")
    main = res["main"]
    lines += ["", "## Table 1: logit classification (closed set of the hub's concepts)", "",
              "| method | top-1 | top-5 |", "|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {m} | {fmt(main[m]['cls1'])} | {fmt(main[m]['cls5'])} |")
    lines += ["", "## Table 2: text-to-logit retrieval", "", "| method | top-1 | top-5 |", "|---|---|---|"]
    for m in (*METHODS, "Truncated, no calibration"):
        lines.append(f"| {m} | {fmt(main[m]['ret1'])} | {fmt(main[m]['ret5'])} |")
    ks = res["k_sweep"]
    lines += ["", "## Calibration k (sweep; the best becomes the default)", "",
              "| k | top-1 | top-5 |", "|---|---|---|"]
    for k in ks["top1"]:
        mark = " **(chosen)**" if int(k) == ks["best"] else ""
        lines.append(f"| {k}{mark} | {fmt(ks['top1'][k])} | {fmt(ks['top5'][k])} |")
    dist = res["distributions"]
    lines += ["", "## Table 4: probe distributions (text-to-logit retrieval)", "",
              "| probes | " + " | ".join(f"{m} top-1 | top-5" for m in METHODS) + " |",
              "|---|" + "---|---|" * len(METHODS)]
    labels = {"objects": "single objects (training distribution)", "scenes": "scenes (default)",
              "shifted": "shifted palette/scale", "noise": "dead leaves"}
    for pool in ("objects", "scenes", "shifted", "noise"):
        lines.append(f"| {labels[pool]} | " + " | ".join(
            f"{fmt(dist[pool][m]['top1'])} | {fmt(dist[pool][m]['top5'])}" for m in METHODS) + " |")
    img = res["image_queries"]
    lines += ["", "## Table 5: search by image (held-out single objects as queries)", "",
              "| method | " + " | ".join(f"top-1 k={s}" for s in IMAGE_QUERY_SIZES) + " | "
              + " | ".join(f"top-5 k={s}" for s in IMAGE_QUERY_SIZES) + " |",
              "|---|" + "---|" * (2 * len(IMAGE_QUERY_SIZES))]
    for m in METHODS:
        lines.append(f"| {m} | " + " | ".join(fmt(img[s][m]["top1"]) for s in IMAGE_QUERY_SIZES) + " | "
                     + " | ".join(fmt(img[s][m]["top5"]) for s in IMAGE_QUERY_SIZES) + " |")
    pr = res["pr_auc"]
    lines += ["", "## Table 3: PR-AUC of retrieved logits (held-out single objects, one vs all)", "",
              "| | PR-AUC |", "|---|---|",
              f"| mean over the hub's logits (each for its own concept) | {pr['hub_mean']:.3f} |",
              f"| the world's CLIP, zero-shot | {pr['clip_zero_shot']:.3f} |",
              f"| ProbeLog, first correct retrieval | {pr['probelog_first_correct']:.3f} |",
              f"| ProbeLog, top-1 retrieval (correct or not) | {pr['probelog_top1']:.3f} |",
              "", f"Over {pr['n_queries']} query concepts."]
    bg = res["background_size"]
    lines += ["", "## Table 7: background-set size (top-1, seed 0 probes, 5 draws per size)", "",
              "| size | top-1 |", "|---|---|"]
    for size in bg:
        lines.append(f"| {size} | {fmt(bg[size])} |")
    sel = res["selectivity"]
    lines += ["", f"## Selectivity: what a logit's top {R} single-object probes show", "",
              "Not a table of the paper: it shows where this world's retrieval is hard. On the "
              "single-object pool, where each probe's concept is known, the share of a logit's "
              f"top {R} probes that show its own concept, or share at least two of its three "
              "attributes (colour, pattern, shape), next to the same shares for the CLIP's top "
              f"{R} probes of each fine concept's text.", "",
              "| | own concept | at least 2 of 3 attributes |", "|---|---|---|",
              f"| hub logits of fine concepts ({sel['n_logits']}) | {100 * sel['logits'][0]:.1f}% | "
              f"{100 * sel['logits'][1]:.1f}% |",
              f"| CLIP text queries of fine concepts ({sel['n_queries']}) | {100 * sel['clip'][0]:.1f}% | "
              f"{100 * sel['clip'][1]:.1f}% |",
              f"| ceiling (the pool's images per concept, at most {R}, over {R}) | {100 * sel['ceiling']:.1f}% | |"]
    lines += ["", "## Figures", "",
              "![Fig. 4](quality/fig4_hubness.png) ![Fig. 5](quality/fig5_probes.png)",
              "![Fig. 8](quality/fig8_r.png) ![Fig. 7](quality/fig7_pr_auc.png)",
              "![k](quality/calibration_k.png)", ""]
    counts = res["probe_counts"]
    lines += ["Fig. 5 (top-1 vs number of probes): " + ", ".join(f"{n}: {fmt(v)}" for n, v in counts.items()) + ".", "",
              "Fig. 8 (top-1 vs r): " + ", ".join(f"{r}: {fmt(v)}" for r, v in res["r"].items()) + ".", ""]

    hub = res["hubness"]
    _plot(figs / "fig4_hubness.png", "Fig. 4: hubness", "K most-returned logits", "queries covered",
          {m: (list(range(1, len(hub[m]) + 1)), hub[m], None) for m in ("ProbeLog", "Truncated, no calibration", "CLIP-Dissect (WPMI)")},
          logx=True)
    _plot(figs / "fig5_probes.png", "Fig. 5: number of probes", "probes", "top-1 retrieval",
          {"ProbeLog": (list(counts), [_mean(v) for v in counts.values()], [float(np.std(v)) for v in counts.values()])},
          logx=True)
    _plot(figs / "fig8_r.png", "Fig. 8: probes kept per logit (r)", "r", "top-1 retrieval",
          {"ProbeLog": (list(res["r"]), [_mean(v) for v in res["r"].values()], [float(np.std(v)) for v in res["r"].values()])},
          logx=True)
    _plot(figs / "fig7_pr_auc.png", "Fig. 7: PR-AUC vs retrieval rank", "rank among correct retrievals", "PR-AUC",
          {"ProbeLog": (list(pr["by_rank"]), list(pr["by_rank"].values()), None),
           "CLIP zero-shot": (list(pr["by_rank"]), [pr["clip_zero_shot"]] * len(pr["by_rank"]), None)})
    _plot(figs / "calibration_k.png", "Calibration k", "k", "top-1 retrieval",
          {"ProbeLog": (list(ks["top1"]), [_mean(v) for v in ks["top1"].values()], [float(np.std(v)) for v in ks["top1"].values()])},
          logx=True)
    report = out_dir / "quality.md"
    report.write_text("\n".join(lines))
    (figs / "quality.json").write_text(json.dumps(res, indent=1, default=float))
    return report


def run_quality(
    world: Path,
    out_dir: Path,
    seeds: Sequence[int],
    threads: int,
    command: str,
    *,
    n_probes: int = N_PROBES,
    pool_sizes: dict[str, int] | None = None,
) -> Path:
    """Run every experiment and write ``out_dir/quality.md`` with its plots."""
    pool_sizes = pool_sizes or POOL_SIZES
    started = time.time()
    cache = Cache(world)
    hub = load_hub(world)
    logger.info("%d models, %d logits, %d query concepts", len(hub.model_names), hub.n_logits, len(hub.query_names))
    pools = render_pools(world, cache, pool_sizes)
    clip = load_clip(world, hub.templates)
    background_names = [n for n in (world / "background.txt").read_text().splitlines() if n.strip()]
    logits = {p: hub_logits(hub, f"{p}-{len(images)}", images, cache, threads) for p, images in pools.items()}
    probe_emb = {
        p: cache.array(f"clip-{p}-{len(images)}", lambda images=images: {"emb": normalize_embeddings(clip.images(images))})["emb"]
        for p, images in pools.items()
    }
    run = Run(hub, pools, logits, probe_emb, clip.text(hub.query_names), background_names,
              clip.text(background_names), list(seeds), n_probes)
    k = experiment_k_sweep(run)
    run.results["k"] = k
    run.results["seeds"] = list(seeds)
    experiment_main(run, k)
    experiment_distributions(run, k)
    experiment_probe_counts(run, k)
    experiment_r(run, k)
    experiment_background_size(run, k)
    experiment_selectivity(run)
    eval_images, eval_labels, eval_names = eval_objects(world)
    experiment_image_queries(run, k, clip, eval_images, eval_labels, eval_names)
    eval_logits = hub_logits(hub, "eval", eval_images, cache, threads)
    experiment_pr_auc(run, k, clip, eval_images, eval_labels, eval_logits)
    meta = json.loads((world / "world.json").read_text())
    report = json.loads((world / "clip" / "report.json").read_text()) if (world / "clip" / "report.json").is_file() else {}
    import os
    import platform

    info = {
        "date": time.strftime("%Y-%m-%d"),
        "minutes": (time.time() - started) / 60,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "world": f"scale {meta.get('scale')}, seed {meta.get('seed')}",
        "n_models": len(hub.model_names),
        "n_logits": hub.n_logits,
        "n_queries": len(hub.query_names),
        "n_background": len(background_names),
        "clip_fine_top1": f"{100 * report.get('fine_top1', float('nan')):.1f}%",
        "clip_coarse_top1": f"{100 * report.get('coarse_top1', float('nan')):.1f}%",
    }
    info["pool_sizes"] = pool_sizes
    info["n_probes"] = n_probes
    return write_report(run.results, out_dir, command, info)
