"""DescriptorStoreService: the gRPC edge over any DescriptorStore backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np

from probelog.common.edge import rpc
from probelog.common.errors import InvalidArgument, ResourceExhausted
from probelog.common.ids import check_page_size
from probelog.common.limits import DEFAULT_MAX_PROBE_SET_BYTES
from probelog.common.ports import ChangeKind, DescriptorStore
from probelog.descriptor_store.records import decode_descriptors, encode_descriptors
from probelog.v1 import descriptor_store_pb2 as pb
from probelog.v1 import descriptor_store_pb2_grpc as pb_grpc
from probelog.v1 import types_pb2

# Images per streamed chunk: 256 probes of 224 x 224 x 3 are 38 MB, under the message limit.
_CHUNK_BYTES = 8 * 1024 * 1024

_CHANGE_KINDS = {
    ChangeKind.PUT: pb.CHANGE_KIND_PUT,
    ChangeKind.DELETE: pb.CHANGE_KIND_DELETE,
    ChangeKind.RESET: pb.CHANGE_KIND_RESET,
}


class DescriptorStoreServicer(pb_grpc.DescriptorStoreServiceServicer):
    SERVICE_NAME = "probelog.v1.DescriptorStoreService"

    def __init__(
        self, store: DescriptorStore, backend: str, *, max_probe_set_bytes: int = DEFAULT_MAX_PROBE_SET_BYTES
    ) -> None:
        self._store = store
        self._backend = backend
        self._max_probe_set_bytes = max_probe_set_bytes

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_DescriptorStoreServiceServicer_to_server(self, server)

    @rpc
    async def PutProbeSet(
        self, request_iterator: AsyncIterator[pb.PutProbeSetRequest], context: grpc.aio.ServicerContext
    ) -> pb.PutProbeSetResponse:
        header: types_pb2.ProbeSetInfo | None = None
        chunks: list[bytes] = []
        received = 0
        limit = self._max_probe_set_bytes
        async for part in request_iterator:
            if part.WhichOneof("part") == "header":
                if header is not None:
                    raise InvalidArgument("PutProbeSet: the header must be sent once, first")
                header = part.header
                declared = header.n_probes * header.height * header.width * (header.channels or 3)
                if declared > limit:
                    raise ResourceExhausted(
                        f"PutProbeSet: a probe set of {declared} bytes exceeds the limit of {limit} bytes"
                    )
            elif part.WhichOneof("part") == "images":
                if header is None:
                    raise InvalidArgument("PutProbeSet: the first message must carry the header")
                received += len(part.images)
                if received > limit:  # refused as the bytes arrive, whatever the header said
                    raise ResourceExhausted(f"PutProbeSet: the stream exceeds the limit of {limit} bytes")
                chunks.append(part.images)
        if header is None:
            raise InvalidArgument("PutProbeSet: no header received")
        shape = (header.n_probes, header.height, header.width, header.channels or 3)
        data = b"".join(chunks)
        if header.channels not in (0, 3) or len(data) != int(np.prod(shape)):
            raise InvalidArgument(
                f"PutProbeSet: received {len(data)} bytes of pixels for a probe set of shape {shape} "
                "(uint8, RGB)"
            )
        images = np.frombuffer(data, dtype=np.uint8).reshape(shape)
        info, created = await self._store.put_probe_set(header.name, images)
        if header.probe_set_id and header.probe_set_id != info.probe_set_id:
            raise InvalidArgument(
                f"PutProbeSet: the images hash to {info.probe_set_id}, not {header.probe_set_id}"
            )
        return pb.PutProbeSetResponse(probe_set=info, created=created)

    @rpc
    async def GetProbeSet(
        self, request: pb.GetProbeSetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetProbeSetResponse]:
        info, images = await self._store.get_probe_set(request.probe_set_id)  # the backend checks the id
        yield pb.GetProbeSetResponse(header=info)
        flat = memoryview(np.ascontiguousarray(images)).cast("B")
        per_image = images[0].nbytes
        step = max(1, _CHUNK_BYTES // per_image) * per_image
        for start in range(0, len(flat), step):
            yield pb.GetProbeSetResponse(images=bytes(flat[start : start + step]))

    @rpc
    async def ListStoredProbeSets(
        self, request: pb.ListStoredProbeSetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStoredProbeSetsResponse:
        return pb.ListStoredProbeSetsResponse(probe_sets=await self._store.list_probe_sets())

    @rpc
    async def PutModelDescriptors(
        self, request: pb.PutModelDescriptorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PutModelDescriptorsResponse:
        probe_set = await self._store.probe_set_info(request.model.probe_set_id)
        entries, offsets = decode_descriptors(request.descriptors, probe_set.n_probes)
        sequence = await self._store.put_model(request.model, entries, offsets)
        return pb.PutModelDescriptorsResponse(sequence=sequence)

    @rpc
    async def GetModelDescriptors(
        self, request: pb.GetModelDescriptorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelDescriptorsResponse:
        stored = await self._store.get_model(
            request.probe_set_id, request.model_id, include_descriptors=request.include_descriptors
        )
        response = pb.GetModelDescriptorsResponse(model=stored.info)
        if stored.entries is not None and stored.offsets is not None:
            response.descriptors.CopyFrom(encode_descriptors(stored.entries, stored.offsets))
        return response

    @rpc
    async def ListStoredModels(
        self, request: pb.ListStoredModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStoredModelsResponse:
        models, token = await self._store.list_models(
            request.probe_set_id, page_size=check_page_size(request.page_size), page_token=request.page_token,
            partitions=list(request.partitions),
        )
        return pb.ListStoredModelsResponse(models=models, next_page_token=token)

    @rpc
    async def DeleteModelDescriptors(
        self, request: pb.DeleteModelDescriptorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteModelDescriptorsResponse:
        sequence = await self._store.delete_model(request.probe_set_id, request.model_id)
        return pb.DeleteModelDescriptorsResponse(sequence=sequence)

    @rpc
    async def WatchChanges(
        self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchChangesResponse]:
        after = list(request.after_sequences) or ([request.after_sequence] if request.after_sequence else [])
        async for change in self._store.watch(after, list(request.partitions)):
            yield pb.WatchChangesResponse(
                sequence=change.sequence,
                kind=_CHANGE_KINDS[change.kind],
                probe_set_id=change.probe_set_id,
                model_id=change.model_id,
                partition=change.partition,
            )

    @rpc
    async def GetStoreStatus(
        self, request: pb.GetStoreStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStoreStatusResponse:
        sequences = await self._store.current_sequences()
        return pb.GetStoreStatusResponse(sequence=sum(sequences), backend=self._backend, sequences=sequences)
