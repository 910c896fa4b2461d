"""Composition root of the CLIP encoder."""

from __future__ import annotations

import asyncio

from probelog.clip_encoder.config import PORT, EncoderSettings
from probelog.clip_encoder.encoder import ClipEncoder
from probelog.clip_encoder.servicer import ClipEncoderServicer
from probelog.common.errors import FailedPrecondition
from probelog.common.ports import DescriptorStore
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.descriptor_store.client import DescriptorStoreClient


async def build_encoder(settings: EncoderSettings, probe_sets: DescriptorStore) -> ClipEncoder:
    if not settings.clip_model:
        raise FailedPrecondition("PROBELOG_CLIP_MODEL (--clip-model) is required")
    from probelog.clip_encoder.open_clip import OpenClipEncoder

    model = await asyncio.to_thread(
        OpenClipEncoder,
        settings.clip_model,
        settings.clip_pretrained,
        settings.clip_config,
        settings.torch_threads,
    )
    return ClipEncoder(model, probe_sets, settings.prompt_templates, settings.cache_dir or None)


async def serve(settings: EncoderSettings, ready_file: str = "") -> None:
    store = DescriptorStoreClient(create_channel(settings.store_address, settings.client_tls), settings.store_address)
    encoder = await build_encoder(settings, store)
    await run([ClipEncoderServicer(encoder)], settings, PORT, cleanup=store.close, ready_file=ready_file)
