"""The orchestrator's logic: the index path and the search path (docs/design.md).

Index: probe runner -> logits (n_probes x n_logits) -> z-score, top-r, calibration offsets
against the background set -> store (atomically) -> wait until the ranker applied the change.
Search: query text or images -> encoder -> raw descriptor -> ranker -> hits.
TaskSearch: the task's concepts -> encoder -> one batched ranker pass (top-N candidates per
concept) -> per model, the optimal assignment concept -> distinct logit (:mod:`probelog.core.tasks`).
SimilarLogits: a stored logit's descriptor (or each of a model's) -> ranker -> hits (or the
same assignment, the model's logits standing for a task's concepts).

The collaborators are ports (:mod:`probelog.common.ports`): in-process objects in embedded
mode, gRPC clients otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from probelog.common.background import Background, calibration_offsets, encode_background, resolve_k
from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from probelog.common.ids import DEFAULT_PAGE_SIZE, DEFAULT_TOP_K, MAX_RANK_QUERIES, MAX_TOP_K, hash_range_of
from probelog.common.limits import ModelLimits
from probelog.common.ports import (
    Concept,
    DescriptorStore,
    EncoderPort,
    ProbeRunnerPort,
    RankerPort,
    RankResult,
    iter_models,
)
from probelog.common.probe_sets import load_probe_set
from probelog.core.descriptors import zscore
from probelog.core.distance import DEFAULT_R, logit_entries
from probelog.core.tasks import Aggregation, Candidate, ModelMatch, logit_query_descriptor, rank_models
from probelog.orchestrator.config import DEFAULT_TASK_CANDIDATES
from probelog.orchestrator.evidence import EvidenceTarget, ProbeThumbnails, add_evidence, logit_top_probes
from probelog.v1 import probe_runner_pb2, search_pb2, types_pb2

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
    #: Evidence probes per hit (0: none).
    evidence_probes: int = 0


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
class TaskQuery:
    """A validated TaskSearch (the servicer edge builds it; see ``TaskSearchRequest``).

    ``min_coverage`` is resolved (1..len(concepts)); ``depth`` 0 means the engine's default.
    """

    concepts: tuple[Concept, ...]
    min_coverage: int
    top_k: int = DEFAULT_TOP_K
    depth: int = 0
    max_score: float | None = None
    allow_shared: bool = False
    aggregation: Aggregation = Aggregation.MEAN
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    probe_set: str = ""
    prompt_templates: tuple[str, ...] = ()
    #: Evidence probes per assignment (0: none).
    evidence_probes: int = 0


@dataclass(frozen=True)
class SimilarQuery:
    """A validated SimilarLogits: one logit (``logit_index`` set) or a whole model."""

    model_id: str
    logit_index: int | None = None
    top_k: int = DEFAULT_TOP_K
    min_coverage: int = 1
    depth: int = 0
    allow_shared: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    probe_set: str = ""


@dataclass(frozen=True)
class TaskResult:
    """Models ranked for a task (or hits for one logit), and what was searched. Times in µs."""

    models: list[search_pb2.TaskMatch]
    hits: list[types_pb2.Hit]
    probe_set_id: str
    depth: int
    n_logits_searched: int
    n_models_searched: int
    n_models_eligible: int
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
    preprocessing: types_pb2.Preprocessing | None = None
    output_name: str = ""
    output_kind: str = ""


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
    task_candidates : int
        N, candidate logits per concept of a task when the request sets none.
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
        task_candidates: int = DEFAULT_TASK_CANDIDATES,
    ) -> None:
        k = resolve_k(k, len(background))
        self.limits = limits or ModelLimits()
        if not 1 <= task_candidates <= MAX_TOP_K:
            raise ValueError(f"task_candidates must be between 1 and {MAX_TOP_K}, got {task_candidates}")
        self.task_candidates = task_candidates
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
        self.thumbnails = ProbeThumbnails(store)

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

        result = await self.runner.probe(
            model_name,
            request.model_version,
            ps_id,
            timeout=remaining(),
            preprocessing_request=request.preprocessing,
            output_name=request.output_name,
            output_kind_request=request.output_kind,
        )
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
        # The request's labels win over the model's own (its label file or id2label), which are
        # cut to the label limit rather than refused: the caller did not write them.
        labels = labels or tuple(label[: self.limits.max_label_chars] for label in result.model.labels)
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
            preprocessing=result.model.preprocessing,
            output_name=result.model.output_name,
            output_kind=result.model.output_kind,
        )
        info.indexed_at.GetCurrentTime()
        sequence = await self.store.put_model(info, entries, offsets, timeout=remaining())
        stored = time.perf_counter()
        searchable = await self._wait_searchable(model_id, sequence, remaining())
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

    async def _wait_searchable(self, model_id: str, sequence: int, timeout: float | None) -> bool:
        """Wait until the ranker applied change ``sequence`` of ``model_id``'s feed partition."""
        wait = SEARCHABLE_WAIT_S if timeout is None else min(timeout, SEARCHABLE_WAIT_S)
        until = time.perf_counter() + wait
        delay = 0.005
        while True:
            try:
                applied = await self.ranker.applied_sequences(timeout=wait)
                if applied and applied[hash_range_of(model_id, len(applied))] >= sequence:
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
        hits = result.hits[0]
        if query.evidence_probes:
            hits = await self._hits_with_evidence(ps_id, hits, descriptors[0], query.evidence_probes, timeout=left)
        done = time.perf_counter()
        return SearchResult(
            hits=hits,
            probe_set_id=ps_id,
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            partial=result.partial,
            encode_us=_us(encoded - started),
            rank_us=_us(done - encoded),
            total_us=_us(done - started),
        )

    async def _hits_with_evidence(
        self,
        ps_id: str,
        hits: Sequence[types_pb2.Hit],
        descriptor: npt.NDArray[np.float32],
        n: int,
        *,
        timeout: float | None,
    ) -> list[types_pb2.Hit]:
        """Copies of ``hits``, each with its logit's ``n`` best-agreeing probes against the query
        (``descriptor``: its raw descriptor, z-scored here as the ranker does)."""
        query_z = zscore(descriptor[None, :], what="query")[0]
        out = []
        for hit in hits:
            copy = types_pb2.Hit()
            copy.CopyFrom(hit)
            out.append(copy)
        targets = [EvidenceTarget(h, h.model_id, h.logit_index, query_z) for h in out]
        await add_evidence(self.store, ps_id, targets, n, timeout=timeout)
        return out

    async def probe_images(
        self, probe_set: str, indices: Sequence[int], size_px: int, *, timeout: float | None = None
    ) -> tuple[str, list[search_pb2.ProbeImage]]:
        """Thumbnails of a probe set's images, in the order of ``indices``."""
        ps_id = (await self.resolve_probe_set(probe_set)).probe_set_id
        return ps_id, await self.thumbnails.get(ps_id, indices, size_px, timeout=timeout)

    # ------------------------------------------------------------------ tasks and similar logits

    async def _candidates(
        self,
        ps_id: str,
        descriptors: npt.NDArray[np.float32],
        depth: int,
        include: Sequence[str],
        exclude: Sequence[str],
        timeout: float | None,
        *,
        normalized: bool = False,
    ) -> tuple[list[list[types_pb2.Hit]], RankResult]:
        """Every descriptor's top ``depth`` logits: one ranker pass per MAX_RANK_QUERIES descriptors
        (one in all for any task), all logits of a model kept (a concept may need any of them)."""
        hits: list[list[types_pb2.Hit]] = []
        result: RankResult | None = None
        partial = False
        for start in range(0, len(descriptors), MAX_RANK_QUERIES):
            result = await self.ranker.rank(
                ps_id, descriptors[start : start + MAX_RANK_QUERIES], depth,
                include=include, exclude=exclude, normalized=normalized, timeout=timeout,
            )
            hits.extend(result.hits)
            partial |= result.partial
        if result is None:
            raise InvalidArgument("nothing to search for")
        return hits, dataclasses.replace(result, partial=partial)

    async def _assign(
        self,
        per_concept: list[list[types_pb2.Hit]],
        *,
        top_k: int,
        min_coverage: int,
        max_score: float | None,
        allow_shared: bool,
        aggregation: Aggregation,
        exclude: Sequence[str] = (),
    ) -> tuple[list[search_pb2.TaskMatch], int]:
        """Per model, the optimal assignment over the candidates; TaskMatch messages, best first."""
        candidates = [
            [Candidate(i, h.model_id, h.logit_index, h.score, h.rank) for h in hits]
            for i, hits in enumerate(per_concept)
        ]
        matches, n_eligible = await asyncio.to_thread(
            rank_models, candidates, top_k=top_k, min_coverage=min_coverage, max_score=max_score,
            allow_shared=allow_shared, aggregation=aggregation, exclude=exclude,
        )
        return [self._task_match(match, rank, per_concept) for rank, match in enumerate(matches, 1)], n_eligible

    @staticmethod
    def _task_match(match: ModelMatch, rank: int, per_concept: list[list[types_pb2.Hit]]) -> search_pb2.TaskMatch:
        out = search_pb2.TaskMatch(model_id=match.model_id, score=match.score, coverage=match.coverage, rank=rank)
        for i, chosen in enumerate(match.candidates):
            if chosen is None:
                out.assignments.add(concept_index=i)
                continue
            hit = per_concept[i][chosen.rank - 1]
            out.assignments.add(
                concept_index=i, covered=True, logit_index=hit.logit_index, label=hit.label,
                score=hit.score, distance=hit.distance, concept_rank=hit.rank,
            )
        return out

    async def task_search(self, query: TaskQuery, *, timeout: float | None = None) -> TaskResult:
        """Models ranked by how well they cover the whole task (:mod:`probelog.core.tasks`).

        The model score is the mean over the task's concepts of the calibrated score of the
        logit each is assigned (distinct logits unless shared; an uncovered concept counts as
        its worst candidate's score), or the aggregation the query names.
        """
        started = time.perf_counter()
        probe_set = await self.resolve_probe_set(query.probe_set)
        ps_id = probe_set.probe_set_id
        depth = query.depth or self.task_candidates
        descriptors = await self.encoder.compute_descriptors(
            ps_id, list(query.concepts), query.prompt_templates, timeout=timeout
        )
        encoded = time.perf_counter()
        left = None if timeout is None else max(timeout - (encoded - started), 0.001)
        per_concept, ranked = await self._candidates(ps_id, descriptors, depth, query.include, query.exclude, left)
        models, n_eligible = await self._assign(
            per_concept, top_k=query.top_k, min_coverage=query.min_coverage, max_score=query.max_score,
            allow_shared=query.allow_shared, aggregation=query.aggregation,
        )
        if query.evidence_probes:
            queries_z = zscore(descriptors, what="query")
            targets = [
                EvidenceTarget(a, m.model_id, a.logit_index, queries_z[a.concept_index])
                for m in models
                for a in m.assignments
                if a.covered
            ]
            await add_evidence(self.store, ps_id, targets, query.evidence_probes, timeout=left)
        done = time.perf_counter()
        return TaskResult(
            models=models, hits=[], probe_set_id=ps_id, depth=depth,
            n_logits_searched=ranked.n_logits_searched, n_models_searched=ranked.n_models_searched,
            n_models_eligible=n_eligible, partial=ranked.partial,
            encode_us=_us(encoded - started), rank_us=_us(done - encoded), total_us=_us(done - started),
        )

    async def similar_logits(self, query: SimilarQuery, *, timeout: float | None = None) -> TaskResult:
        """Logits (or models) like a stored logit (or model), from the stored descriptors alone.

        Each query logit's descriptor is rebuilt from its stored top-r probes
        (:func:`probelog.core.tasks.logit_query_descriptor`) and searched like a concept: the
        truncated distance on each indexed logit's top-r probes, minus that logit's calibration
        offset. No CLIP is involved. For a whole model its logits are the concepts of a task,
        the model itself left out.
        """
        started = time.perf_counter()
        probe_set = await self.resolve_probe_set(query.probe_set)
        ps_id = probe_set.probe_set_id
        stored = await self.store.get_model(ps_id, query.model_id, include_descriptors=True, timeout=timeout)
        entries = stored.entries
        if entries is None:
            raise FailedPrecondition(f"model {query.model_id!r} has no stored descriptors")
        if query.logit_index is not None and query.logit_index >= entries.n_logits:
            raise InvalidArgument(
                f"model {query.model_id!r} has {entries.n_logits} logits; logit_index {query.logit_index} "
                "is out of range",
                field="logit_index",
            )
        rows = range(entries.n_logits) if query.logit_index is None else [query.logit_index]
        descriptors = np.stack(
            [logit_query_descriptor(entries.top_indices[j], entries.top_values[j], entries.n_probes) for j in rows]
        )
        encoded = time.perf_counter()
        left = None if timeout is None else max(timeout - (encoded - started), 0.001)
        models: list[search_pb2.TaskMatch] = []
        hits: list[types_pb2.Hit] = []
        n_eligible = 0
        if query.logit_index is None:
            depth = query.depth or self.task_candidates
            exclude = (*query.exclude, query.model_id)
            per_logit, ranked = await self._candidates(
                ps_id, descriptors, depth, query.include, exclude, left, normalized=True
            )
            models, n_eligible = await self._assign(
                per_logit, top_k=query.top_k, min_coverage=min(query.min_coverage, entries.n_logits),
                max_score=None, allow_shared=query.allow_shared, aggregation=Aggregation.MEAN,
            )
        else:
            # One more than asked: the query logit itself comes back (first) unless filtered out.
            depth = min(query.top_k + 1, MAX_TOP_K)
            per_logit, ranked = await self._candidates(
                ps_id, descriptors, depth, query.include, query.exclude, left, normalized=True
            )
            others = [
                h for h in per_logit[0] if (h.model_id, h.logit_index) != (query.model_id, query.logit_index)
            ][: query.top_k]
            for rank, h in enumerate(others, start=1):
                hit = types_pb2.Hit()
                hit.CopyFrom(h)
                hit.rank = rank
                hits.append(hit)
        done = time.perf_counter()
        return TaskResult(
            models=models, hits=hits, probe_set_id=ps_id, depth=depth,
            n_logits_searched=ranked.n_logits_searched, n_models_searched=ranked.n_models_searched,
            n_models_eligible=n_eligible, partial=ranked.partial,
            encode_us=_us(encoded - started), rank_us=_us(done - encoded), total_us=_us(done - started),
        )

    # ------------------------------------------------------------------ management

    async def list_models(
        self, probe_set_id: str = "", page_size: int = DEFAULT_PAGE_SIZE, page_token: str = ""
    ) -> tuple[list[types_pb2.ModelInfo], str]:
        probe_set = await self.resolve_probe_set(probe_set_id)
        return await self.store.list_models(probe_set.probe_set_id, page_size=page_size, page_token=page_token)

    async def get_model(
        self, model_id: str, probe_set_id: str = "", top_probes: int = 0
    ) -> tuple[types_pb2.ModelInfo, list[types_pb2.LogitProbes]]:
        """A model's info and, with ``top_probes``, each logit's strongest probes."""
        probe_set = await self.resolve_probe_set(probe_set_id)
        stored = await self.store.get_model(probe_set.probe_set_id, model_id, include_descriptors=top_probes > 0)
        return stored.info, logit_top_probes(stored, top_probes) if top_probes else []

    async def delete_model(self, model_id: str, probe_set_id: str = "", timeout: float | None = None) -> None:
        probe_set = await self.resolve_probe_set(probe_set_id)
        sequence = await self.store.delete_model(probe_set.probe_set_id, model_id, timeout=timeout)
        await self._wait_searchable(model_id, sequence, timeout)

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
