"""SearchService: the public gRPC API.

Each request is checked here, once, into the engine's typed request (:class:`SearchQuery`,
:class:`IndexRequest`); the engine's results become protobuf here too.
"""

from __future__ import annotations

import math
from pathlib import Path

import grpc

from probelog.common.edge import rpc, time_remaining
from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.common.ids import MAX_TOP_K, check_model_id, check_page_size, check_probe_set_id, check_top_k
from probelog.common.limits import ModelLimits
from probelog.common.observe import PROBE_RATE, observe_stages
from probelog.common.ports import Concept, ImageQuery
from probelog.core.tasks import Aggregation
from probelog.orchestrator.evidence import check_evidence_probes, check_probe_indices, check_thumbnail_px
from probelog.orchestrator.search import (
    IndexRequest,
    SearchEngine,
    SearchQuery,
    SimilarQuery,
    TaskQuery,
    TaskResult,
)
from probelog.orchestrator.work_queue import IndexQueue, enqueue_models, redis_errors
from probelog.v1 import search_pb2 as pb
from probelog.v1 import search_pb2_grpc as pb_grpc

#: Deadlines applied when the caller sets none.
SEARCH_TIMEOUT_S = 30.0
INDEX_TIMEOUT_S = 900.0


def probe_set_field(value: str) -> str:
    """A probe-set id (checked for its form), a probe-set name, or "" for the default."""
    return check_probe_set_id(value) if value.startswith("ps-") else value


def search_query(request: pb.SearchRequest) -> SearchQuery:
    """The checked form of a SearchRequest."""
    kind = request.WhichOneof("query")
    concept: Concept
    if kind == "text":
        if not request.text.strip():
            raise InvalidArgument("the query text is empty", field="text")
        concept = request.text
    elif kind == "images":
        if not request.images.images:
            raise InvalidArgument("an image query needs at least one image", field="images.images")
        concept = ImageQuery(tuple(request.images.images))
    else:
        raise InvalidArgument("a query needs text or images", field="query")
    return SearchQuery(
        concept=concept,
        top_k=check_top_k(request.top_k),
        one_hit_per_model=request.one_hit_per_model,
        include=tuple(request.include_model_ids),
        exclude=tuple(request.exclude_model_ids),
        probe_set=probe_set_field(request.probe_set_id),
        prompt_templates=tuple(request.prompt_templates),
        evidence_probes=check_evidence_probes(request.evidence_probes),
    )


#: Concepts a task may have.
MIN_TASK_CONCEPTS, MAX_TASK_CONCEPTS = 2, 1000
AGGREGATIONS = {
    pb.TASK_AGGREGATION_UNSPECIFIED: Aggregation.MEAN,
    pb.TASK_AGGREGATION_MEAN: Aggregation.MEAN,
    pb.TASK_AGGREGATION_WORST: Aggregation.WORST,
    pb.TASK_AGGREGATION_MEAN_RANK: Aggregation.MEAN_RANK,
}


def task_concept(concept: pb.TaskConcept, i: int) -> Concept:
    kind = concept.WhichOneof("concept")
    if kind == "text":
        if not concept.text.strip():
            raise InvalidArgument(f"the text of concept {i} is empty", field=f"concepts[{i}].text")
        return concept.text
    if kind == "images":
        if not concept.images.images:
            raise InvalidArgument(f"concept {i} has no images", field=f"concepts[{i}].images.images")
        return ImageQuery(tuple(concept.images.images))
    raise InvalidArgument(f"concept {i} needs text or images", field=f"concepts[{i}]")


def candidate_depth(value: int) -> int:
    """A request's candidate depth (0: the engine's default)."""
    if value > MAX_TOP_K:
        raise InvalidArgument(f"candidate_depth must be at most {MAX_TOP_K}, got {value}", field="candidate_depth")
    return int(value)


