"""ProbeRunnerService: the gRPC edge of the probe runner."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc

from probelog.common import convert
from probelog.common.edge import rpc, time_remaining
from probelog.common.errors import InvalidArgument
from probelog.common.ids import check_probe_set_id
from probelog.probe_runner.runner import ProbeRunner
from probelog.v1 import probe_runner_pb2 as pb
from probelog.v1 import probe_runner_pb2_grpc as pb_grpc


class ProbeRunnerServicer(pb_grpc.ProbeRunnerServiceServicer):
    SERVICE_NAME = "probelog.v1.ProbeRunnerService"

    def __init__(self, runner: ProbeRunner) -> None:
        self._runner = runner

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_ProbeRunnerServiceServicer_to_server(self, server)

    @rpc
    async def ListServedModels(
        self, request: pb.ListServedModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListServedModelsResponse:
        models = await self._runner.list_models(ready_only=request.ready_only)
        return pb.ListServedModelsResponse(models=models)

    @rpc
    async def GetServedModel(
        self, request: pb.GetServedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServedModelResponse:
        if not request.model_name:
            raise InvalidArgument("model_name is required", field="model_name")
        model = await self._runner.backend.describe(request.model_name, request.model_version)
        return pb.GetServedModelResponse(model=model)

    @rpc
    async def LoadServedModel(
        self, request: pb.LoadServedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoadServedModelResponse:
        if not request.model_name:
            raise InvalidArgument("model_name is required", field="model_name")
        return pb.LoadServedModelResponse(model=await self._runner.backend.load(request.model_name))

    @rpc
    async def UnloadServedModel(
        self, request: pb.UnloadServedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnloadServedModelResponse:
        if not request.model_name:
            raise InvalidArgument("model_name is required", field="model_name")
        await self._runner.backend.unload(request.model_name)
        return pb.UnloadServedModelResponse()

    @rpc
    async def Probe(
        self, request: pb.ProbeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProbeResponse]:
        started = time.perf_counter()
        n_probes = 0
        first = True
        if not request.model_name:
            raise InvalidArgument("model_name is required", field="model_name")
        async for model, offset, logits in self._runner.probe_chunks(
            request.model_name,
            request.model_version,
            check_probe_set_id(request.probe_set_id),
            batch_size=request.batch_size,
            timeout=time_remaining(context),
            preprocessing_request=request.preprocessing if request.HasField("preprocessing") else None,
            output_name=request.output_name,
            output_kind_request=request.output_kind,
        ):
            response = pb.ProbeResponse(probe_offset=offset, logits=convert.to_matrix(logits))
            if first:
                response.model.CopyFrom(model)
                first = False
            n_probes += len(logits)
            yield response
        elapsed = time.perf_counter() - started
        yield pb.ProbeResponse(
            probe_offset=n_probes, images_per_second=n_probes / elapsed if elapsed > 0 else 0.0
        )
