"""The sharded ranker against one ranker over the same hub, with in-process shards."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from probelog.common.errors import InvalidArgument, Unavailable
from probelog.ranker.ranker import Ranker, shard_of
from probelog.ranker.sharded import ShardedRanker, merge_hits
from probelog.v1 import types_pb2
from tests.unit.ranker.support import N_PROBES, PROBE_SET, hub, index_of, queries

N_SHARDS = 3
#: Partitions of the store's feed the in-process shards split: shard i owns p with p mod 3 == i.
N_PARTITIONS = 16


class InProcessShard:
    """A shard client backed by a Ranker in this process."""

    def __init__(self, ranker: Ranker, address: str, index: int, sequence: int = 7) -> None:
        self.ranker = ranker
        self.address = address
        self.index = index
        self.sequence = sequence
        self.closed = False

    async def rank(self, *args, **kwargs):
        return await self.ranker.rank(*args, **kwargs)

    async def applied_sequences(self, *, timeout=None):
        # Of a feed of two partitions: its position in the one it owns, 0 in the other.
        return [(p + 1) * self.sequence if p % N_SHARDS == self.index else 0 for p in range(2)]

    async def close(self):
        self.closed = True


class DownShard(InProcessShard):
    async def rank(self, *args, **kwargs):
        raise Unavailable(f"{self.address} is unavailable: connection refused")

    async def applied_sequences(self, *, timeout=None):
        raise Unavailable(f"{self.address} is unavailable: connection refused")


class HungShard(InProcessShard):
    async def rank(self, *args, **kwargs):
        await asyncio.sleep(3600)


@pytest.fixture(scope="module")
def models():
    return hub(seed=3, n_models=60)


def shards(models, kinds=(InProcessShard,) * N_SHARDS):
    return [
        kind(
            Ranker.from_indexes(
                {PROBE_SET: index_of(models, lambda m, i=i: shard_of(m, N_SHARDS, N_PARTITIONS) == i)},
                batch_window_ms=0,
            ),
            f"shard-{i}:50055",
            i,
            sequence=10 + i,
        )
        for i, kind in enumerate(kinds)
    ]


def listing(result):
    return [[(h.model_id, h.logit_index, h.score, h.distance, h.rank) for h in per] for per in result.hits]


async def test_merged_shards_equal_one_ranker_for_random_queries(models):
    single = Ranker.from_indexes({PROBE_SET: index_of(models)}, batch_window_ms=0)
    parts = shards(models)
    assert all(p.ranker.indexes[PROBE_SET].stats().n_models > 0 for p in parts)
    sharded = ShardedRanker(parts)
    rng = np.random.default_rng(0)
    ids = sorted(models)
    for trial in range(40):
        options = {
            "one_hit_per_model": bool(rng.integers(2)),
            "include": list(rng.choice(ids, 12, replace=False)) if trial % 4 == 1 else [],
            "exclude": list(rng.choice(ids, 12, replace=False)) if trial % 4 == 2 else [],
        }
        top_k = int(rng.choice([1, 3, 10, 500]))
        qs = queries(100 + trial, int(rng.integers(1, 4)))
        want = await single.rank(PROBE_SET, qs, top_k, **options)
        got = await sharded.rank(PROBE_SET, qs, top_k, **options)
        assert listing(got) == listing(want), (trial, options, top_k)
        assert got.n_logits_searched == want.n_logits_searched
        assert got.n_models_searched == want.n_models_searched
        assert (got.partial, got.shards_answered, got.shards_total) == (False, N_SHARDS, N_SHARDS)
    # The twins tie exactly with their originals; the merge keeps one ranker's order for them.
    twins = [h for h in (await sharded.rank(PROBE_SET, queries(1, 1), 500)).hits[0] if h.model_id.startswith("twin")]
    assert twins
    # Each partition's position is its owner's: shard 0's 10 in partition 0, shard 1's 2 * 11.
    assert await sharded.applied_sequences() == [10, 22]
    await sharded.close()
    assert all(p.closed for p in parts)


async def test_a_missing_shard_gives_a_flagged_partial_result_or_unavailable(models, caplog):
    parts = shards(models, (InProcessShard, DownShard, InProcessShard))
    qs = queries(7, 2)
    partial = await ShardedRanker(parts, allow_partial=True).rank(PROBE_SET, qs, 20)
    assert partial.partial and (partial.shards_answered, partial.shards_total) == (2, 3)
    assert partial.missing_shards and partial.missing_shards[0].startswith("shard-1:50055")
    assert "shard-1:50055" in caplog.text
    # What answered is exactly one ranker over the answering shards' models.
    live = {m: v for m, v in models.items() if shard_of(m, N_SHARDS, N_PARTITIONS) != 1}
    want = await Ranker.from_indexes({PROBE_SET: index_of(live)}, batch_window_ms=0).rank(PROBE_SET, qs, 20)
    assert listing(partial) == listing(want)
    with pytest.raises(Unavailable, match="shard-1:50055"):
        await ShardedRanker(parts).rank(PROBE_SET, qs, 20)
    with pytest.raises(Unavailable, match="shard-1:50055"):
        await ShardedRanker(parts).applied_sequences()
    # Partition 1's owner did not answer: nothing there is known to be applied.
    assert await ShardedRanker(parts, allow_partial=True).applied_sequences() == [10, 0]
    with pytest.raises(Unavailable, match="3 of 3"):
        await ShardedRanker(shards(models, (DownShard,) * 3), allow_partial=True).rank(PROBE_SET, qs, 5)


async def test_a_shard_past_the_deadline_is_missing_not_awaited(models):
    parts = shards(models, (InProcessShard, InProcessShard, HungShard))
    result = await ShardedRanker(parts, allow_partial=True).rank(PROBE_SET, queries(8, 1), 5, timeout=0.5)
    assert result.partial and result.shards_answered == 2
    assert "shard-2:50055 (no answer within 0.500 s)" in result.missing_shards
    with pytest.raises(Unavailable, match="no answer within"):
        await ShardedRanker(parts, default_timeout_s=0.2).rank(PROBE_SET, queries(8, 1), 5)


async def test_request_errors_are_raised_not_counted_as_missing_shards(models):
    sharded = ShardedRanker(shards(models), allow_partial=True)
    with pytest.raises(InvalidArgument, match="probes"):
        await sharded.rank(PROBE_SET, np.ones((1, N_PROBES + 1), dtype=np.float32), 5)


def test_merge_orders_by_score_then_model_id_then_logit():
    def hit(model_id, logit, score):
        return types_pb2.Hit(model_id=model_id, logit_index=logit, score=score)

    a = [hit("b", 0, 0.5), hit("b", 1, 0.5), hit("d", 0, 2.0)]
    b = [hit("a", 3, 0.5), hit("c", 0, 1.0)]
    merged = merge_hits([a, b], 4)
    assert [(h.model_id, h.logit_index, h.rank) for h in merged] == [("a", 3, 1), ("b", 0, 2), ("b", 1, 3), ("c", 0, 4)]
