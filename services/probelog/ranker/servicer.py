"""RankerService: the gRPC edge of the ranker."""

from __future__ import annotations

import grpc

from probelog.common import convert
from probelog.common.edge import rpc, time_remaining
from probelog.common.ids import check_probe_set_id, check_top_k
from probelog.ranker.ranker import Ranker
from probelog.v1 import ranker_pb2 as pb
from probelog.v1 import ranker_pb2_grpc as pb_grpc
from probelog.v1 import types_pb2


class RankerServicer(pb_grpc.RankerServiceServicer):
    SERVICE_NAME = "probelog.v1.RankerService"

    def __init__(self, ranker: Ranker) -> None:
        self._ranker = ranker

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_RankerServiceServicer_to_server(self, server)

    @rpc
    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        probe_set_id = check_probe_set_id(request.probe_set_id)
        top_k = check_top_k(request.top_k)
        queries = convert.descriptors_to_array(list(request.queries), what="queries")
        result = await self._ranker.rank(
            probe_set_id,
            queries,
            top_k,
            one_hit_per_model=request.one_hit_per_model,
            include=list(request.include_model_ids),
            exclude=list(request.exclude_model_ids),
            normalized=request.normalized,
            timeout=time_remaining(context),
        )
        return pb.RankResponse(
            results=[types_pb2.QueryHits(hits=h) for h in result.hits],
            n_logits_searched=result.n_logits_searched,
            n_models_searched=result.n_models_searched,
            partial=result.partial,
            shards_answered=result.shards_answered,
            shards_total=result.shards_total,
        )

    @rpc
    async def GetIndexStats(
        self, request: pb.GetIndexStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIndexStatsResponse:
        applied = await self._ranker.applied_sequences()
        response = pb.GetIndexStatsResponse(
            probe_set_id=request.probe_set_id,
            applied_sequence=sum(applied),
            applied_sequences=applied,
            shard_index=self._ranker.shard_index,
            shard_count=self._ranker.shard_count,
            partitions=self._ranker.partitions,
        )
        index = self._ranker.indexes.get(request.probe_set_id) if request.probe_set_id else None
        if index is not None:
            stats = index.stats()
            response.n_logits = stats.n_logits
            response.n_models = stats.n_models
            response.n_probes = stats.n_probes
            response.r = stats.r
            response.index_bytes = stats.index_bytes
        return response
