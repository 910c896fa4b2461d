"""SearchService: the public gRPC API."""

from __future__ import annotations

import grpc

from probelog.common.edge import rpc, time_remaining
from probelog.common.errors import InvalidArgument
from probelog.common.ports import Concept, ImageQuery
from probelog.orchestrator.search import SearchEngine
from probelog.v1 import search_pb2 as pb
from probelog.v1 import search_pb2_grpc as pb_grpc

#: Deadlines applied when the caller sets none.
SEARCH_TIMEOUT_S = 30.0
INDEX_TIMEOUT_S = 900.0


class SearchServicer(pb_grpc.SearchServiceServicer):
    SERVICE_NAME = "probelog.v1.SearchService"

    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_SearchServiceServicer_to_server(self, server)

    @rpc
    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        kind = request.WhichOneof("query")
        query: Concept
        if kind == "text":
            query = request.text
        elif kind == "images":
            query = ImageQuery(tuple(request.images.images))
        else:
            raise InvalidArgument("a query needs text or images")
        return await self._engine.search(
            query,
            top_k=request.top_k,
            one_hit_per_model=request.one_hit_per_model,
            include=list(request.include_model_ids),
            exclude=list(request.exclude_model_ids),
            probe_set_id=request.probe_set_id,
            prompt_templates=list(request.prompt_templates),
            timeout=time_remaining(context, SEARCH_TIMEOUT_S),
        )

    @rpc
    async def IndexModel(
        self, request: pb.IndexModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.IndexModelResponse:
        return await self._engine.index_model(
            request.model_name,
            model_version=request.model_version,
            model_id=request.model_id,
            probe_set_id=request.probe_set_id,
            labels=list(request.labels),
            metadata=dict(request.metadata),
            timeout=time_remaining(context, INDEX_TIMEOUT_S),
        )

    @rpc
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        models, token = await self._engine.list_models(
            request.probe_set_id, request.page_size, request.page_token
        )
        return pb.ListModelsResponse(models=models, next_page_token=token)

    @rpc
    async def GetModel(self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext) -> pb.GetModelResponse:
        return pb.GetModelResponse(model=await self._engine.get_model(request.model_id, request.probe_set_id))

    @rpc
    async def DeleteModel(
        self, request: pb.DeleteModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteModelResponse:
        await self._engine.delete_model(
            request.model_id, request.probe_set_id, timeout=time_remaining(context, SEARCH_TIMEOUT_S)
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
        return pb.ListSourceModelsResponse(models=await self._engine.list_source_models(request.probe_set_id))
