"""A ProbeRunnerPort backed by a remote ProbeRunnerService."""

from __future__ import annotations

import grpc
import numpy as np

from probelog.common import convert
from probelog.common.client import remote_errors
from probelog.common.errors import Unavailable
from probelog.common.ports import ProbeResult
from probelog.v1 import probe_runner_pb2 as pb
from probelog.v1 import probe_runner_pb2_grpc as pb_grpc
from probelog.v1 import types_pb2


class ProbeRunnerClient:
    def __init__(self, channel: grpc.aio.Channel, address: str) -> None:
        self._stub = pb_grpc.ProbeRunnerServiceStub(channel)
        self._channel = channel
        self.address = address

    async def close(self) -> None:
        await self._channel.close()

    async def list_models(
        self, *, ready_only: bool = False, timeout: float | None = None
    ) -> list[pb.ServedModel]:
        with remote_errors(f"the probe runner at {self.address}"):
            response = await self._stub.ListServedModels(
                pb.ListServedModelsRequest(ready_only=ready_only), timeout=timeout
            )
        return list(response.models)

    async def probe(
        self,
        model_name: str,
        model_version: str,
        probe_set_id: str,
        *,
        batch_size: int = 0,
        timeout: float | None = None,
        preprocessing_request: types_pb2.Preprocessing | None = None,
        output_name: str = "",
        output_kind_request: str = "",
    ) -> ProbeResult:
        request = pb.ProbeRequest(
            model_name=model_name,
            model_version=model_version,
            probe_set_id=probe_set_id,
            batch_size=batch_size,
            preprocessing=preprocessing_request,
            output_name=output_name,
            output_kind=output_kind_request,
        )
        model: pb.ServedModel | None = None
        chunks = []
        images_per_second = 0.0
        with remote_errors(f"the probe runner at {self.address}"):
            async for response in self._stub.Probe(request, timeout=timeout):
                if response.HasField("model"):
                    model = response.model
                if response.HasField("logits"):
                    chunks.append(convert.from_matrix(response.logits, what="logits"))
                if response.images_per_second:
                    images_per_second = response.images_per_second
        if model is None or not chunks:
            raise Unavailable(f"{self.address} ended the probe stream without logits")
        return ProbeResult(model=model, logits=np.concatenate(chunks), images_per_second=images_per_second)