def task_query(request: pb.TaskSearchRequest) -> TaskQuery:
    """The checked form of a TaskSearchRequest."""
    n = len(request.concepts)
    if not MIN_TASK_CONCEPTS <= n <= MAX_TASK_CONCEPTS:
        raise InvalidArgument(
            f"a task has between {MIN_TASK_CONCEPTS} and {MAX_TASK_CONCEPTS} concepts, got {n}", field="concepts"
        )
    if request.min_coverage > n:
        raise InvalidArgument(
            f"min_coverage {request.min_coverage} exceeds the task's {n} concepts", field="min_coverage"
        )
    max_score = request.max_score if request.HasField("max_score") else None
    if max_score is not None and not math.isfinite(max_score):
        raise InvalidArgument("max_score must be finite", field="max_score")
    if request.aggregation not in AGGREGATIONS:
        raise InvalidArgument(f"unknown aggregation {request.aggregation}", field="aggregation")
    return TaskQuery(
        concepts=tuple(task_concept(c, i) for i, c in enumerate(request.concepts)),
        min_coverage=request.min_coverage or n,
        top_k=check_top_k(request.top_k),
        depth=candidate_depth(request.candidate_depth),
        max_score=max_score,
        allow_shared=request.allow_shared_logits,
        aggregation=AGGREGATIONS[request.aggregation],
        include=tuple(request.include_model_ids),
        exclude=tuple(request.exclude_model_ids),
        probe_set=probe_set_field(request.probe_set_id),
        prompt_templates=tuple(request.prompt_templates),
        evidence_probes=check_evidence_probes(request.evidence_probes),
    )


def similar_query(request: pb.SimilarLogitsRequest) -> SimilarQuery:
    """The checked form of a SimilarLogitsRequest."""
    return SimilarQuery(
        model_id=check_model_id(request.model_id),
        logit_index=request.logit_index if request.HasField("logit_index") else None,
        top_k=check_top_k(request.top_k),
        min_coverage=request.min_coverage or 1,
        depth=candidate_depth(request.candidate_depth),
        allow_shared=request.allow_shared_logits,
        include=tuple(request.include_model_ids),
        exclude=tuple(request.exclude_model_ids),
        probe_set=probe_set_field(request.probe_set_id),
    )


def _timings(result: TaskResult, rpc: str) -> pb.StageTimings:
    """The response's stage timings, also recorded in the metrics."""
    observe_stages(rpc, encode=result.encode_us, rank=result.rank_us)
    return pb.StageTimings(encode_us=result.encode_us, rank_us=result.rank_us, total_us=result.total_us)


def index_request(request: pb.IndexModelRequest, limits: ModelLimits | None = None) -> IndexRequest:
    """The checked form of an IndexModelRequest; the model id defaults to the model's name
    (a file's stem for a path). Labels and metadata are checked against ``limits`` here, before
    the model is probed."""
    limits = limits or ModelLimits()
    name = request.model_name
    if not name:
        raise InvalidArgument("model_name is required", field="model_name")
    model_id = request.model_id or (Path(name).stem if name.startswith("/") else name)
    return IndexRequest(
        model_name=name,
        model_id=check_model_id(model_id, field="model_id" if request.model_id else "model_name"),
        model_version=request.model_version,
        probe_set=probe_set_field(request.probe_set_id),
        labels=limits.check_labels(request.labels),
        metadata=limits.check_metadata(request.metadata),
        preprocessing=request.preprocessing if request.HasField("preprocessing") else None,
        output_name=request.output_name,
        output_kind=request.output_kind,
    )


