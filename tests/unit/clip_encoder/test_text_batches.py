"""Concurrent text encodes share forward passes; recent texts' descriptors are cached."""

from __future__ import annotations

import asyncio
import threading
import zlib

import numpy as np
import pytest

from probelog.clip_encoder.text_batches import DescriptorCache, TextBatcher


class Recorder:
    """A deterministic text encoder that records its passes; the first pass can be held."""

    def __init__(self) -> None:
        self.passes: list[tuple[list[str], tuple[str, ...]]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, texts, templates):
        self.entered.set()
        self.release.wait(30)
        self.passes.append((list(texts), templates))
        if "boom" in texts:
            raise RuntimeError("the encoder failed")
        return np.stack([np.full(4, zlib.crc32(f"{t}|{templates}".encode()), dtype=np.float32) for t in texts])


def expected(texts, templates):
    return np.stack([np.full(4, zlib.crc32(f"{t}|{templates}".encode()), dtype=np.float32) for t in texts])


async def test_calls_arriving_during_a_pass_share_the_next_one():
    encode = Recorder()
    batcher = TextBatcher(encode)
    encode.release.clear()
    first = asyncio.create_task(batcher.encode(["cat"], ("a {}",)))
    assert await asyncio.to_thread(encode.entered.wait, 30)  # the first pass is held in its thread
    others = [asyncio.create_task(batcher.encode([f"t{i}", f"u{i}"], ("a {}",))) for i in range(5)]
    other_templates = asyncio.create_task(batcher.encode(["dog"], ("b {}",)))
    while len(batcher._queue) < 6:
        await asyncio.sleep(0.01)
    encode.release.set()
    assert np.array_equal(await first, expected(["cat"], ("a {}",)))
    for i, task in enumerate(others):
        assert np.array_equal(await task, expected([f"t{i}", f"u{i}"], ("a {}",)))
    assert np.array_equal(await other_templates, expected(["dog"], ("b {}",)))
    # One pass for the lone first call, then one per template set for everything that waited.
    assert [len(texts) for texts, _ in encode.passes] == [1, 10, 1]
    assert [templates for _, templates in encode.passes] == [("a {}",), ("a {}",), ("b {}",)]


async def test_a_lone_call_runs_at_once_and_a_failure_reaches_every_caller_of_its_pass():
    encode = Recorder()
    batcher = TextBatcher(encode, max_texts=3)
    assert np.array_equal(await batcher.encode(["x"], ("{}",)), expected(["x"], ("{}",)))
    results = await asyncio.gather(
        batcher.encode(["boom"], ("{}",)), batcher.encode(["y"], ("{}",)), batcher.encode(["a", "b"], ("{}",)),
        return_exceptions=True,
    )
    # The first two calls share a pass (3 texts at most), which fails for both; the third runs alone.
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
    assert np.array_equal(results[2], expected(["a", "b"], ("{}",)))
    assert [texts for texts, _ in encode.passes] == [["x"], ["boom", "y"], ["a", "b"]]


def test_the_cache_keeps_the_most_recently_used_texts():
    cache = DescriptorCache(2)
    rows = {t: np.full(3, i, dtype=np.float32) for i, t in enumerate("abc")}
    cache.put("ps", ("{}",), "a", rows["a"])
    cache.put("ps", ("{}",), "b", rows["b"])
    assert cache.get("ps", ("{}",), "a") is rows["a"]  # a is now the most recent
    cache.put("ps", ("{}",), "c", rows["c"])  # evicts b
    assert cache.get("ps", ("{}",), "b") is None and len(cache) == 2
    assert cache.get("other", ("{}",), "a") is None and cache.get("ps", ("x {}",), "a") is None
    off = DescriptorCache(0)
    off.put("ps", ("{}",), "a", rows["a"])
    assert off.get("ps", ("{}",), "a") is None and len(off) == 0
    with pytest.raises(ValueError):
        DescriptorCache(-1)
