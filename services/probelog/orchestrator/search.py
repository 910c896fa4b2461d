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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probelog.common.background import Background, calibration_offsets, encode_background, resolve_k
from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from probelog.common.ids import check_model_id, check_probe_set_id
from probelog.common.ports import (
    Concept,
    DescriptorStore,
    EncoderPort,
    ImageQuery,
    ProbeRunnerPort,
    RankerPort,
    iter_models,
)
from probelog.common.probe_sets import load_probe_set
from probelog.core.distance import DEFAULT_R, logit_entries
from probelog.v1 import search_pb2, types_pb2

logger = logging.getLogger(__name__)

MAX_TOP_K = 1000
#: How long IndexModel waits for the ranker to pick a change up when the caller set no deadline.
SEARCHABLE_WAIT_S = 30.0


def _us(seconds: float) -> int:
    return max(0, int(seconds * 1e6))


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
    ) -> None:
        k = resolve_k(k, len(background))
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
            check_probe_set_id(wanted)
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

    async def index_model(
        self,
        model_name: str,
        *,
        model_version: str = "",
        model_id: str = "",
        probe_set_id: str = "",
        labels: Sequence[str] = (),
        metadata: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> search_pb2.IndexModelResponse:
        started = time.perf_counter()
        deadline = None if timeout is None else started + timeout
        if not model_name:
            raise InvalidArgument("model_name is required")
        model_id = check_model_id(model_id or (Path(model_name).stem if model_name.startswith("/") else model_name))
        probe_set = await self.resolve_probe_set(probe_set_id)
        ps_id = probe_set.probe_set_id

        def remaining() -> float | None:
            if deadline is None:
                return None
            left = deadline - time.perf_counter()
            if left <= 0:
                raise DeadlineExceeded(f"indexing {model_id!r} ran out of time")
            return left

        result = await self.runner.probe(model_name, model_version, ps_id, timeout=remaining())
        probed = time.perf_counter()
        logits = np.asarray(result.logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[0] != probe_set.n_probes:
            raise FailedPrecondition(
                f"model {model_name!r} returned {logits.shape[0]} rows for {probe_set.n_probes} probes"
            )
        n_logits = logits.shape[1]
        if labels and len(labels) != n_logits:
            raise InvalidArgument(f"{len(labels)} labels given for a model with {n_logits} logits")
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
            metadata=metadata or {},
            source=types_pb2.ModelSource(model_name=model_name, model_version=result.model.version),
            r=self.r,
            calibration=types_pb2.Calibration(
                background_id=background.background_id, n_background=len(background.z), k=self.k
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
        return search_pb2.IndexModelResponse(
            model=info,
            timings=search_pb2.IndexTimings(
                probe_us=_us(probed - started),
                descriptors_us=_us(described - probed),
                store_us=_us(stored - described),
                searchable_us=_us(done - stored) if searchable else 0,
                total_us=_us(done - started),
            ),
            images_per_second=result.images_per_second,
            searchable=searchable,
        )

    async def _wait_searchable(self, sequence: int, timeout: float | None) -> bool:
        wait = SEARCHABLE_WAIT_S if timeout is None else min(timeout, SEARCHABLE_WAIT_S)
        until = time.perf_counter() + wait
        delay = 0.005
        while True:
            if await self.ranker.applied_sequence(timeout=wait) >= sequence:
                return True
            if time.perf_counter() + delay > until:
                logger.warning("change %d not yet applied by the ranker after %.1f s", sequence, wait)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    # ------------------------------------------------------------------ search path

    async def search(
        self,
        query: Concept,
        *,
        top_k: int = 10,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        probe_set_id: str = "",
        prompt_templates: Sequence[str] = (),
        timeout: float | None = None,
    ) -> search_pb2.SearchResponse:
        started = time.perf_counter()
        if isinstance(query, str):
            if not query.strip():
                raise InvalidArgument("the query text is empty")
        elif isinstance(query, ImageQuery) and not query.images:
            raise InvalidArgument("an image query needs at least one image")
        top_k = top_k or 10
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidArgument(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        probe_set = await self.resolve_probe_set(probe_set_id)
        ps_id = probe_set.probe_set_id
        descriptors = await self.encoder.compute_descriptors(
            ps_id, [query], prompt_templates, timeout=timeout
        )
        encoded = time.perf_counter()
        left = None if timeout is None else max(timeout - (encoded - started), 0.001)
        result = await self.ranker.rank(
            ps_id,
            descriptors,
            top_k,
            one_hit_per_model=one_hit_per_model,
            include=include,
            exclude=exclude,
            timeout=left,
        )
        done = time.perf_counter()
        return search_pb2.SearchResponse(
            hits=result.hits[0],
            probe_set_id=ps_id,
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            partial=result.partial,
            timings=search_pb2.StageTimings(
                encode_us=_us(encoded - started), rank_us=_us(done - encoded), total_us=_us(done - started)
            ),
        )

    # ------------------------------------------------------------------ management

    async def list_models(
        self, probe_set_id: str = "", page_size: int = 100, page_token: str = ""
    ) -> tuple[list[types_pb2.ModelInfo], str]:
        if page_size > 1000:
            raise InvalidArgument("page_size must be at most 1000")
        probe_set = await self.resolve_probe_set(probe_set_id)
        return await self.store.list_models(
            probe_set.probe_set_id, page_size=page_size or 100, page_token=page_token
        )

    async def get_model(self, model_id: str, probe_set_id: str = "") -> types_pb2.ModelInfo:
        check_model_id(model_id)
        probe_set = await self.resolve_probe_set(probe_set_id)
        return (await self.store.get_model(probe_set.probe_set_id, model_id)).info

    async def delete_model(self, model_id: str, probe_set_id: str = "", timeout: float | None = None) -> None:
        check_model_id(model_id)
        probe_set = await self.resolve_probe_set(probe_set_id)
        sequence = await self.store.delete_model(probe_set.probe_set_id, model_id, timeout=timeout)
        await self._wait_searchable(sequence, timeout)

    async def list_source_models(self, probe_set_id: str = "") -> list[search_pb2.SourceModel]:
        """The runner's models, each marked indexed when the store has it under its name."""
        probe_set = await self.resolve_probe_set(probe_set_id)
        served = await self.runner.list_models()
        indexed = {i.model_id async for page in iter_models(self.store, probe_set.probe_set_id) for i in page}
        return [
            search_pb2.SourceModel(
                model_name=m.name, model_version=m.version, state=m.state, indexed=m.name in indexed
            )
            for m in served
        ]

    async def list_probe_sets(self) -> tuple[list[types_pb2.ProbeSetInfo], str]:
        probe_sets = await self.store.list_probe_sets()
        try:
            default = (await self.resolve_probe_set("")).probe_set_id
        except (FailedPrecondition, NotFound):
            default = ""
        return probe_sets, default
