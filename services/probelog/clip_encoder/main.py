"""Composition root of the CLIP encoder."""

from __future__ import annotations

import asyncio

from probelog.clip_encoder.config import PORT, EncoderSettings
from probelog.clip_encoder.encoder import ClipEncoder
from probelog.clip_encoder.servicer import ClipEncoderServicer
from probelog.common.errors import FailedPrecondition
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient


async def build(settings: EncoderSettings, peers: Peers) -> Built[ClipEncoder]:
    """The CLIP encoder; its peer is the store (probe images to embed)."""
    store = need(peers.store, "descriptor store")
    if not settings.clip_model:
        raise FailedPrecondition("PROBELOG_CLIP_MODEL (--clip-model) is required")
    if settings.text_cache_size < 0:
        raise FailedPrecondition(f"text_cache_size must be >= 0, got {settings.text_cache_size}")
    try:
        from probelog.clip_encoder.open_clip import OpenClipEncoder

        model = await asyncio.to_thread(
            OpenClipEncoder,
            settings.clip_model,
            settings.clip_pretrained,
            settings.clip_config,
            settings.torch_threads,
            device=settings.clip_device,
            cache_dir=settings.clip_weights_dir,
        )
    except ImportError as exc:  # torch or open_clip missing: an image built without the clip extra
        raise FailedPrecondition(f"the CLIP encoder needs the clip extra (pip install 'probelog[clip]'): {exc}") from None
    encoder = ClipEncoder(
        model,
        store,
        settings.prompt_templates,
        settings.cache_dir or None,
        limits=settings.query_limits,
        text_cache_size=settings.text_cache_size,
    )
    return Built([ClipEncoderServicer(encoder)], encoder, [*peers.closers, encoder.close])


async def serve(settings: EncoderSettings, ready_file: str = "") -> None:
    store = DescriptorStoreClient(create_channel(settings.store_address, settings.client_tls), settings.store_address)
    built = await build(settings, Peers(store=store, closers=[store.close]))
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file, checks=built.checks)
