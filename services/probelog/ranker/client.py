"""A RankerPort backed by a remote RankerService."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np
import numpy.typing as npt

from probelog.common.client import remote_errors
from probelog.common.ports import RankResult
from probelog.v1 import ranker_pb2 as pb
from probelog.v1 import ranker_pb2_grpc as pb_grpc
from probelog.v1 import types_pb2


class RankerClient:
    def __init__(self, channel: grpc.aio.Channel, address: str) -> None:
        self._stub = pb_grpc.RankerServiceStub(channel)
        self._channel = channel
        self.address = address

    async def close(self) -> None:
        await self._channel.close()

    async def rank(
        self,
        probe_set_id: str,
        queries: npt.NDArray[np.float32],
        top_k: int,
        *,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        normalized: bool = False,
        timeout: float | None = None,
    ) -> RankResult:
        request = pb.RankRequest(
            probe_set_id=probe_set_id,
            # tolist(): one C conversion; a numpy row would be converted value by value (6x slower).
            queries=[types_pb2.Descriptor(values=q.tolist()) for q in np.asarray(queries, dtype=np.float32)],
            top_k=top_k,
            one_hit_per_model=one_hit_per_model,
            include_model_ids=list(include),
            exclude_model_ids=list(exclude),
            normalized=normalized,
        )
        with remote_errors(f"the ranker at {self.address}"):
            response = await self._stub.Rank(request, timeout=timeout)
        return RankResult(
            hits=[list(r.hits) for r in response.results],
            n_logits_searched=int(response.n_logits_searched),
            n_models_searched=int(response.n_models_searched),
            partial=response.partial,
            shards_answered=int(response.shards_answered) or 1,
            shards_total=int(response.shards_total) or 1,
        )

    async def applied_sequences(self, *, timeout: float | None = None) -> list[int]:
        with remote_errors(f"the ranker at {self.address}"):
            response = await self._stub.GetIndexStats(pb.GetIndexStatsRequest(), timeout=timeout)
        return [int(s) for s in response.applied_sequences]
