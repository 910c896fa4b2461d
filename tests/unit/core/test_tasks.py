"""Task search's assignment and model score against a direct brute-force transcription."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from probelog.core.tasks import (
    Aggregation,
    Candidate,
    assign,
    concept_bounds,
    logit_query_descriptor,
    rank_models,
)


def brute_force(S: np.ndarray, b: np.ndarray, allow_shared: bool) -> tuple[float, int]:
    """min over every map concept -> (a candidate logit | uncovered), distinct logits unless
    shared, of (sum of costs, -coverage): the definition in probelog.core.tasks, transcribed."""
    m, n = S.shape
    options = [[None] + [j for j in range(n) if np.isfinite(S[i, j]) and S[i, j] <= b[i]] for i in range(m)]
    best = (np.inf, 0)
    for choice in itertools.product(*options):
        used = [j for j in choice if j is not None]
        if not allow_shared and len(used) != len(set(used)):
            continue
        total = sum(b[i] if j is None else S[i, j] for i, j in enumerate(choice))
        best = min(best, (total, -len(used)))
    return best[0], -best[1]


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m, n = int(rng.integers(1, 5)), int(rng.integers(0, 5))
    S = rng.normal(size=(m, n))
    S[rng.random(size=(m, n)) < 0.3] = np.inf  # not a candidate of that concept
    b = rng.normal(size=m) + 0.5
    return S, b


@pytest.mark.parametrize("allow_shared", [False, True])
def test_assignment_is_the_brute_force_optimum(allow_shared):
    rng = np.random.default_rng(0)
    for _ in range(400):
        S, b = random_case(rng)
        columns, costs = assign(S, b, allow_shared=allow_shared)
        total, coverage = brute_force(S, b, allow_shared)
        assert costs.sum() == pytest.approx(total, abs=1e-9)
        assert (columns >= 0).sum() == coverage
        used = columns[columns >= 0]
        if not allow_shared:
            assert len(used) == len(set(used.tolist()))
        for i, j in enumerate(columns):
            assert costs[i] == (b[i] if j < 0 else S[i, j])
            assert j < 0 or S[i, j] <= b[i]


def test_a_candidate_at_the_bound_covers_its_concept():
    columns, costs = assign(np.array([[1.0, np.inf], [np.inf, 2.0]]), np.array([1.0, 2.0]))
    assert columns.tolist() == [0, 1]
    assert costs.tolist() == [1.0, 2.0]


def test_distinct_logits_unless_shared():
    S = np.array([[0.0, 1.0], [0.1, 5.0]])
    b = np.array([10.0, 10.0])
    assert assign(S, b)[0].tolist() == [1, 0]  # 1.0 + 0.1 beats the greedy 0.0 + 5.0
    assert assign(S, b, allow_shared=True)[0].tolist() == [0, 0]
    one = np.array([[0.0], [0.1]])
    columns, costs = assign(one, b)
    assert sorted(columns.tolist()) == [-1, 0] and costs.sum() == pytest.approx(10.0)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        assign(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError):
        assign(np.zeros((2, 3)), np.array([0.0, np.inf]))


def candidates_of(rng: np.random.Generator, m: int, n_models: int, depth: int) -> list[list[Candidate]]:
    """Per concept, a ranking's top ``depth`` over a random hub (scores drawn per logit)."""
    logits = [(f"m{k}", j) for k in range(n_models) for j in range(int(rng.integers(1, 5)))]
    out = []
    for i in range(m):
        scores = rng.normal(size=len(logits))
        order = np.argsort(scores, kind="stable")[:depth]
        out.append([Candidate(i, *logits[o], float(scores[o]), rank) for rank, o in enumerate(order, start=1)])
    return out


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_model_ranking_matches_brute_force(aggregation):
    rng = np.random.default_rng(1)
    for _ in range(30):
        m = int(rng.integers(2, 4))
        cands = candidates_of(rng, m, n_models=6, depth=8)
        b = concept_bounds(cands)
        matches, _ = rank_models(cands, top_k=100, min_coverage=1, aggregation=aggregation)
        expected = {}
        for model in {c.model_id for hits in cands for c in hits}:
            logits = sorted({c.logit_index for hits in cands for c in hits if c.model_id == model})
            S = np.full((m, len(logits)), np.inf)
            rank = {}
            for hits in cands:
                for c in hits:
                    if c.model_id == model:
                        S[c.concept, logits.index(c.logit_index)] = c.score
                        rank[c.concept, logits.index(c.logit_index)] = c.rank
            total, coverage = brute_force(S, b, allow_shared=False)
            if coverage:
                expected[model] = (total / m, coverage)
        assert {x.model_id for x in matches} == set(expected)
        for x in matches:
            assert x.assignment.costs.mean() == pytest.approx(expected[x.model_id][0])
            assert x.coverage == expected[x.model_id][1]
            ranks = [c.rank if c else len(cands[i]) + 1 for i, c in enumerate(x.candidates)]
            want = {
                Aggregation.MEAN: x.assignment.costs.mean(),
                Aggregation.WORST: x.assignment.costs.max(),
                Aggregation.MEAN_RANK: np.mean(ranks),
            }[aggregation]
            assert x.score == pytest.approx(want)
        keys = [(x.score, -x.coverage, x.model_id) for x in matches]
        assert keys == sorted(keys)


def test_min_coverage_threshold_top_k_and_exclude():
    rng = np.random.default_rng(2)
    cands = candidates_of(rng, 3, n_models=10, depth=12)
    everything, _ = rank_models(cands, top_k=1000, min_coverage=1)
    full, _ = rank_models(cands, top_k=1000, min_coverage=3)
    assert [x.model_id for x in full] == [x.model_id for x in everything if x.coverage == 3]
    assert len(rank_models(cands, top_k=2, min_coverage=1)[0]) == 2
    first = everything[0].model_id
    assert first not in {x.model_id for x in rank_models(cands, top_k=1000, min_coverage=1, exclude=[first])[0]}
    strict, _ = rank_models(cands, top_k=1000, min_coverage=1, max_score=-0.5)
    for x in strict:
        assert all(c is None or c.score <= -0.5 for c in x.candidates)
        assert np.all(x.assignment.costs <= -0.5)


def test_logit_query_descriptor_keeps_the_top_values_and_a_zero_mean():
    z = logit_query_descriptor([3, 0], [2.0, 1.5], 10)
    assert z.dtype == np.float32 and z.shape == (10,)
    assert z[3] == 2.0 and z[0] == 1.5
    assert z.mean() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        logit_query_descriptor([0, 1], [1.0], 10)


@pytest.mark.parametrize("aggregation", list(Aggregation))
@pytest.mark.parametrize("allow_shared", [False, True])
def test_stopping_at_the_lower_bound_keeps_the_exact_top_k(aggregation, allow_shared):
    # Models are assigned in the order of a lower bound on their score until it passes the
    # top_k-th score: the top_k must be the head of the full ranking.
    rng = np.random.default_rng(3)
    for trial in range(20):
        cands = candidates_of(rng, int(rng.integers(2, 6)), n_models=40, depth=30)
        options = {"min_coverage": 1 + trial % 2, "allow_shared": allow_shared, "aggregation": aggregation}
        full, n_full = rank_models(cands, top_k=1000, **options)
        for top_k in (1, 3, 10):
            head, n = rank_models(cands, top_k=top_k, **options)
            assert [(x.model_id, x.score) for x in head] == [(x.model_id, x.score) for x in full[:top_k]]
            assert n == n_full
