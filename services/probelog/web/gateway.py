"""The web role's one gRPC client: SearchService calls made with the browser's API key.

The key a person entered travels with each call as ``authorization: Bearer <key>``, so the
public API decides what the page may do, exactly as it does for any other client.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from probelog.common.client import remote_errors
from probelog.v1 import clip_encoder_pb2, search_pb2, types_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc


class SearchGateway:
    """SearchService over one channel; every method takes the caller's API key ("" for none)."""

    def __init__(self, channel: grpc.aio.Channel, address: str, *, timeout_s: float = 30.0) -> None:
        self._channel = channel
        self._stub = pb_grpc.SearchServiceStub(channel)
        self.address = address
        self.timeout_s = timeout_s

    async def close(self) -> None:
        await self._channel.close()

    @staticmethod
    def _metadata(key: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key}"),) if key else ()

    async def search(
        self, key: str, *, text: str = "", images: Sequence[bytes] = (), top_k: int, evidence_probes: int
    ) -> search_pb2.SearchResponse:
        request = search_pb2.SearchRequest(top_k=top_k, one_hit_per_model=True, evidence_probes=evidence_probes)
        if images:
            request.images.CopyFrom(clip_encoder_pb2.ImageSet(images=list(images)))
        else:
            request.text = text
        with remote_errors(self.address):
            return await self._stub.Search(request, timeout=self.timeout_s, metadata=self._metadata(key))

    async def model(self, key: str, model_id: str, top_probes: int) -> search_pb2.GetModelResponse:
        request = search_pb2.GetModelRequest(model_id=model_id, top_probes=top_probes)
        with remote_errors(self.address):
            return await self._stub.GetModel(request, timeout=self.timeout_s, metadata=self._metadata(key))

    async def models(self, key: str) -> list[types_pb2.ModelInfo]:
        """Every indexed model of the default probe set (all pages)."""
        out: list[types_pb2.ModelInfo] = []
        token = ""
        while True:
            with remote_errors(self.address):
                response = await self._stub.ListModels(
                    search_pb2.ListModelsRequest(page_size=1000, page_token=token),
                    timeout=self.timeout_s,
                    metadata=self._metadata(key),
                )
            out.extend(response.models)
            token = response.next_page_token
            if not token:
                return out

    async def probe_sets(self, key: str) -> search_pb2.ListProbeSetsResponse:
        with remote_errors(self.address):
            return await self._stub.ListProbeSets(
                search_pb2.ListProbeSetsRequest(), timeout=self.timeout_s, metadata=self._metadata(key)
            )

    async def probe_image(self, key: str, probe_set_id: str, index: int, size_px: int) -> search_pb2.ProbeImage:
        request = search_pb2.GetProbeImagesRequest(probe_set_id=probe_set_id, probe_indices=[index], size_px=size_px)
        with remote_errors(self.address):
            response = await self._stub.GetProbeImages(request, timeout=self.timeout_s, metadata=self._metadata(key))
        return response.images[0]
