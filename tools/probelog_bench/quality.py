"""``probelog bench quality``: the paper's experiments re-run on a trained world's model hub.

Everything is measured with the code the services run (``probelog.core``), the world's own CLIP
(loaded as the CLIP encoder loads it) and the hub's ONNX models (run as the in-process runner
runs them). Ground truth is read only to score.

Protocol. The query concepts (every concept some hub logit recognises) are split once, by a
fixed seed, into a tuning half and a test half. Every setting chosen from a measurement (r and
the calibration k) is chosen on the tuning half; every table and figure reports the test half.
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
- The tuning grid of r and k, whose best cell on the tuning half is used everywhere else.

Every figure shows the strongest baseline of Table 2 next to ProbeLog.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from probelog.common.files import atomic_write
from probelog.common.world_layout import WorldLayout
from probelog.core import baselines, metrics
from probelog.core.descriptors import image_set_descriptor, normalize_embeddings, zscore
from probelog.core.distance import entry_distances, logit_entries
from probelog_world.evaluate import Hub, WorldClip, calibrated, load_hub, run_hub

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

#: Pool sizes rendered for the bench: the scene pool covers Fig. 5 up to 8,000 probes with
#: room for distinct samples; the other distributions are sampled 4,000 at a time. Every pool
#: image goes through every hub model, which is most of the bench's running time.
POOL_SIZES = {"scenes": 9_000, "objects": 4_500, "shifted": 4_500, "noise": 4_500}
POOL_SEED = 9_999
#: Seed of the split of the query concepts into a tuning half and a test half.
SPLIT_SEED = 2_024
N_PROBES = 4_000
#: The paper's r; the bench chooses its own on the tuning half (from TUNE_R), and uses R where a
#: fixed r defines a measurement (selectivity).
R = 50
TUNE_R = (10, 25, 50, 100, 250)
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


def split_queries(n_queries: int, seed: int = SPLIT_SEED) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The tuning half and the test half of the query concepts (sorted column indices)."""
    order = np.random.default_rng(seed).permutation(n_queries)
    half = n_queries // 2
    return np.sort(order[:half]), np.sort(order[half:])


# ---------------------------------------------------------------------------------------------
# Data: probe pools, hub logits, CLIP embeddings (all cached under <world>/bench-cache)


class Cache:
    """Arrays computed once per world, kept under ``<world>/bench-cache``; counts what it computed."""

    def __init__(self, world: Path) -> None:
        self.root = world / "bench-cache"
        self.root.mkdir(parents=True, exist_ok=True)
        self.computed: dict[str, int] = {}
        self.loaded: dict[str, int] = {}

    def array(self, name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.root / f"{name}.npz"
        kind = name.split("/")[0]
        if path.is_file():
            self.loaded[kind] = self.loaded.get(kind, 0) + 1
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        arrays = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, **arrays))
        self.computed[kind] = self.computed.get(kind, 0) + 1
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
    with np.load(WorldLayout.at(world).eval_objects) as data:
        images, labels, names = data["images"], data["labels"], [str(n) for n in data["concept_names"]]
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_concept] for c in np.unique(labels)])
    return images[keep], labels[keep], names


def hub_logits(hub: Hub, pool: str, images: np.ndarray, cache: Cache, threads: int) -> F32:
    """Raw logits of every hub logit on ``images``, shape (n_logits, n_images), cached per model."""
    layout = WorldLayout(hub.world)
    out = np.empty((hub.n_logits, len(images)), dtype=np.float32)
    row = 0
    for name in tqdm(hub.model_names, desc=f"hub logits on {pool}", unit="model", leave=False):

        def make(name: str = name) -> dict[str, np.ndarray]:
            (logits,) = run_hub(layout, [name], images, threads)
            return {"logits": logits}

        logits = cache.array(f"logits/{pool}/{name}", make)["logits"]
        out[row : row + len(logits)] = logits
        row += len(logits)
    return out


