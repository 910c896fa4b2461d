"""The orchestrator's logic: the index path and the search path (docs/design.md).

Index: probe runner -> logits (n_probes x n_logits) -> z-score, top-r, calibration offsets
against the background set -> store (atomically) -> wait until the ranker applied the change.
Search: query text or images -> encoder -> raw descriptor -> ranker -> hits.

The collaborators are ports (:mod:`probelog.common.ports`): in-process objects in embedded
mode, gRPC clients otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probelog.common.background import Background, calibration_offsets, encode_background, resolve_k
from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from probelog.common.ids import DEFAULT_PAGE_SIZE, DEFAULT_TOP_K
from probelog.common.limits import ModelLimits
from probelog.common.ports import (
    Concept,
    DescriptorStore,
    EncoderPort,
    ProbeRunnerPort,
    RankerPort,
    iter_models,
)
from probelog.common.probe_sets import load_probe_set
from probelog.core.distance import DEFAULT_R, logit_entries
from probelog.v1 import probe_runner_pb2, types_pb2

logger = logging.getLogger(__name__)

#: How long IndexModel waits for the ranker to pick a change up when the caller set no deadline.
SEARCHABLE_WAIT_S = 30.0


def _us(seconds: float) -> int:
    return max(0, int(seconds * 1e6))


@dataclass(frozen=True)
class SearchQuery:
    """A validated search (the servicer edge builds it; see ``SearchRequest`` in search.proto).

    ``probe_set`` is a probe-set id, a name, or "" for the default.
    """

    concept: Concept
    top_k: int = DEFAULT_TOP_K
    one_hit_per_model: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    probe_set: str = ""
    prompt_templates: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    """Hits of one search, best first, and what was searched. Times in microseconds."""

    hits: list[types_pb2.Hit]
    probe_set_id: str
    n_logits_searched: int
    n_models_searched: int
    partial: bool
    encode_us: int
    rank_us: int
    total_us: int


@dataclass(frozen=True)
class IndexRequest:
    """A validated IndexModel call: ``model_id`` is set (the edge derives it from the name)."""

    model_name: str
    model_id: str
    model_version: str = ""
    probe_set: str = ""
    labels: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexResult:
    """The stored model and where the time went (microseconds)."""

    model: types_pb2.ModelInfo
    images_per_second: float
    searchable: bool
    probe_us: int
    descriptors_us: int
    store_us: int
    searchable_us: int
    total_us: int


class SearchEngine:
    """Composes runner, encoder, store and ranker into Search and IndexModel.

    Parameters
    ----------
    background : sequence of str
        Background concept names for hubness calibration (paper Eq. 6).
    r : int
        Probes kept per logit.
    k : int, optional
        Background concepts averaged into each offset; see
        :func:`probelog.common.background.resolve_k`.
    default_probe_set : str
        Probe-set id or name used when a request names none.
    limits : ModelLimits, optional
        What a model may bring: its logit count is checked once it has been probed (labels and
        metadata at the servicer edge, before).
    """

    def __init__(
        self,
        *,
        runner: ProbeRunnerPort,
        encoder: EncoderPort,
        store: DescriptorStore,
        ranker: RankerPort,
        background: Sequence[str],
        r: int = DEFAULT_R,
        k: int | None = None,
        default_probe_set: str = "",
        limits: ModelLimits | None = None,
    ) -> None:
        k = resolve_k(k, len(background))
        self.limits = limits or ModelLimits()
        self.runner = runner
        self.encoder = encoder
        self.store = store
        self.ranker = ranker
        self.background_names = list(background)
        self.r = r
        self.k = k
        self.default_probe_set = default_probe_set
        self._backgrounds: dict[tuple[str, str], Background] = {}
        self._background_lock = asyncio.Lock()

    async def register_probe_set_file(self, path: str | Path) -> types_pb2.ProbeSetInfo:
        """Register a probe-set file (idempotent) and make it the default if none is set."""
        probe_set = await asyncio.to_thread(load_probe_set, path)
        info, created = await self.store.put_probe_set(probe_set.name, probe_set.images)
        logger.info(
            "probe set %s (%s) %s", info.probe_set_id, info.name, "registered" if created else "present"
        )
        if not self.default_probe_set:
            self.default_probe_set = info.probe_set_id
        return info

    async def resolve_probe_set(self, requested: str) -> types_pb2.ProbeSetInfo:
        """The probe set a request means: its id, else the default, else the only one."""
        wanted = requested or self.default_probe_set
        if wanted.startswith("ps-"):
            return await self.store.probe_set_info(wanted)
        probe_sets = await self.store.list_probe_sets()
        if wanted:
            named = [p for p in probe_sets if p.name == wanted]
            if not named:
                raise NotFound(f"no probe set is named {wanted!r}")
            return max(named, key=lambda p: p.created_at.ToNanoseconds())
        if not probe_sets:
            raise FailedPrecondition("no probe set is registered; register one before indexing or searching")
        if len(probe_sets) > 1:
            raise FailedPrecondition(
                f"{len(probe_sets)} probe sets are registered and no default is configured; "
                "name one with probe_set_id"
            )
        return probe_sets[0]

    # ------------------------------------------------------------------ background

    async def background(self, probe_set_id: str, timeout: float | None = None) -> Background:
        """Z-scored background descriptors for a probe set, computed once per encoder."""
        encoder_id = await self.encoder.encoder_id(timeout=timeout)
        key = (probe_set_id, encoder_id)
        async with self._background_lock:
            if key not in self._backgrounds:
                self._backgrounds[key] = await encode_background(
                    self.encoder, probe_set_id, self.background_names, encoder_id=encoder_id, timeout=timeout
                )
                logger.info(
                    "background set of %d concepts ready for %s", len(self.background_names), probe_set_id
                )
            return self._backgrounds[key]

    # ------------------------------------------------------------------ index path

    async def index_model(self, request: IndexRequest, *, timeout: float | None = None) -> IndexResult:
        started = time.perf_counter()
        deadline = None if timeout is None else started + timeout
        model_name, model_id, labels = request.model_name, request.model_id, request.labels
        probe_set = await self.resolve_probe_set(request.probe_set)
        ps_id = probe_set.probe_set_id

        def remaining() -> float | None:
            if deadline is None:
                return None
            left = deadline - time.perf_counter()
            if left <= 0:
                raise DeadlineExceeded(f"indexing {model_id!r} ran out of time")
            return left

        result = await self.runner.probe(model_name, request.model_version, ps_id, timeout=remaining())
        probed = time.perf_counter()
        logits = np.asarray(result.logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[0] != probe_set.n_probes:
            raise FailedPrecondition(
                f"model {model_name!r} returned {logits.shape[0]} rows for {probe_set.n_probes} probes"
            )
        n_logits = logits.shape[1]
        self.limits.check_logits(n_logits, model_name)
        if labels and len(labels) != n_logits:
            raise InvalidArgument(f"{len(labels)} labels given for a model with {n_logits} logits", field="labels")
        if self.r > probe_set.n_probes:
            raise FailedPrecondition(f"r = {self.r} exceeds the probe set's {probe_set.n_probes} probes")
        background = await self.background(ps_id, timeout=remaining())
        try:
            entries = await asyncio.to_thread(logit_entries, logits.T, self.r)
        except ValueError as exc:
            raise FailedPrecondition(f"model {model_id!r} cannot be indexed: {exc}; nothing was stored") from None
        offsets = await asyncio.to_thread(calibration_offsets, entries, background, self.k)
        described = time.perf_counter()
        info = types_pb2.ModelInfo(
            model_id=model_id,
            probe_set_id=ps_id,
            n_logits=n_logits,
            labels=list(labels),
            metadata=dict(request.metadata),
            source=types_pb2.ModelSource(model_name=model_name, model_version=result.model.version),
            r=self.r,
            calibration=types_pb2.Calibration(
                background_id=background.background_id, n_background=background.size, k=self.k
            ),
        )
        info.indexed_at.GetCurrentTime()
        sequence = await self.store.put_model(info, entries, offsets, timeout=remaining())
        stored = time.perf_counter()
        searchable = await self._wait_searchable(sequence, remaining())
        done = time.perf_counter()
        logger.info(
            "indexed %s (%d logits) in %.2f s (probe %.2f s at %.0f images/s)",
            model_id, n_logits, done - started, probed - started, result.images_per_second,
        )
        return IndexResult(
            model=info,
            images_per_second=result.images_per_second,
            searchable=searchable,
            probe_us=_us(probed - started),
            descriptors_us=_us(described - probed),
            store_us=_us(stored - described),
            searchable_us=_us(done - stored) if searchable else 0,
            total_us=_us(done - started),
        )

    async def _wait_searchable(self, sequence: int, timeout: float | None) -> bool:
        wait = SEARCHABLE_WAIT_S if timeout is None else min(timeout, SEARCHABLE_WAIT_S)
        until = time.perf_counter() + wait
        delay = 0.005
        while True:
            try:
                if await self.ranker.applied_sequence(timeout=wait) >= sequence:
                    return True
            except Unavailable as exc:
                # The change is committed; the ranker will load it when it is back. The caller
                # learns so from ``searchable`` rather than from an error.
                logger.warning("change %d is stored; the ranker cannot say whether it applied it: %s", sequence, exc)
                return False
            if time.perf_counter() + delay > until:
                logger.warning("change %d not yet applied by the ranker after %.1f s", sequence, wait)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    # ------------------------------------------------------------------ search path

    async def search(self, query: SearchQuery, *, timeout: float | None = None) -> SearchResult:
        started = time.perf_counter()
        probe_set = await self.resolve_probe_set(query.probe_set)
        ps_id = probe_set.probe_set_id
        descriptors = await self.encoder.compute_descriptors(
            ps_id, [query.concept], query.prompt_templates, timeout=timeout
        )
        encoded = time.perf_counter()
        left = None if timeout is None else max(timeout - (encoded - started), 0.001)
        result = await self.ranker.rank(
            ps_id,
            descriptors,
            query.top_k,
            one_hit_per_model=query.one_hit_per_model,
            include=query.include,
            exclude=query.exclude,
            timeout=left,
        )
        done = time.perf_counter()
        return SearchResult(
            hits=result.hits[0],
            probe_set_id=ps_id,
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            partial=result.partial,
            encode_us=_us(encoded - started),
            rank_us=_us(done - encoded),
            total_us=_us(done - started),
        )

    # ------------------------------------------------------------------ management

    async def list_models(
        self, probe_set_id: str = "", page_size: int = DEFAULT_PAGE_SIZE, page_token: str = ""
    ) -> tuple[list[types_pb2.ModelInfo], str]:
        probe_set = await self.resolve_probe_set(probe_set_id)
        return await self.store.list_models(probe_set.probe_set_id, page_size=page_size, page_token=page_token)

    async def get_model(self, model_id: str, probe_set_id: str = "") -> types_pb2.ModelInfo:
        probe_set = await self.resolve_probe_set(probe_set_id)
        return (await self.store.get_model(probe_set.probe_set_id, model_id)).info

    async def delete_model(self, model_id: str, probe_set_id: str = "", timeout: float | None = None) -> None:
        probe_set = await self.resolve_probe_set(probe_set_id)
        sequence = await self.store.delete_model(probe_set.probe_set_id, model_id, timeout=timeout)
        await self._wait_searchable(sequence, timeout)

    async def list_source_models(
        self, probe_set_id: str = ""
    ) -> list[tuple[probe_runner_pb2.ServedModel, bool]]:
        """The runner's models, each with whether the store has it under its name."""
        probe_set = await self.resolve_probe_set(probe_set_id)
        served = await self.runner.list_models()
        indexed = {i.model_id async for page in iter_models(self.store, probe_set.probe_set_id) for i in page}
        return [(m, m.name in indexed) for m in served]

    async def list_probe_sets(self) -> tuple[list[types_pb2.ProbeSetInfo], str]:
        probe_sets = await self.store.list_probe_sets()
        try:
            default = (await self.resolve_probe_set("")).probe_set_id
        except (FailedPrecondition, NotFound):
            default = ""
        return probe_sets, default
