"""Fast common text queries: concurrent encodes share forward passes, repeated texts are cached.

:class:`TextBatcher` runs a text forward pass as soon as one is asked for; calls that arrive
while it runs wait for the next pass, which takes every text queued by then (up to
``max_texts``). A lone call therefore never waits for a window, and under load one pass serves
many calls. :class:`DescriptorCache` keeps the descriptors of recent texts (least recently used
out first), keyed by probe set, prompt templates and text; an encoder has one cache, so the
encoder's weights are part of the key by construction.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge, Histogram

F32 = npt.NDArray[np.float32]
#: (texts, templates) -> unit-norm embeddings, one row per text; runs in a thread.
EncodeFn = Callable[[Sequence[str], tuple[str, ...]], F32]

PASS_TEXTS = Histogram(
    "probelog_encoder_pass_texts", "Texts encoded in one forward pass", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
CACHE_LOOKUPS = Counter("probelog_text_cache_lookups_total", "Text descriptor cache lookups", ["result"])
CACHE_ENTRIES = Gauge("probelog_text_cache_entries", "Text descriptors held in the cache")


@dataclass
class _Call:
    texts: list[str]
    templates: tuple[str, ...]
    future: asyncio.Future[F32] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class TextBatcher:
    """Concurrent text encodes in shared forward passes (see the module docstring)."""

    def __init__(self, encode: EncodeFn, max_texts: int = 256) -> None:
        if max_texts < 1:
            raise ValueError(f"max_texts must be at least 1, got {max_texts}")
        self._encode = encode
        self.max_texts = max_texts
        self._queue: list[_Call] = []
        self._worker: asyncio.Task[None] | None = None

    async def encode(self, texts: Sequence[str], templates: tuple[str, ...]) -> F32:
        """Unit-norm embeddings of ``texts`` under ``templates``, one row per text."""
        call = _Call(list(texts), templates)
        self._queue.append(call)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="text-encode")
        return await call.future

    def _take(self) -> list[_Call]:
        """The next pass: queued calls in order, up to ``max_texts`` texts (at least one call)."""
        taken, count = [], 0
        while self._queue and (not taken or count + len(self._queue[0].texts) <= self.max_texts):
            call = self._queue.pop(0)
            if not call.future.done():  # its caller may have been cancelled
                taken.append(call)
                count += len(call.texts)
        return taken

    async def _drain(self) -> None:
        while self._queue:
            calls = self._take()
            by_templates: dict[tuple[str, ...], list[_Call]] = {}
            for call in calls:
                by_templates.setdefault(call.templates, []).append(call)
            for templates, group in by_templates.items():
                texts = [text for call in group for text in call.texts]
                PASS_TEXTS.observe(len(texts))
                try:
                    embeddings = await asyncio.to_thread(self._encode, texts, templates)
                except Exception as exc:  # every caller of the pass gets the failure
                    for call in group:
                        if not call.future.done():
                            call.future.set_exception(exc)
                    continue
                start = 0
                for call in group:
                    rows = embeddings[start : start + len(call.texts)]
                    start += len(call.texts)
                    if not call.future.done():
                        call.future.set_result(rows)


class DescriptorCache:
    """The descriptors of the ``size`` most recently used texts (0: no cache)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"the text cache size must be >= 0, got {size}")
        self.size = size
        self._rows: OrderedDict[tuple[str, tuple[str, ...], str], F32] = OrderedDict()

    def get(self, probe_set_id: str, templates: tuple[str, ...], text: str) -> F32 | None:
        if not self.size:
            return None
        key = (probe_set_id, templates, text)
        row = self._rows.get(key)
        CACHE_LOOKUPS.labels("hit" if row is not None else "miss").inc()
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def put(self, probe_set_id: str, templates: tuple[str, ...], text: str, row: F32) -> None:
        if not self.size:
            return
        self._rows[(probe_set_id, templates, text)] = row
        self._rows.move_to_end((probe_set_id, templates, text))
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)
        CACHE_ENTRIES.set(len(self._rows))

    def __len__(self) -> int:
        return len(self._rows)