# ---------------------------------------------------------------------------------------------
# Scoring one configuration


@dataclass
class Scores:
    """Distance matrices (n_logits, n_queries), lower is better, per method."""

    D: dict[str, F32] = field(default_factory=dict)


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
    tune: npt.NDArray[np.int64]  # query columns of the tuning half
    test: npt.NDArray[np.int64]  # query columns of the test half
    n_probes: int = N_PROBES
    r: int = R  # chosen on the tuning half
    k: int = 100  # chosen on the tuning half
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

    def retrieval(self, D: F32, cols: npt.NDArray[np.int64] | None = None, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
        """Top-k retrieval accuracy over the query columns ``cols`` of D (default: the test half)."""
        cols = self.test if cols is None else cols
        return metrics.retrieval_top_k_accuracy(D[:, cols], self.hub.relevant(cols), ks)


def experiment_tuning(run: Run) -> tuple[int, int]:
    """Choose r and k on the tuning half: the grid cell with the best mean top-1 (then top-5).

    The same grid is also scored on the test half, for the report only.
    """
    ks = [k for k in K_SWEEP if k <= len(run.background_names)]
    rs = [r for r in TUNE_R if r <= run.n_probes]
    grid: dict[str, dict[tuple[int, int], list[float]]] = {
        f"{half}{n}": {} for half in ("tune", "test") for n in ("top1", "top5")
    }
    for seed in tqdm(run.seeds, desc="tuning r and k", leave=False):
        logits, queries, background = run.descriptors("scenes", run.sample("scenes", run.n_probes, seed))
        qz, bz = zscore(queries), zscore(background)
        for r in rs:
            for k, D in calibrated(logit_entries(logits, r), qz, bz, ks).items():
                for half, cols in (("tune", run.tune), ("test", run.test)):
                    acc = run.retrieval(D, cols)
                    grid[f"{half}top1"].setdefault((r, k), []).append(acc[1])
                    grid[f"{half}top5"].setdefault((r, k), []).append(acc[5])
    best = max(
        grid["tunetop1"], key=lambda rk: (np.mean(grid["tunetop1"][rk]), np.mean(grid["tunetop5"][rk]), -rk[1])
    )
    run.results["tuning"] = {
        name: {f"{r},{k}": v for (r, k), v in cells.items()} for name, cells in grid.items()
    } | {"best": list(best), "r_values": rs, "k_values": ks}
    return best


def experiment_main(run: Run) -> None:
    """Tables 1, 2 and Fig. 4 on scene probes, test half."""
    hub = run.hub
    table: dict[str, dict[str, list[float]]] = {m: {} for m in (*METHODS, "Truncated, no calibration")}
    hubness: dict[str, list[int]] = {}
    # Logit classification ranks the closed set of all the hub's concepts, for the logits of
    # test-half concepts.
    test_logits = np.isin(hub.logit_query, run.test)
    for seed in tqdm(run.seeds, desc="tables 1-2", leave=False):
        logits, queries, background = run.descriptors("scenes", run.sample("scenes", run.n_probes, seed))
        scores = score_methods(logits, queries, background, r=run.r, k=run.k)
        scores.D["Truncated, no calibration"] = entry_distances(logit_entries(logits, run.r), zscore(queries))
        for method, D in scores.D.items():
            acc = run.retrieval(D)
            cls = metrics.classification_top_k_accuracy(D[test_logits], hub.logit_query[test_logits], (1, 5))
            row = table[method]
            for key, value in (("ret1", acc[1]), ("ret5", acc[5]), ("cls1", cls[1]), ("cls5", cls[5])):
                row.setdefault(key, []).append(value)
            if seed == run.seeds[0]:
                hubness[method] = metrics.hubness_coverage(D[:, run.test]).tolist()
    run.results["main"] = table
    run.results["hubness"] = hubness
    baselines_only = [m for m in METHODS if m != "ProbeLog"]
    run.results["strongest_baseline"] = max(baselines_only, key=lambda m: np.mean(table[m]["ret1"]))


def experiment_distributions(run: Run) -> None:
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for pool in ("objects", "scenes", "shifted", "noise"):
        out[pool] = {m: {"top1": [], "top5": []} for m in METHODS}
        for seed in tqdm(run.seeds, desc=f"table 4: {pool}", leave=False):
            logits, queries, background = run.descriptors(pool, run.sample(pool, run.n_probes, seed))
            for method, D in score_methods(logits, queries, background, r=run.r, k=run.k).D.items():
                acc = run.retrieval(D)
                out[pool][method]["top1"].append(acc[1])
                out[pool][method]["top5"].append(acc[5])
    run.results["distributions"] = out


def experiment_probe_counts(run: Run) -> None:
    """Fig. 5: ProbeLog and the strongest baseline against the number of probes."""
    base = run.results["strongest_baseline"]
    out: dict[str, dict[int, list[float]]] = {"ProbeLog": {}, base: {}}
    pool = run.logits["scenes"].shape[1]
    for n in tqdm([n for n in PROBE_COUNTS if n <= pool], desc="fig 5: probes", leave=False):
        for seed in run.seeds:
            logits, queries, background = run.descriptors("scenes", run.sample("scenes", n, seed))
            scores = score_methods(logits, queries, background, r=min(run.r, n), k=run.k, methods=("ProbeLog", base))
            for method, D in scores.D.items():
                out[method].setdefault(n, []).append(run.retrieval(D, ks=(1,))[1])
    run.results["probe_counts"] = out


def experiment_r(run: Run) -> None:
    """Fig. 8: top-1 against r at the chosen k (test half)."""
    out: dict[int, list[float]] = {r: [] for r in R_SWEEP if r <= run.n_probes}
    for seed in tqdm(run.seeds, desc="fig 8: r", leave=False):
        logits, queries, background = run.descriptors("scenes", run.sample("scenes", run.n_probes, seed))
        qz, bz = zscore(queries), zscore(background)
        for r in out:
            D = calibrated(logit_entries(logits, r), qz, bz, [run.k])[run.k]
            out[r].append(run.retrieval(D, ks=(1,))[1])
    run.results["r"] = out


def experiment_background_size(run: Run, draws: int = 5) -> None:
    idx = run.sample("scenes", run.n_probes, run.seeds[0])
    logits, queries, _ = run.descriptors("scenes", idx)
    entries = logit_entries(logits, run.r)
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
            kk = min(run.k, size)
            offsets = np.sort(to_bg[:, cols], axis=1)[:, :kk].mean(axis=1, keepdims=True)
            out[size].append(run.retrieval(d - offsets, ks=(1,))[1])
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
    sel = run.results["selectivity"]
    sel["logits_of_ceiling"] = sel["logits"][0] / sel["ceiling"]
    sel["clip_of_ceiling"] = sel["clip"][0] / sel["ceiling"]


def experiment_image_queries(run: Run, clip: WorldClip, eval_images: np.ndarray, eval_labels: np.ndarray,
                             eval_names: list[str]) -> None:
    """Table 5: each fine concept of the test half queried by 1, 5 or 10 held-out example images."""
    hub = run.hub
    name_to_eval = {n: i for i, n in enumerate(eval_names)}
    cols = [int(q) for q in run.test if hub.query_names[q] in name_to_eval]
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
            scores = score_methods(run.logits["scenes"][:, idx], q_desc, background, r=run.r, k=run.k)
            for method, D in scores.D.items():
                acc = metrics.retrieval_top_k_accuracy(D, rel, (1, 5))
                out[s][method]["top1"].append(acc[1])
                out[s][method]["top5"].append(acc[5])
    run.results["image_queries"] = out


def experiment_pr_auc(run: Run, clip: WorldClip, eval_images: np.ndarray, eval_labels: np.ndarray,
                      eval_logits: F32) -> None:
    """Table 3 and Fig. 7: how good the retrieved logits are as one-vs-all detectors (test half)."""
    from probelog_world.concepts import ConceptSet

    hub = run.hub
    concepts = ConceptSet()
    # Eval labels are fine-concept indices; a coarse concept's positives are all its members.
    positives = {name: np.isin(eval_labels, concepts.members(name)) for name in hub.query_names}
    logit_ap = np.full(hub.n_logits, np.nan)
    for l in range(hub.n_logits):
        y = positives[hub.logit_concept[l]]
        if y.any() and not y.all():
            logit_ap[l] = metrics.average_precision(eval_logits[l], y)
    idx = run.sample("scenes", run.n_probes, run.seeds[0])
    logits, queries, background = run.descriptors("scenes", idx)
    base = run.results["strongest_baseline"]
    scores = score_methods(logits, queries, background, r=run.r, k=run.k, methods=("ProbeLog", base))
    text = clip.text(hub.query_names)
    img = normalize_embeddings(clip.images(eval_images))
    first_correct: dict[str, list[float]] = {m: [] for m in scores.D}
    top1: dict[str, list[float]] = {m: [] for m in scores.D}
    by_rank: dict[str, dict[int, list[float]]] = {m: {i: [] for i in range(1, PR_AUC_RANKS + 1)} for m in scores.D}
    clip_ap = []
    for q in run.test:
        y = positives[hub.query_names[q]]
        if not y.any() or y.all():
            continue
        for method, D in scores.D.items():
            order = np.argsort(D[:, q], kind="stable")
            correct = [l for l in order if hub.logit_query[l] == q]
            if correct:
                first_correct[method].append(logit_ap[correct[0]])
                for i, l in enumerate(correct[:PR_AUC_RANKS], start=1):
                    by_rank[method][i].append(logit_ap[l])
            # The top-1 logit, correct or not, as a detector of the query concept.
            top1[method].append(metrics.average_precision(eval_logits[order[0]], y))
        clip_ap.append(metrics.average_precision(img @ text[q], y))
    test_logits = np.isin(hub.logit_query, run.test)
    run.results["pr_auc"] = {
        "hub_mean": float(np.nanmean(logit_ap[test_logits])),
        "clip_zero_shot": float(np.mean(clip_ap)),
        "first_correct": {m: float(np.mean(v)) for m, v in first_correct.items()},
        "top1": {m: float(np.mean(v)) for m, v in top1.items()},
        "by_rank": {m: {i: float(np.mean(v)) for i, v in ranks.items() if v} for m, ranks in by_rank.items()},
        "n_queries": len(clip_ap),
    }


# ---------------------------------------------------------------------------------------------
# Report


Series = dict[str, tuple[list[Any], list[float], list[float] | None]]


def _plot(path: Path, title: str, xlabel: str, ylabel: str, series: Series, logx: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for label, (x, y, err) in series.items():
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    if logx:
        ax.set_xscale("log")
        # One label per measured x, none on the minor ticks (they overlap on a log axis).
        xs = sorted({v for x, _, _ in series.values() for v in x})
        if len(xs) <= 12:
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
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


def _std(v: Sequence[float]) -> float:
    return float(np.std(v))


def findings(res: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The paper's findings, each checked against this run's numbers (test half)."""
    main = res["main"]
    pl, ap = main["ProbeLog"], main["All probes + anti-hub"]
    out = []
    target1, target5 = _mean(pl["ret1"]), _mean(pl["ret5"])
    out.append((
        "ProbeLog text-to-logit top-1 >= 64% and top-5 >= 82% (the paper's INet-Hub with COCO probes)",
        target1 >= 0.64 and target5 >= 0.82,
        f"top-1 {100 * target1:.1f}%, top-5 {100 * target5:.1f}%",
    ))
    others = [m for m in METHODS if m != "ProbeLog"]
    margins = {m: _mean(pl["ret1"]) - _mean(main[m]["ret1"]) - (_std(pl["ret1"]) + _std(main[m]["ret1"])) for m in others}
    out.append((
        "ProbeLog is ahead of every baseline by more than their combined std (text-to-logit top-1)",
        all(v > 0 for v in margins.values()),
        ", ".join(f"{m} {fmt(main[m]['ret1'])}" for m in METHODS),
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
    pr = res["pr_auc"]
    out.append((
        "The retrieved logits detect their concept better than the hub's average logit and than CLIP (Table 3)",
        pr["first_correct"]["ProbeLog"] > pr["hub_mean"] and pr["first_correct"]["ProbeLog"] > pr["clip_zero_shot"],
        f"PR-AUC {pr['first_correct']['ProbeLog']:.3f} vs hub mean {pr['hub_mean']:.3f}, CLIP {pr['clip_zero_shot']:.3f}",
    ))
    ranks = pr["by_rank"]["ProbeLog"]
    if len(ranks) >= 2:
        first, rest = ranks[min(ranks)], float(np.mean([v for i, v in ranks.items() if i > min(ranks)]))
        out.append((
            "Better logits are returned first (Fig. 7)",
            first >= rest,
            f"PR-AUC at rank 1 {first:.3f}, mean over ranks 2-{max(ranks)} {rest:.3f}",
        ))
    dist = res["distributions"]
    o, s, n = (_mean(dist[p]["ProbeLog"]["top1"]) for p in ("objects", "scenes", "noise"))
    out.append((
        "Probes closer to the training distribution beat scenes, which beat noise",
        o > s > n,
        f"objects {100 * o:.1f}%, scenes {100 * s:.1f}%, dead leaves {100 * n:.1f}%",
    ))
    counts = res["probe_counts"]["ProbeLog"]
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
    img = res["image_queries"]
    sizes = sorted(img)
    out.append((
        "More example images make better image queries (Table 5)",
        _mean(img[sizes[-1]]["ProbeLog"]["top1"]) > _mean(img[sizes[0]]["ProbeLog"]["top1"]),
        ", ".join(f"k={s}: {fmt(img[s]['ProbeLog']['top1'])}" for s in sizes),
    ))
    return out


def write_report(res: dict[str, Any], out_dir: Path, command: str, meta: dict[str, Any]) -> Path:
    figs = out_dir / "quality"
    figs.mkdir(parents=True, exist_ok=True)
    base = res["strongest_baseline"]
    cache = meta["cache"]
    lines = [
        "# Quality: the paper's experiments on a trained world's model hub",
        "",
        f"Produced by `{command}` on {meta['date']} in {meta['minutes']:.0f} minutes "
        f"({meta['machine']}). Hub logits: {cache}.",
        "",
        f"World: {meta['world']} — {meta['n_models']} models, {meta['n_logits']} logits, "
        f"{meta['n_queries']} distinct concepts; mean test accuracy of its models {meta['hub_accuracy']}, "
        f"mean logit PR-AUC {meta['hub_pr_auc']} (the paper's INet-Hub: 0.433). CLIP zero-shot top-1 on "
        f"held-out single objects: {meta['clip_fine_top1']} (fine), {meta['clip_coarse_top1']} (coarse); "
        f"its text selectivity (R-precision on held-out objects): {meta['clip_selectivity']}.",
        "",
        f"Protocol: the {meta['n_queries']} query concepts are split by seed {SPLIT_SEED} into a tuning half "
        f"({len(res['split']['tune'])}) and a test half ({len(res['split']['test'])}); r and k are chosen on the "
        f"tuning half (r = {res['r_chosen']}, k = {res['k']}; the grid is below) and every table and figure "
        f"reports the test half. Probes: {meta['n_probes']} drawn per seed from pools rendered with seed "
        f"{POOL_SEED} ({', '.join(f'{k} {v}' for k, v in meta['pool_sizes'].items())}); mean ± std over seeds "
        f"{res['seeds']} of probe sampling. Background: {meta['n_background']} world concept names. The "
        f"strongest baseline (by Table 2 top-1) is {base}; every figure shows it next to ProbeLog.",
        "",
        "## The paper's findings, checked",
        "",
        "| finding | holds | numbers |",
        "|---|---|---|",
    ]
    for text, ok, numbers in findings(res):
        lines.append(f"| {text} | {'yes' if ok else '**no**'} | {numbers} |")
    main = res["main"]
    lines += ["", "## Table 1: logit classification (closed set of the hub's concepts; logits of test-half concepts)", "",
              "| method | top-1 | top-5 |", "|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {m} | {fmt(main[m]['cls1'])} | {fmt(main[m]['cls5'])} |")
    lines += ["", "## Table 2: text-to-logit retrieval", "", "| method | top-1 | top-5 |", "|---|---|---|"]
    for m in (*METHODS, "Truncated, no calibration"):
        lines.append(f"| {m} | {fmt(main[m]['ret1'])} | {fmt(main[m]['ret5'])} |")
    tuning = res["tuning"]
    r_best, k_best = tuning["best"]
    lines += ["", "## Tuning r and k (top-1; the best cell on the tuning half is used everywhere)", "",
              "| r \\ k | " + " | ".join(str(k) for k in tuning["k_values"]) + " |",
              "|---|" + "---|" * len(tuning["k_values"])]
    for half in ("tune", "test"):
        for r in tuning["r_values"]:
            cells = []
            for k in tuning["k_values"]:
                v = tuning[f"{half}top1"][f"{r},{k}"]
                mark = "**" if (r, k) == (r_best, k_best) else ""
                cells.append(f"{mark}{100 * _mean(v):.1f}{mark}")
            lines.append(f"| {half} half, r = {r} | " + " | ".join(cells) + " |")
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
              f"| mean over the hub's logits of test-half concepts (each for its own concept) | {pr['hub_mean']:.3f} |",
              f"| the world's CLIP, zero-shot | {pr['clip_zero_shot']:.3f} |"]
    for m in pr["first_correct"]:
        lines += [f"| {m}, first correct retrieval | {pr['first_correct'][m]:.3f} |",
                  f"| {m}, top-1 retrieval (correct or not) | {pr['top1'][m]:.3f} |"]
    lines += ["", f"Over {pr['n_queries']} test-half query concepts."]
    bg = res["background_size"]
    lines += ["", "## Table 7: background-set size (top-1, seed 0 probes, 5 draws per size)", "",
              "| size | top-1 |", "|---|---|"]
    for size in bg:
        lines.append(f"| {size} | {fmt(bg[size])} |")
    sel = res["selectivity"]
    lines += ["", f"## Selectivity: what a logit's top {R} single-object probes show", "",
              "Not a table of the paper: it shows where this world's retrieval is hard. On the "
              "single-object pool, where each probe's concept is known, the share of a logit's "
              f"top {R} probes that show its own concept (and that share over its ceiling), or share "
              "at least two of its three attributes (colour, pattern, shape), next to the same shares "
              f"for the CLIP's top {R} probes of each fine concept's text.", "",
              "| | own concept | of the ceiling | at least 2 of 3 attributes |", "|---|---|---|---|",
              f"| hub logits of fine concepts ({sel['n_logits']}) | {100 * sel['logits'][0]:.1f}% | "
              f"{100 * sel['logits_of_ceiling']:.0f}% | {100 * sel['logits'][1]:.1f}% |",
              f"| CLIP text queries of fine concepts ({sel['n_queries']}) | {100 * sel['clip'][0]:.1f}% | "
              f"{100 * sel['clip_of_ceiling']:.0f}% | {100 * sel['clip'][1]:.1f}% |",
              f"| ceiling (the pool's images per concept, at most {R}, over {R}) | {100 * sel['ceiling']:.1f}% | 100% | |"]
    if meta.get("deviations"):
        lines += ["", "## How this hub differs from the paper's INet-Hub (App. E)", ""]
        lines += [f"- {d}" for d in meta["deviations"]]
    lines += ["", "## Figures", "",
              "![Fig. 4](quality/fig4_hubness.png) ![Fig. 5](quality/fig5_probes.png)",
              "![Fig. 8](quality/fig8_r.png) ![Fig. 7](quality/fig7_pr_auc.png)",
              "![k](quality/calibration_k.png)", ""]
    counts = res["probe_counts"]
    lines += ["Fig. 5 (top-1 vs number of probes): " + "; ".join(
        f"{m}: " + ", ".join(f"{n}: {fmt(v)}" for n, v in c.items()) for m, c in counts.items()) + ".", "",
        "Fig. 8 (top-1 vs r, k chosen): " + ", ".join(f"{r}: {fmt(v)}" for r, v in res["r"].items()) + ".", ""]

    base_line = _mean(main[base]["ret1"])
    hub = res["hubness"]
    _plot(figs / "fig4_hubness.png", "Fig. 4: hubness", "K most-returned logits", "queries covered",
          {m: (list(range(1, len(hub[m]) + 1)), hub[m], None) for m in ("ProbeLog", "Truncated, no calibration", base)},
          logx=False)
    _plot(figs / "fig5_probes.png", "Fig. 5: number of probes", "probes", "top-1 retrieval",
          {m: (list(c), [_mean(v) for v in c.values()], [_std(v) for v in c.values()]) for m, c in counts.items()},
          logx=True)
    rs = list(res["r"])
    _plot(figs / "fig8_r.png", "Fig. 8: probes kept per logit (r)", "r", "top-1 retrieval",
          {"ProbeLog": (rs, [_mean(v) for v in res["r"].values()], [_std(v) for v in res["r"].values()]),
           f"{base} (no r)": (rs, [base_line] * len(rs), None)},
          logx=True)
    ranks = pr["by_rank"]
    _plot(figs / "fig7_pr_auc.png", "Fig. 7: PR-AUC vs retrieval rank", "rank among correct retrievals", "PR-AUC",
          {**{m: (list(v), list(v.values()), None) for m, v in ranks.items()},
           "CLIP zero-shot": (list(ranks["ProbeLog"]), [pr["clip_zero_shot"]] * len(ranks["ProbeLog"]), None)})
    ks = tuning["k_values"]
    k_test = [tuning["testtop1"][f"{r_best},{k}"] for k in ks]
    _plot(figs / "calibration_k.png", f"Calibration k (r = {r_best}, test half)", "k", "top-1 retrieval",
          {"ProbeLog": (ks, [_mean(v) for v in k_test], [_std(v) for v in k_test]),
           f"{base} (no k)": (ks, [base_line] * len(ks), None)},
          logx=True)
    report = out_dir / "quality.md"
    report.write_text("\n".join(lines) + "\n")
    (figs / "quality.json").write_text(json.dumps(res, indent=1, default=float))
    return report


#: Where the hub built here differs from the paper's INet-Hub (App. E), and why.
DEVIATIONS = (
    "Images are 48x48 procedural renders of 384 fine concepts (colour x pattern x shape) and 120 coarse ones, "
    "not ImageNet-21k photographs: no natural-image dataset or pretrained weights can be fetched where the "
    "project is built.",
    "The CLIPs and foundations are small models trained on the world itself (minutes to an hour on two CPU "
    "cores), not released CLIP ViT-B/32 and ConvNeXt checkpoints; both CLIP towers are ModifiedResNets "
    "(two seeds), since a ViT-tower CLIP did not become competent within the budget.",
    "Coarse-label models of the 'shape' kind have 8 classes, fewer than App. E's 15: that kind has only 8 "
    "concepts.",
    "A share of the foundation models are linear heads on the frozen backbone rather than fine-tuned, as real "
    "hubs hold; the rest are LP-FT.",
)


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
    import os
    import platform

    pool_sizes = pool_sizes or POOL_SIZES
    started = time.time()
    layout = WorldLayout.at(world)
    cache = Cache(layout.root)
    hub = load_hub(layout.root)
    logger.info("%d models, %d logits, %d query concepts", len(hub.model_names), hub.n_logits, len(hub.query_names))
    pools = render_pools(layout.root, cache, pool_sizes)
    clip = WorldClip.load(layout)
    background_names = [n for n in layout.background.read_text().splitlines() if n.strip()]
    logits = {p: hub_logits(hub, f"{p}-{len(images)}", images, cache, threads) for p, images in pools.items()}
    probe_emb = {
        p: cache.array(f"clip-{p}-{len(images)}", lambda images=images: {"emb": normalize_embeddings(clip.images(images))})["emb"]
        for p, images in pools.items()
    }
    tune, test = split_queries(len(hub.query_names))
    run = Run(hub, pools, logits, probe_emb, clip.text(hub.query_names), background_names,
              clip.text(background_names), list(seeds), tune, test, n_probes)
    run.results["split"] = {"seed": SPLIT_SEED, "tune": [hub.query_names[q] for q in tune],
                            "test": [hub.query_names[q] for q in test]}
    run.r, run.k = experiment_tuning(run)
    run.results["r_chosen"], run.results["k"] = run.r, run.k
    run.results["seeds"] = list(seeds)
    experiment_main(run)
    experiment_distributions(run)
    experiment_probe_counts(run)
    experiment_r(run)
    experiment_background_size(run)
    experiment_selectivity(run)
    eval_images, eval_labels, eval_names = eval_objects(layout.root)
    experiment_image_queries(run, clip, eval_images, eval_labels, eval_names)
    eval_logits = hub_logits(hub, "eval", eval_images, cache, threads)
    experiment_pr_auc(run, clip, eval_images, eval_labels, eval_logits)
    meta = layout.info()
    report = json.loads(layout.clip_report.read_text()) if layout.clip_report.is_file() else {}
    loaded, computed = cache.loaded.get("logits", 0), cache.computed.get("logits", 0)
    if computed == 0:
        cache_note = (
            f"all {loaded} (model, pool) logit arrays were read from <world>/bench-cache, computed before "
            "this run (keyed by model and pool; the arrays are the world's run_hub outputs on the bench's "
            "pools)"
        )
    elif loaded == 0:
        cache_note = f"computed in this run ({computed} (model, pool) arrays), none from a cache"
    else:
        cache_note = f"{computed} (model, pool) arrays computed in this run, {loaded} read from <world>/bench-cache, computed before it"
    hub_meta = meta.get("hub", {})

    def pct(v: Any) -> str:
        return f"{100 * v:.1f}%" if isinstance(v, int | float) else "n/a"

    info = {
        "date": time.strftime("%Y-%m-%d"),
        "minutes": (time.time() - started) / 60,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "world": f"scale {meta.get('scale')}, seed {meta.get('seed')}",
        "n_models": len(hub.model_names),
        "n_logits": hub.n_logits,
        "n_queries": len(hub.query_names),
        "n_background": len(background_names),
        "clip_fine_top1": pct(report.get("fine_top1")),
        "clip_coarse_top1": pct(report.get("coarse_top1")),
        "clip_selectivity": pct(report.get("text_selectivity")),
        "hub_accuracy": pct(hub_meta.get("mean_test_accuracy")),
        "hub_pr_auc": f"{hub_meta['mean_logit_pr_auc']:.3f}" if hub_meta.get("mean_logit_pr_auc") is not None else "n/a",
        "cache": cache_note,
        "pool_sizes": pool_sizes,
        "n_probes": n_probes,
        "deviations": DEVIATIONS,
    }
    return write_report(run.results, out_dir, command, info)
