"""A DescriptorStore backed by a remote DescriptorStoreService."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import grpc
import numpy as np
import numpy.typing as npt

from probelog.common.client import remote_errors
from probelog.common.errors import Unavailable
from probelog.common.ports import Change, ChangeKind, StoredModel
from probelog.core.distance import LogitEntries
from probelog.descriptor_store.records import decode_descriptors, encode_descriptors
from probelog.v1 import descriptor_store_pb2 as pb
from probelog.v1 import descriptor_store_pb2_grpc as pb_grpc
from probelog.v1 import types_pb2

_KINDS = {
    pb.CHANGE_KIND_PUT: ChangeKind.PUT,
    pb.CHANGE_KIND_DELETE: ChangeKind.DELETE,
    pb.CHANGE_KIND_RESET: ChangeKind.RESET,
}

_UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


class DescriptorStoreClient:
    """Implements :class:`~probelog.common.ports.DescriptorStore` over gRPC."""

    def __init__(self, channel: grpc.aio.Channel, address: str) -> None:
        self._stub = pb_grpc.DescriptorStoreServiceStub(channel)
        self._channel = channel
        self.address = address
        self._probe_sets: dict[str, types_pb2.ProbeSetInfo] = {}

    async def close(self) -> None:
        await self._channel.close()

    async def put_probe_set(
        self, name: str, images: npt.NDArray[np.uint8], *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, bool]:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        n, h, w, c = images.shape

        async def parts() -> AsyncIterator[pb.PutProbeSetRequest]:
            yield pb.PutProbeSetRequest(
                header=types_pb2.ProbeSetInfo(name=name, n_probes=n, height=h, width=w, channels=c)
            )
            flat = memoryview(images).cast("B")
            for start in range(0, len(flat), _UPLOAD_CHUNK_BYTES):
                yield pb.PutProbeSetRequest(images=bytes(flat[start : start + _UPLOAD_CHUNK_BYTES]))

        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.PutProbeSet(parts(), timeout=timeout)
        return response.probe_set, response.created

    async def probe_set_info(
        self, probe_set_id: str, *, timeout: float | None = None
    ) -> types_pb2.ProbeSetInfo:
        if probe_set_id not in self._probe_sets:
            info, _ = await self.get_probe_set(probe_set_id, timeout=timeout, header_only=True)
            self._probe_sets[probe_set_id] = info
        return self._probe_sets[probe_set_id]

    async def get_probe_set(
        self, probe_set_id: str, *, timeout: float | None = None, header_only: bool = False
    ) -> tuple[types_pb2.ProbeSetInfo, npt.NDArray[np.uint8]]:
        header: types_pb2.ProbeSetInfo | None = None
        chunks: list[bytes] = []
        with remote_errors(f"the descriptor store at {self.address}"):
            call = self._stub.GetProbeSet(pb.GetProbeSetRequest(probe_set_id=probe_set_id), timeout=timeout)
            async for part in call:
                if part.WhichOneof("part") == "header":
                    header = part.header
                    if header_only:
                        call.cancel()
                        break
                else:
                    chunks.append(part.images)
        if header is None:
            raise Unavailable(f"{self.address} sent no probe-set header")
        shape = (header.n_probes, header.height, header.width, header.channels)
        if header_only:
            return header, np.empty((0, *shape[1:]), dtype=np.uint8)
        images = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(shape)
        return header, images

    async def list_probe_sets(self, *, timeout: float | None = None) -> list[types_pb2.ProbeSetInfo]:
        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.ListStoredProbeSets(pb.ListStoredProbeSetsRequest(), timeout=timeout)
        return list(response.probe_sets)

    async def put_model(
        self,
        info: types_pb2.ModelInfo,
        entries: LogitEntries,
        offsets: npt.NDArray[np.float32],
        *,
        timeout: float | None = None,
    ) -> int:
        request = pb.PutModelDescriptorsRequest(model=info, descriptors=encode_descriptors(entries, offsets))
        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.PutModelDescriptors(request, timeout=timeout)
        return int(response.sequence)

    async def get_model(
        self,
        probe_set_id: str,
        model_id: str,
        *,
        include_descriptors: bool = False,
        timeout: float | None = None,
    ) -> StoredModel:
        request = pb.GetModelDescriptorsRequest(
            probe_set_id=probe_set_id, model_id=model_id, include_descriptors=include_descriptors
        )
        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.GetModelDescriptors(request, timeout=timeout)
        if not include_descriptors:
            return StoredModel(info=response.model)
        info = await self.probe_set_info(probe_set_id, timeout=timeout)
        entries, offsets = decode_descriptors(response.descriptors, info.n_probes)
        return StoredModel(info=response.model, entries=entries, offsets=offsets)

    async def list_models(
        self,
        probe_set_id: str,
        *,
        page_size: int = 100,
        page_token: str = "",
        partitions: Sequence[int] = (),
        timeout: float | None = None,
    ) -> tuple[list[types_pb2.ModelInfo], str]:
        request = pb.ListStoredModelsRequest(
            probe_set_id=probe_set_id, page_size=page_size, page_token=page_token, partitions=partitions
        )
        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.ListStoredModels(request, timeout=timeout)
        return list(response.models), response.next_page_token

    async def delete_model(
        self, probe_set_id: str, model_id: str, *, timeout: float | None = None
    ) -> int:
        request = pb.DeleteModelDescriptorsRequest(probe_set_id=probe_set_id, model_id=model_id)
        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.DeleteModelDescriptors(request, timeout=timeout)
        return int(response.sequence)

    async def current_sequences(self, *, timeout: float | None = None) -> list[int]:
        with remote_errors(f"the descriptor store at {self.address}"):
            response = await self._stub.GetStoreStatus(pb.GetStoreStatusRequest(), timeout=timeout)
        return [int(s) for s in response.sequences]

    async def watch(self, after: Sequence[int] = (), partitions: Sequence[int] = ()) -> AsyncGenerator[Change, None]:
        request = pb.WatchChangesRequest(after_sequences=after, partitions=partitions)
        with remote_errors(f"the descriptor store at {self.address}"):
            async for change in self._stub.WatchChanges(request):
                yield Change(
                    sequence=int(change.sequence),
                    kind=_KINDS.get(change.kind, ChangeKind.RESET),
                    probe_set_id=change.probe_set_id,
                    model_id=change.model_id,
                    partition=int(change.partition),
                )
