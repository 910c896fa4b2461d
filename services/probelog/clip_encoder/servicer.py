"""ClipEncoderService: the gRPC edge of the CLIP encoder."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from probelog.clip_encoder.encoder import ClipEncoder
from probelog.common import convert
from probelog.common.edge import rpc
from probelog.common.errors import InvalidArgument
from probelog.common.ids import check_probe_set_id
from probelog.common.ports import Concept, ImageQuery
from probelog.v1 import clip_encoder_pb2 as pb
from probelog.v1 import clip_encoder_pb2_grpc as pb_grpc

#: Most texts or concepts per request (a 1,000-name background set fits).
MAX_ITEMS = 4096


def concepts_from_proto(concepts: Sequence[pb.Concept]) -> list[Concept]:
    out: list[Concept] = []
    for i, concept in enumerate(concepts):
        kind = concept.WhichOneof("concept")
        if kind == "text":
            out.append(concept.text)
        elif kind == "images":
            out.append(ImageQuery(tuple(concept.images.images)))
        else:
            raise InvalidArgument(f"concept {i} has neither text nor images")
    return out


def concepts_to_proto(concepts: list[Concept] | tuple[Concept, ...]) -> list[pb.Concept]:
    return [
        pb.Concept(text=c) if isinstance(c, str) else pb.Concept(images=pb.ImageSet(images=c.images))
        for c in concepts
    ]


class ClipEncoderServicer(pb_grpc.ClipEncoderServiceServicer):
    SERVICE_NAME = "probelog.v1.ClipEncoderService"

    def __init__(self, encoder: ClipEncoder) -> None:
        self._encoder = encoder

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_ClipEncoderServiceServicer_to_server(self, server)

    @rpc
    async def EncodeText(
        self, request: pb.EncodeTextRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncodeTextResponse:
        if not request.texts or len(request.texts) > MAX_ITEMS:
            raise InvalidArgument(f"texts: between 1 and {MAX_ITEMS} texts are required")
        emb = await self._encoder.encode_text(list(request.texts), list(request.prompt_templates))
        return pb.EncodeTextResponse(embeddings=convert.to_matrix(emb))

    @rpc
    async def EncodeImages(
        self, request: pb.EncodeImagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncodeImagesResponse:
        if not request.images or len(request.images) > MAX_ITEMS:
            raise InvalidArgument(f"images: between 1 and {MAX_ITEMS} images are required")
        emb = await self._encoder.encode_images(list(request.images))
        return pb.EncodeImagesResponse(embeddings=convert.to_matrix(emb))

    @rpc
    async def ComputeDescriptors(
        self, request: pb.ComputeDescriptorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ComputeDescriptorsResponse:
        if len(request.concepts) > MAX_ITEMS:
            raise InvalidArgument(f"concepts: at most {MAX_ITEMS} per request")
        descriptors = await self._encoder.compute_descriptors(
            check_probe_set_id(request.probe_set_id),
            concepts_from_proto(request.concepts),
            list(request.prompt_templates),
        )
        return pb.ComputeDescriptorsResponse(descriptors=convert.to_matrix(descriptors))

    @rpc
    async def GetEncoderInfo(
        self, request: pb.GetEncoderInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetEncoderInfoResponse:
        enc = self._encoder.encoder
        return pb.GetEncoderInfoResponse(
            model_name=enc.model_name,
            pretrained=enc.pretrained,
            embedding_dim=enc.embedding_dim,
            default_prompt_templates=self._encoder.prompt_templates,
            encoder_id=await self._encoder.encoder_id(),
        )
