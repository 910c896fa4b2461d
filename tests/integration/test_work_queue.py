"""The bulk-indexing work queue's Redis protocol, on a real Redis: queueing without duplicates,
claims, a dead consumer's claim taken over, a claim kept alive, and a give-up after the attempts."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from probelog.orchestrator.work_queue import IndexQueue
from tests.support.backends import redis_for_tests

#: Idle time after which a claim may be taken over, short so that the test waits little (s).
CLAIM_TIMEOUT_S = 0.2


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_for_tests(tmp_path_factory.mktemp("redis-queue")) as handle:
        yield handle.url


@pytest_asyncio.fixture
async def queue(redis_url):
    opened = IndexQueue(
        aioredis.from_url(redis_url), prefix="t" + uuid.uuid4().hex[:10], claim_timeout_s=CLAIM_TIMEOUT_S,
        max_attempts=2,
    )
    await opened.open()
    await opened.open()  # idempotent: the group exists already
    yield opened
    await opened.close()


async def claim_when_stale(queue: IndexQueue, consumer: str):
    """Poll until ``consumer`` gets an entry (a stale claim becomes claimable after the timeout)."""
    for _ in range(200):
        job = await queue.claim(consumer, block_ms=10)
        if job is not None:
            return job
        await asyncio.sleep(CLAIM_TIMEOUT_S / 4)
    raise AssertionError("no claim became available")


async def test_enqueue_claims_and_finishes_each_model_once(queue):
    assert await queue.enqueue(["m1", "m2", "m1"], "ps-0") == (2, 0)
    assert await queue.enqueue(["m2", "m3"], "ps-0") == (1, 1)  # m2 is queued already
    first = await queue.claim("a")
    assert (first.model_name, first.probe_set_id) == ("m1", "ps-0")
    progress = await queue.progress()
    assert (progress.queued, progress.running, progress.done, progress.failed) == (2, 1, 0, 0)
    assert await queue.enqueue(["m1"], "ps-0") == (0, 1)  # m1 is running
    await queue.finish(first)
    second = await queue.claim("b")
    await queue.fail(second, "NOT_FOUND: no model 'm2'")
    third = await queue.claim("a")
    await queue.finish(third)
    assert await queue.claim("a", block_ms=10) is None
    progress = await queue.progress()
    assert (progress.queued, progress.running, progress.done, progress.failed) == (0, 0, 2, 1)
    assert progress.failures == {"m2": "NOT_FOUND: no model 'm2'"}
    assert await queue.client.xlen(queue.stream) == 0  # acknowledged entries are deleted
    # Retrying a failed model moves it back to queued and forgets its reason.
    assert await queue.enqueue(await queue.failed_names(), "ps-0") == (1, 0)
    progress = await queue.progress()
    assert (progress.queued, progress.failed, progress.failures) == (1, 0, {})
    assert await queue.known() == {"m2"}


async def test_a_dead_consumers_claim_is_taken_over_and_a_live_one_is_not(queue):
    # Eleven live claims stand before the dead one in the pending list: more than one
    # XAUTOCLAIM call looks at, so the cursor must be followed.
    slow_names = [f"slow-{i:02d}" for i in range(11)]
    await queue.enqueue([*slow_names, "lost"], "ps-0")
    slow = [await queue.claim("alive") for _ in slow_names]
    lost = await queue.claim("dead")
    assert [j.model_name for j in slow] == slow_names and lost.model_name == "lost"
    # "alive" keeps its claims fresh; "dead" went silent: only its entry is taken over.
    taken = None
    for _ in range(200):
        for job in slow:
            await queue.touch(job, "alive")
        taken = await queue.claim("other", block_ms=10)
        if taken is not None:
            break
        await asyncio.sleep(CLAIM_TIMEOUT_S / 4)
    assert taken is not None and taken.entry_id == lost.entry_id
    await queue.finish(taken)
    for job in slow:
        await queue.finish(job)
    progress = await queue.progress()
    assert (progress.queued, progress.running, progress.done) == (0, 0, 12)


async def test_a_model_claimed_too_often_fails_with_its_last_error(queue):
    await queue.enqueue(["crashy"], "ps-0")
    job = await queue.claim("a")
    await queue.note_error(job, "UNAVAILABLE: runner down")
    again = await claim_when_stale(queue, "b")  # claim 2 of max_attempts = 2
    assert again.entry_id == job.entry_id
    assert await claim_when_stale_or_none(queue, "c") is None  # claim 3: given up
    progress = await queue.progress()
    assert (progress.running, progress.failed) == (0, 1)
    assert progress.failures["crashy"] == "claimed 2 times without finishing; last error: UNAVAILABLE: runner down"


async def claim_when_stale_or_none(queue: IndexQueue, consumer: str):
    """Claim after the timeout has passed for every pending entry; None when none was handed out."""
    while (await queue.client.xpending(queue.stream, "indexers"))["pending"]:
        job = await queue.claim(consumer, block_ms=10)
        if job is not None:
            return job
        await asyncio.sleep(CLAIM_TIMEOUT_S / 4)
    return None
