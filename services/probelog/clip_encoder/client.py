"""An EncoderPort backed by a remote ClipEncoderService."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np
import numpy.typing as npt

from probelog.clip_encoder.servicer import concepts_to_proto
from probelog.common import convert
from probelog.common.client import remote_errors
from probelog.common.ports import Concept
from probelog.v1 import clip_encoder_pb2 as pb
from probelog.v1 import clip_encoder_pb2_grpc as pb_grpc


class ClipEncoderClient:
    def __init__(self, channel: grpc.aio.Channel, address: str) -> None:
        self._stub = pb_grpc.ClipEncoderServiceStub(channel)
        self._channel = channel
        self.address = address

    async def close(self) -> None:
        await self._channel.close()

    async def encoder_id(self, *, timeout: float | None = None) -> str:
        # Not cached: a rolled-out encoder with other weights must change the background id.
        with remote_errors(f"the CLIP encoder at {self.address}"):
            info = await self._stub.GetEncoderInfo(pb.GetEncoderInfoRequest(), timeout=timeout)
        return info.encoder_id

    async def compute_descriptors(
        self,
        probe_set_id: str,
        concepts: Sequence[Concept],
        prompt_templates: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> npt.NDArray[np.float32]:
        request = pb.ComputeDescriptorsRequest(
            probe_set_id=probe_set_id,
            concepts=concepts_to_proto(list(concepts)),
            prompt_templates=list(prompt_templates),
        )
        with remote_errors(f"the CLIP encoder at {self.address}"):
            response = await self._stub.ComputeDescriptors(request, timeout=timeout)
        return convert.from_matrix(response.descriptors, what="descriptors")
