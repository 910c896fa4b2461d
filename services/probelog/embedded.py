"""Embedded mode: the five services' classes wired in one process.

The same classes as the services, chosen by constructor arguments: an on-disk store
(:class:`FileDescriptorStore`) instead of Redis and the in-process ONNX runner instead of Triton.
One gRPC server exposes SearchService (and the four internal services beside it), so clients
cannot tell the difference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probelog.clip_encoder.config import EncoderSettings
from probelog.clip_encoder.encoder import DEFAULT_PROMPT_TEMPLATES, ClipEncoder
from probelog.clip_encoder.main import build_encoder
from probelog.clip_encoder.servicer import ClipEncoderServicer
from probelog.common.background import load_names
from probelog.common.errors import FailedPrecondition
from probelog.common.ports import DescriptorStore
from probelog.common.runtime import run
from probelog.common.server import Servicer
from probelog.common.settings import Settings
from probelog.common.world_layout import NotAWorldError, WorldLayout
from probelog.core.distance import DEFAULT_R
from probelog.descriptor_store.config import StoreSettings
from probelog.descriptor_store.main import open_store
from probelog.descriptor_store.servicer import DescriptorStoreServicer
from probelog.orchestrator.search import SearchEngine
from probelog.orchestrator.servicer import SearchServicer
from probelog.probe_runner.config import RunnerSettings
from probelog.probe_runner.main import open_backend
from probelog.probe_runner.runner import ProbeRunner
from probelog.probe_runner.servicer import ProbeRunnerServicer
from probelog.ranker.ranker import Ranker
from probelog.ranker.servicer import RankerServicer

logger = logging.getLogger(__name__)

PORT = 50051


@dataclass(frozen=True)
class EmbeddedSettings(Settings):
    #: A directory made by ``probelog world build``: fills in every path below that is unset.
    world: str = ""
    store_url: str = "file://.data/store"
    runner_url: str = ""
    onnx_threads: int = 1
    clip_model: str = ""
    clip_pretrained: str = ""
    clip_config: str = ""
    cache_dir: str = "/tmp/probelog-cache"
    prompt_templates: tuple[str, ...] = field(default=DEFAULT_PROMPT_TEMPLATES, metadata={"separator": "|"})
    torch_threads: int = 0
    probe_set_file: str = ""
    default_probe_set: str = ""
    background: str = "imagenet1k"
    #: Background concepts averaged per calibration offset; 0: DEFAULT_CALIBRATION_K, or the
    #: background size when that is smaller.
    calibration_k: int = 0
    r: int = DEFAULT_R
    index_dtype: str = "float16"


def world_defaults(world_dir: str | Path) -> dict[str, Any]:
    """Settings that point embedded mode at a built world: its hub, CLIP, probes, background."""
    layout = WorldLayout.at(Path(world_dir).resolve())
    try:
        meta = layout.info()
    except NotAWorldError as exc:
        raise FailedPrecondition(str(exc)) from None
    clip_name = meta.get("clip_model_name", "")
    values: dict[str, Any] = {
        "runner_url": f"onnx://{layout.hub}",
        "clip_model": clip_name,
        "clip_pretrained": str(layout.clip_checkpoint),
        "clip_config": str(layout.clip_config(clip_name)),
        "probe_set_file": str(layout.probe_set()),
        "background": str(layout.background),
    }
    templates = meta.get("prompt_templates")
    if templates:
        values["prompt_templates"] = tuple(templates)
    return values


def resolve(settings: EmbeddedSettings) -> EmbeddedSettings:
    """Fill unset paths from ``settings.world``."""
    if not settings.world:
        return settings
    defaults = world_defaults(settings.world)
    base = EmbeddedSettings()
    updates = {
        name: value
        for name, value in defaults.items()
        if getattr(settings, name) == getattr(base, name)
    }
    return EmbeddedSettings(**{**settings.__dict__, **updates})


@dataclass
class Embedded:
    """The wired objects of one embedded process."""

    engine: SearchEngine
    store: DescriptorStore
    runner: ProbeRunner
    encoder: ClipEncoder
    ranker: Ranker
    servicers: list[Servicer] = field(default_factory=list)

    async def close(self) -> None:
        await self.ranker.stop()
        await self.runner.backend.close()
        await self.store.close()


async def build(settings: EmbeddedSettings) -> Embedded:
    """Open every part, failing fast with a clear message when one cannot start."""
    settings = resolve(settings)
    if not settings.runner_url:
        raise FailedPrecondition("a model repository is required: --world DIR or --runner-url onnx:///path")
    store, backend_name = await open_store(StoreSettings(store_url=settings.store_url))
    backend = await open_backend(
        RunnerSettings(runner_url=settings.runner_url, onnx_threads=settings.onnx_threads), allow_paths=True
    )
    runner = ProbeRunner(backend, store)
    encoder = await build_encoder(
        EncoderSettings(
            clip_model=settings.clip_model,
            clip_pretrained=settings.clip_pretrained,
            clip_config=settings.clip_config,
            cache_dir=settings.cache_dir,
            prompt_templates=settings.prompt_templates,
            torch_threads=settings.torch_threads,
        ),
        store,
    )
    ranker = Ranker(store, values_dtype=settings.index_dtype)
    await ranker.start()
    engine = SearchEngine(
        runner=runner,
        encoder=encoder,
        store=store,
        ranker=ranker,
        background=load_names(settings.background),
        r=settings.r,
        k=settings.calibration_k or None,
        default_probe_set=settings.default_probe_set,
    )
    if settings.probe_set_file:
        await engine.register_probe_set_file(settings.probe_set_file)
    servicers: list[Servicer] = [
        SearchServicer(engine),
        ProbeRunnerServicer(runner),
        ClipEncoderServicer(encoder),
        DescriptorStoreServicer(store, backend_name),
        RankerServicer(ranker),
    ]
    return Embedded(engine, store, runner, encoder, ranker, servicers)


async def serve(settings: EmbeddedSettings, ready_file: str = "") -> None:
    embedded = await build(settings)
    await run(embedded.servicers, settings, PORT, cleanup=embedded.close, ready_file=ready_file)