class SearchServicer(pb_grpc.SearchServiceServicer):
    SERVICE_NAME = "probelog.v1.SearchService"

    def __init__(
        self, engine: SearchEngine, limits: ModelLimits | None = None, queue: IndexQueue | None = None
    ) -> None:
        self._engine = engine
        self._limits = limits or ModelLimits()
        self._queue = queue

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_SearchServiceServicer_to_server(self, server)

    @rpc
    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        result = await self._engine.search(search_query(request), timeout=time_remaining(context, SEARCH_TIMEOUT_S))
        observe_stages("Search", encode=result.encode_us, rank=result.rank_us)
        return pb.SearchResponse(
            hits=result.hits,
            probe_set_id=result.probe_set_id,
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            partial=result.partial,
            timings=pb.StageTimings(encode_us=result.encode_us, rank_us=result.rank_us, total_us=result.total_us),
        )

    @rpc
    async def IndexModel(
        self, request: pb.IndexModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.IndexModelResponse:
        result = await self._engine.index_model(index_request(request, self._limits), timeout=time_remaining(context, INDEX_TIMEOUT_S))
        observe_stages(
            "IndexModel", probe=result.probe_us, descriptors=result.descriptors_us, store=result.store_us,
            searchable=result.searchable_us,
        )
        PROBE_RATE.observe(result.images_per_second)
        return pb.IndexModelResponse(
            model=result.model,
            timings=pb.IndexTimings(
                probe_us=result.probe_us,
                descriptors_us=result.descriptors_us,
                store_us=result.store_us,
                searchable_us=result.searchable_us,
                total_us=result.total_us,
            ),
            images_per_second=result.images_per_second,
            searchable=result.searchable,
        )

    @rpc
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        models, token = await self._engine.list_models(
            probe_set_field(request.probe_set_id), check_page_size(request.page_size), request.page_token
        )
        return pb.ListModelsResponse(models=models, next_page_token=token)

    @rpc
    async def GetModel(self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext) -> pb.GetModelResponse:
        model_id = check_model_id(request.model_id)
        model, logits = await self._engine.get_model(
            model_id, probe_set_field(request.probe_set_id), check_evidence_probes(request.top_probes, field="top_probes")
        )
        return pb.GetModelResponse(model=model, logits=logits)

    @rpc
    async def DeleteModel(
        self, request: pb.DeleteModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteModelResponse:
        await self._engine.delete_model(
            check_model_id(request.model_id),
            probe_set_field(request.probe_set_id),
            timeout=time_remaining(context, SEARCH_TIMEOUT_S),
        )
        return pb.DeleteModelResponse()

    @rpc
    async def ListProbeSets(
        self, request: pb.ListProbeSetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProbeSetsResponse:
        probe_sets, default = await self._engine.list_probe_sets()
        return pb.ListProbeSetsResponse(probe_sets=probe_sets, default_probe_set_id=default)

    @rpc
    async def ListSourceModels(
        self, request: pb.ListSourceModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSourceModelsResponse:
        served = await self._engine.list_source_models(probe_set_field(request.probe_set_id))
        return pb.ListSourceModelsResponse(
            models=[
                pb.SourceModel(model_name=m.name, model_version=m.version, state=m.state, indexed=indexed)
                for m, indexed in served
            ]
        )

    @rpc
    async def TaskSearch(
        self, request: pb.TaskSearchRequest, context: grpc.aio.ServicerContext
    ) -> pb.TaskSearchResponse:
        result = await self._engine.task_search(task_query(request), timeout=time_remaining(context, SEARCH_TIMEOUT_S))
        return pb.TaskSearchResponse(
            models=result.models,
            probe_set_id=result.probe_set_id,
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            n_models_eligible=result.n_models_eligible,
            timings=_timings(result, "TaskSearch"),
            partial=result.partial,
            candidate_depth=result.depth,
        )

    @rpc
    async def SimilarLogits(
        self, request: pb.SimilarLogitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SimilarLogitsResponse:
        result = await self._engine.similar_logits(
            similar_query(request), timeout=time_remaining(context, SEARCH_TIMEOUT_S)
        )
        return pb.SimilarLogitsResponse(
            hits=result.hits,
            models=result.models,
            probe_set_id=result.probe_set_id,
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            timings=_timings(result, "SimilarLogits"),
            partial=result.partial,
        )

    @rpc
    async def GetProbeImages(
        self, request: pb.GetProbeImagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProbeImagesResponse:
        probe_set_id, images = await self._engine.probe_images(
            probe_set_field(request.probe_set_id),
            check_probe_indices(request.probe_indices),
            check_thumbnail_px(request.size_px),
            timeout=time_remaining(context, SEARCH_TIMEOUT_S),
        )
        return pb.GetProbeImagesResponse(probe_set_id=probe_set_id, images=images)

    @rpc
    async def EnqueueIndexing(
        self, request: pb.EnqueueIndexingRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnqueueIndexingResponse:
        if self._queue is None:
            raise FailedPrecondition("this orchestrator has no indexing queue: start it with --index-queue-url")
        with redis_errors():
            enqueued, left_out = await enqueue_models(
                self._engine, self._queue, list(request.model_names), all_models=request.all,
                reindex=request.reindex, retry_failed=request.retry_failed,
                probe_set=probe_set_field(request.probe_set_id),
            )
        return pb.EnqueueIndexingResponse(enqueued=enqueued, already_queued=left_out)

    @rpc
    async def GetIndexingProgress(
        self, request: pb.GetIndexingProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIndexingProgressResponse:
        if self._queue is None:
            return pb.GetIndexingProgressResponse(queue_enabled=False)
        with redis_errors():
            progress = await self._queue.progress(request.max_failures)
        return pb.GetIndexingProgressResponse(
            queue_enabled=True, queued=progress.queued, running=progress.running, done=progress.done,
            failed=progress.failed,
            failures=[pb.IndexingFailure(model_name=n, reason=r) for n, r in progress.failures.items()],
        )
