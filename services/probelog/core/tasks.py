"""Task search: which model covers a whole task of concepts, through which logits.

A task is a list of concepts c_1..c_m. One batched ranker pass gives, per concept, its top-N
logits by calibrated distance (paper Eq. 6), the *candidates*. Per model, every concept is then
assigned a distinct logit of that model (an optimal assignment, Hungarian method) or left
uncovered, and the model is scored over the whole task.

Cost of concept i on logit j of a model::

    C[i, j] = d_cal(l_j, c_i)     when l_j is a candidate of c_i (within N, and the threshold)
    C[i, -] = b_i                 for leaving c_i uncovered

where the bound b_i is the worst score concept i's candidate list admits (its N-th candidate's
score, or the threshold when that is lower): a logit outside the list scores at least that, so
an uncovered concept costs the least it could possibly have cost, and covering it never costs
more than leaving it. The assignment minimises
sum_i C[i, a(i)] over injective a (distinct logits), or takes each row's minimum when logits may
be shared. The *model score* aggregates the m per-concept costs (lower is better):

- ``mean``: (1/m) sum_i C[i, a(i)], the mean calibrated distance, an uncovered concept at b_i;
- ``worst``: max_i C[i, a(i)], the task's weakest concept;
- ``mean_rank``: (1/m) sum_i rank_i, the assigned logit's 1-based rank among concept i's hits
  (N + 1 when uncovered), which weighs concepts alike whatever their score scale.

``mean`` is the default: it is what the assignment minimises, and it was the best on the tuning
tasks (bench/results/tasks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment


class Aggregation(Enum):
    """How the per-concept costs of an assignment become one model score (lower is better)."""

    MEAN = "mean"
    WORST = "worst"
    MEAN_RANK = "mean_rank"


@dataclass(frozen=True)
class Assignment:
    """One model's answer to a task.

    Attributes
    ----------
    logits : ndarray of shape (m,), int64
        ``logits[i]`` is the model's logit assigned to concept i, -1 when uncovered.
    costs : ndarray of shape (m,), float64
        ``C[i, logits[i]]``: the calibrated score, or the bound b_i when uncovered.
    ranks : ndarray of shape (m,), int64
        1-based rank of the assigned logit among concept i's candidates; N_i + 1 when uncovered.
    """

    logits: npt.NDArray[np.int64]
    costs: npt.NDArray[np.float64]
    ranks: npt.NDArray[np.int64]

    @property
    def coverage(self) -> int:
        return int((self.logits >= 0).sum())


def assign(
    scores: npt.ArrayLike,
    bounds: npt.ArrayLike,
    *,
    allow_shared: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The optimal assignment of concepts to one model's logits.

    Parameters
    ----------
    scores : array-like of shape (m, n_logits), float
        ``scores[i, j]`` is the calibrated score of the model's logit j for concept i when it is
        a candidate of concept i, +inf (or NaN) when it is not. Only candidate columns need be
        given; ``j`` indexes whatever columns the caller passes.
    bounds : array-like of shape (m,), float
        b_i, the cost of leaving concept i uncovered. A score above b_i covers nothing.
    allow_shared : bool
        Let several concepts take the same logit (each takes its best candidate).

    Returns
    -------
    columns : ndarray of shape (m,), int64
        ``columns[i]`` is the column assigned to concept i, -1 when uncovered.
    costs : ndarray of shape (m,), float64
        The cost paid for concept i: ``scores[i, columns[i]]`` or ``bounds[i]``.

    Notes
    -----
    With distinct logits this minimises sum_i cost_i, and among the minima maximises the
    number of covered concepts, with :func:`scipy.optimize.linear_sum_assignment` on
    ``[C | B]``: C holds the scores (b_i where a logit is not a candidate of concept i), B is m
    columns of b_i so that any concept can stay uncovered, and each candidate cell is made
    cheaper by a tie-breaking epsilon far below any score difference that matters.
    """
    S = np.asarray(scores, dtype=np.float64)
    b = np.asarray(bounds, dtype=np.float64)
    if S.ndim != 2 or b.shape != (S.shape[0],):
        raise ValueError(f"scores must be (m, n_logits) and bounds (m,), got {S.shape} and {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("bounds must be finite")
    m, n = S.shape
    with np.errstate(invalid="ignore"):
        candidate = np.isfinite(S) & (b[:, None] >= S)
    C = np.where(candidate, S, b[:, None])
    columns = np.full(m, -1, dtype=np.int64)
    if n == 0 or not candidate.any():
        return columns, b.copy()
    if allow_shared:
        best = np.argmin(np.where(candidate, C, np.inf), axis=1)
        take = candidate[np.arange(m), best]
        columns[take] = best[take]
    else:
        # Ties between covering and not go to covering: one epsilon per covered concept, at
        # most m of them, stays below float64's resolution of any real score difference.
        epsilon = 1e-9 * max(1.0, float(np.abs(C).max())) / m
        cost = np.hstack([C - epsilon * candidate, np.repeat(b[:, None], m, axis=1)])
        rows, cols = linear_sum_assignment(cost)
        take = cols < n
        take[take] = candidate[rows[take], cols[take]]
        columns[rows[take]] = cols[take]
    costs = np.where(columns >= 0, C[np.arange(m), np.maximum(columns, 0)], b)
    return columns, costs


def task_score(assignment: Assignment, aggregation: Aggregation = Aggregation.MEAN) -> float:
    """The model score of an assignment (lower is better); see the module docstring."""
    if aggregation is Aggregation.MEAN:
        return float(assignment.costs.mean())
    if aggregation is Aggregation.WORST:
        return float(assignment.costs.max())
    if aggregation is Aggregation.MEAN_RANK:
        return float(assignment.ranks.mean())
    raise ValueError(f"unknown aggregation {aggregation!r}")


@dataclass(frozen=True)
class Candidate:
    """One logit among a concept's top-N hits."""

    concept: int
    model_id: str
    logit_index: int
    score: float
    rank: int  # 1-based, among the concept's hits


@dataclass(frozen=True)
class ModelMatch:
    """A model ranked for a task: its assignment and score."""

    model_id: str
    score: float
    assignment: Assignment
    #: ``candidates[i]`` is the candidate assigned to concept i, None when uncovered.
    candidates: tuple[Candidate | None, ...]

    @property
    def coverage(self) -> int:
        return self.assignment.coverage


def concept_bounds(
    candidates: Sequence[Sequence[Candidate]], max_score: float | None = None
) -> npt.NDArray[np.float64]:
    """b_i per concept: its worst candidate's score, lowered to ``max_score`` when given.

    Every logit outside concept i's list scores at least its worst candidate (the list is the
    top of a ranking), so b_i is the best an uncovered concept could have scored. A concept
    with no candidates at all gets ``max_score``, else 0.
    """
    bounds = np.empty(len(candidates), dtype=np.float64)
    for i, hits in enumerate(candidates):
        worst = max((c.score for c in hits), default=0.0 if max_score is None else max_score)
        bounds[i] = worst if max_score is None else min(worst, max_score)
    return bounds


def rank_models(
    candidates: Sequence[Sequence[Candidate]],
    *,
    top_k: int,
    min_coverage: int,
    max_score: float | None = None,
    allow_shared: bool = False,
    aggregation: Aggregation = Aggregation.MEAN,
    exclude: Sequence[str] = (),
) -> tuple[list[ModelMatch], int]:
    """Models ranked for a task from its concepts' candidate lists.

    Parameters
    ----------
    candidates : sequence of m sequences of Candidate
        ``candidates[i]``: concept i's top hits (the top N of a ranking), best first.
    top_k : int
        Most models returned.
    min_coverage : int
        Models covering fewer concepts are left out.
    max_score : float, optional
        A candidate with a higher calibrated score does not cover its concept.
    allow_shared : bool
        Several concepts may take the same logit.
    aggregation : Aggregation
        The model score (module docstring).
    exclude : sequence of str
        Models never returned (e.g. the query model of a similarity search).

    Returns
    -------
    matches : list of ModelMatch
        Best first, by (score, -coverage, model id).
    n_eligible : int
        Models with candidates for at least ``min_coverage`` concepts: those that could qualify.
        (Only as many are assigned as the top_k needs; see the lower bound below.)
    """
    bounds = concept_bounds(candidates, max_score)
    skip = set(exclude)
    per_model: dict[str, list[Candidate]] = {}
    for hits in candidates:
        for c in hits:
            if c.model_id not in skip and c.score <= bounds[c.concept]:
                per_model.setdefault(c.model_id, []).append(c)
    # Covering fewer distinct concepts than asked can never reach min_coverage.
    eligible = {
        model_id: hits for model_id, hits in per_model.items() if len({c.concept for c in hits}) >= min_coverage
    }
    # Exact assignments in the order of a lower bound on the score (each concept at its best
    # candidate, as if logits could be shared), stopping once the bound passes the top_k-th
    # score: the answer is exact, and a task with many partly covering models assigns few.
    depth_ranks = np.array([len(hits) + 1 for hits in candidates], dtype=np.float64)
    order = sorted(
        eligible, key=lambda model_id: _lower_bound(eligible[model_id], bounds, depth_ranks, aggregation)
    )
    matches: list[ModelMatch] = []
    for model_id in order:
        if len(matches) >= top_k:
            kth = sorted(x.score for x in matches)[top_k - 1]
            if _lower_bound(eligible[model_id], bounds, depth_ranks, aggregation) > kth:
                break
        match = _match(model_id, eligible[model_id], bounds, depth_ranks, allow_shared, aggregation)
        if match.coverage >= min_coverage:
            matches.append(match)
    matches.sort(key=lambda x: (x.score, -x.coverage, x.model_id))
    return matches[:top_k], len(eligible)


def _lower_bound(
    hits: Sequence[Candidate],
    bounds: npt.NDArray[np.float64],
    depth_ranks: npt.NDArray[np.float64],
    aggregation: Aggregation,
) -> float:
    """A lower bound on the model's score: each concept at its best candidate."""
    best: dict[int, Candidate] = {}
    for c in hits:
        if c.concept not in best or c.score < best[c.concept].score:
            best[c.concept] = c
    m = len(bounds)
    if aggregation is Aggregation.WORST:
        return max(c.score for c in best.values())  # the uncovered concepts can only raise it
    if aggregation is Aggregation.MEAN_RANK:
        # Within a concept, ranks follow scores: the best-scoring candidate has the best rank.
        return float((depth_ranks.sum() + sum(c.rank - depth_ranks[i] for i, c in best.items())) / m)
    return float((bounds.sum() + sum(c.score - bounds[i] for i, c in best.items())) / m)


def _match(
    model_id: str,
    hits: Sequence[Candidate],
    bounds: npt.NDArray[np.float64],
    depth_ranks: npt.NDArray[np.float64],
    allow_shared: bool,
    aggregation: Aggregation,
) -> ModelMatch:
    """One model's optimal assignment over its candidates, and its score."""
    m = len(bounds)
    logits = sorted({c.logit_index for c in hits})
    column = {logit: j for j, logit in enumerate(logits)}
    S = np.full((m, len(logits)), np.inf)
    by_cell: dict[tuple[int, int], Candidate] = {}
    for c in hits:
        S[c.concept, column[c.logit_index]] = c.score
        by_cell[(c.concept, column[c.logit_index])] = c
    columns, costs = assign(S, bounds, allow_shared=allow_shared)
    chosen = tuple(by_cell[(i, int(j))] if j >= 0 else None for i, j in enumerate(columns))
    assignment = Assignment(
        logits=np.array([c.logit_index if c else -1 for c in chosen], dtype=np.int64),
        costs=costs,
        ranks=np.array([c.rank if c else int(depth_ranks[i]) for i, c in enumerate(chosen)], dtype=np.int64),
    )
    return ModelMatch(model_id, task_score(assignment, aggregation), assignment, chosen)


def logit_query_descriptor(
    top_indices: npt.ArrayLike, top_values: npt.ArrayLike, n_probes: int
) -> npt.NDArray[np.float32]:
    """A dense descriptor standing for one stored logit, to query the index with (SimilarLogits).

    Parameters
    ----------
    top_indices : array-like of shape (r,), int
        The logit's top-r probes.
    top_values : array-like of shape (r,), float
        Its z-scored responses there.
    n_probes : int

    Returns
    -------
    ndarray of shape (n_probes,), float32
        ``top_values`` at ``top_indices``; elsewhere the constant that makes the whole vector's
        mean zero, as the z-scored descriptor's is (the store keeps nothing of the other probes).
    """
    t = np.asarray(top_indices, dtype=np.int64)
    a = np.asarray(top_values, dtype=np.float64)
    if t.ndim != 1 or t.shape != a.shape or len(t) >= n_probes:
        raise ValueError(f"need r < n_probes indices and values of one shape, got {t.shape}, {a.shape}")
    out = np.full(n_probes, -a.sum() / (n_probes - len(t)), dtype=np.float64)
    out[t] = a
    return out.astype(np.float32)
