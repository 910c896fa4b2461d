"""Dynamic batching: concurrent calls share index passes and get exactly their own answers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from probelog.common.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from probelog.core import zscore
from probelog.ranker.batcher import DynamicBatcher
from probelog.ranker.ranker import Ranker
from tests.unit.ranker.support import PROBE_SET, hub, index_of, queries


def keys(hits):
    return [[(h.model_id, h.logit_index, h.score, h.distance) for h in per_query] for per_query in hits]


async def test_concurrent_calls_are_stacked_per_option_group_and_stay_exact():
    index = index_of(hub())
    batcher = DynamicBatcher(0.05, max_batch_queries=1000)
    qs = queries(1, 24)
    calls = [
        # (queries, top_k, one_hit, include, exclude): three option groups, mixed top_k.
        (qs[i : i + 2], 1 + 3 * (i % 5), i % 3 == 1, ("model-001", "model-007", "twin-1") if i % 3 == 2 else (), ())
        for i in range(0, 24, 2)
    ]
    results = await asyncio.gather(*(
        batcher.search(index, zscore(q), k, one_hit_per_model=one, include=inc, exclude=exc)
        for q, k, one, inc, exc in calls
    ))
    for (q, k, one, inc, exc), got in zip(calls, results, strict=True):
        want = index.search(q, k, one_hit_per_model=one, include=inc or None, exclude=exc or None)
        assert keys(got) == keys(want)
    stats = batcher.stats()
    assert stats.calls == 12 and stats.queries == 24
    assert stats.batches == 1 and stats.passes == 3
    await batcher.close()


async def test_a_full_batch_does_not_wait_for_the_window():
    index = index_of(hub())
    batcher = DynamicBatcher(3600.0, max_batch_queries=4)
    qs = zscore(queries(2, 4))
    got = await asyncio.wait_for(asyncio.gather(*(batcher.search(index, q[None], 5) for q in qs)), 30)
    assert [keys(g) for g in got] == [keys(index.search(q, 5, normalized=True)) for q in qs]
    await batcher.close()


async def test_a_full_queue_is_resource_exhausted():
    index = index_of(hub())
    batcher = DynamicBatcher(3600.0, max_batch_queries=100, max_queued_queries=3)
    waiting = asyncio.create_task(batcher.search(index, zscore(queries(3, 3)), 5))
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted, match="waiting"):
        await batcher.search(index, zscore(queries(4, 1)), 5)
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_bad_query_fails_alone_and_a_late_caller_does_not_block_the_others():
    index = index_of(hub())
    ranker = Ranker.from_indexes({PROBE_SET: index}, batch_window_ms=20)
    good = queries(5, 1)
    constant = np.ones((1, good.shape[1]), dtype=np.float32)
    outcomes = await asyncio.gather(
        ranker.rank(PROBE_SET, good, 5),
        ranker.rank(PROBE_SET, constant, 5),
        ranker.rank(PROBE_SET, good, 5, timeout=1e-4),
        return_exceptions=True,
    )
    assert keys(outcomes[0].hits) == keys(index.search(good, 5))
    assert isinstance(outcomes[1], InvalidArgument) and "constant" in str(outcomes[1])
    assert isinstance(outcomes[2], DeadlineExceeded)
    again = await ranker.rank(PROBE_SET, good, 5)
    assert [h.model_id for h in again.hits[0]] == [h.model_id for h in outcomes[0].hits[0]]
    await ranker.stop()


@pytest.mark.parametrize("window_ms", [0.0, 2.0])
async def test_ranker_results_do_not_depend_on_batching(window_ms):
    models = hub()
    ranker = Ranker.from_indexes({PROBE_SET: index_of(models)}, batch_window_ms=window_ms)
    assert (ranker.batcher is None) == (window_ms == 0)
    reference = index_of(models)
    qs = queries(6, 9)
    results = await asyncio.gather(*(ranker.rank(PROBE_SET, qs[i : i + 3], 7) for i in range(0, 9, 3)))
    for i, result in zip(range(0, 9, 3), results, strict=True):
        want = reference.search(qs[i : i + 3], 7)
        assert [[(h.model_id, h.logit_index) for h in per] for per in result.hits] == [
            [(h.model_id, h.logit_index) for h in per] for per in want
        ]
        assert [h.rank for h in result.hits[0]] == list(range(1, 8))
        assert result.n_logits_searched == reference.stats().n_logits
        assert result.shards_answered == result.shards_total == 1 and not result.partial
    await ranker.stop()


class SlowIndex:
    """Stands in for an index whose scan takes a while; records the batches it scores."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches: list[int] = []

    def search(self, z, top_k, **options):
        import time

        time.sleep(self.seconds)
        self.batches.append(len(z))
        return [[] for _ in z]


async def test_callers_coming_straight_back_join_the_waiting_ones():
    # Closed-loop clients: the caller answered by one pass asks again at once. It must join the
    # call that waited during that pass, not leave it to run alone (alternating half batches).
    index = SlowIndex(0.3)
    batcher = DynamicBatcher(0.1)
    z = zscore(queries(9, 3))

    async def loop_client():
        await batcher.search(index, z[:1], 1)
        await batcher.search(index, z[2:3], 1)

    async def late_client():
        await asyncio.sleep(0.15)  # arrives while the first pass runs
        await batcher.search(index, z[1:2], 1)

    await asyncio.gather(loop_client(), late_client())
    assert index.batches == [1, 2]
    await batcher.close()


async def test_a_lone_call_after_a_lone_call_does_not_wait_for_the_window():
    # A client searching on its own is scored at once, however long the window; calls that
    # arrive together still wait for it and share a batch.
    index = index_of(hub())
    batcher = DynamicBatcher(3600.0, max_batch_queries=100)
    z = zscore(queries(11, 4))
    for row in z[:2]:
        got = await asyncio.wait_for(batcher.search(index, row[None], 5), 30)
        assert keys(got) == keys(index.search(row[None], 5, normalized=True))
    assert batcher.stats().window_waits == 0 and batcher.stats().batches == 2
    await batcher.close()

    batcher = DynamicBatcher(0.05, max_batch_queries=100)
    got = await asyncio.gather(*(batcher.search(index, row[None], 5) for row in z))
    assert [keys(g) for g in got] == [keys(index.search(row[None], 5, normalized=True)) for row in z]
    assert batcher.stats().window_waits == 1 and batcher.stats().batches == 1
    await batcher.close()
