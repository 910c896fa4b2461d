"""Embedded mode: the five services built by their own ``build`` functions, in one process.

Each service is built as it is on its own (:func:`probelog.descriptor_store.main.build` and the
others), with the other services' objects as its peers instead of gRPC clients: the store (an
on-disk ``file://`` store by default) feeds the runner (ONNX models run in-process), the encoder
and the ranker, and all four feed the orchestrator. The internal services are wired in process
and never served: the one gRPC port exposes SearchService (with health and reflection) only,
exactly as the orchestrator's port does in a five-process deployment.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from probelog.clip_encoder import main as encoder_main
from probelog.clip_encoder.config import EncoderSettings
from probelog.clip_encoder.encoder import ClipEncoder
from probelog.common.errors import FailedPrecondition
from probelog.common.ports import DescriptorStore
from probelog.common.runtime import run
from probelog.common.server import Servicer
from probelog.common.service import Built, Peers
from probelog.common.settings import Nested
from probelog.common.world_layout import NotAWorldError, WorldLayout
from probelog.descriptor_store import main as store_main
from probelog.descriptor_store.config import StoreSettings
from probelog.orchestrator import main as orchestrator_main
from probelog.orchestrator.config import OrchestratorSettings
from probelog.orchestrator.search import SearchEngine
from probelog.probe_runner import main as runner_main
from probelog.probe_runner.config import RunnerSettings
from probelog.probe_runner.runner import ProbeRunner
from probelog.ranker import main as ranker_main
from probelog.ranker.config import RankerSettings
from probelog.ranker.ranker import Ranker
from probelog.web.config import WebSettings

logger = logging.getLogger(__name__)

PORT = 50051


class EmbeddedSettings(Nested):
    """The five services' settings, nested; built from flat names (``store_url=...``) like the
    flags and environment variables."""

    world: str = Field(
        "",
        description="A directory made by `probelog world build`: fills in every model, CLIP, probe-set and "
        "background setting left unset.",
    )
    store: StoreSettings = Field(default_factory=StoreSettings)
    #: In-process ONNX models (``--onnx-allow-paths`` lets ``probelog index PATH`` name a model
    #: file on the server's disk: local development only).
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    ranker: RankerSettings = Field(default_factory=RankerSettings)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    web_port: int = Field(
        -1, description="The model explorer's port, on the gRPC port's host (0: any free port); -1 serves no page."
    )
    web: WebSettings = Field(default_factory=WebSettings)


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
    """Fill the paths still at their defaults from ``settings.world``."""
    if not settings.world:
        return settings
    current, base = settings.flat_values(), EmbeddedSettings.defaults()
    updates = {name: value for name, value in world_defaults(settings.world).items() if current[name] == base[name]}
    return settings.updated(updates)


@dataclass
class Embedded:
    """The five built services of one embedded process."""

    parts: list[Built[Any]]
    engine: SearchEngine
    store: DescriptorStore
    runner: ProbeRunner
    encoder: ClipEncoder
    ranker: Ranker

    @property
    def servicers(self) -> list[Servicer]:
        """What the public port serves: the orchestrator's SearchService, nothing internal."""
        return list(self.parts[0].servicers)

    async def close(self) -> None:
        for part in self.parts:  # the orchestrator first, the store last
            await part.close()


async def build(settings: EmbeddedSettings) -> Embedded:
    """Build the five services, each through its own ``build``, failing fast with a clear
    message when one cannot start."""
    settings = resolve(settings)
    if not settings.runner.runner_url:
        raise FailedPrecondition("a model repository is required: --world DIR or --runner-url onnx:///path")
    parts: list[Built[Any]] = []
    try:
        store = await store_main.build(settings.store, Peers())
        parts.insert(0, store)
        own = Peers(store=store.core)
        runner = await runner_main.build(settings.runner, own)
        parts.insert(0, runner)
        encoder = await encoder_main.build(settings.encoder, own)
        parts.insert(0, encoder)
        ranker = await ranker_main.build(settings.ranker, own)
        parts.insert(0, ranker)
        orchestrator = await orchestrator_main.build(
            settings.orchestrator,
            Peers(store=store.core, runner=runner.core, encoder=encoder.core, ranker=ranker.core),
        )
        parts.insert(0, orchestrator)
    except BaseException:
        for part in parts:
            await part.close()
        raise
    return Embedded(parts, orchestrator.core, store.core, runner.core, encoder.core, ranker.core)


async def serve(settings: EmbeddedSettings, ready_file: str = "") -> None:
    if not settings.listen_address:  # loopback unless told otherwise (it may run without keys)
        settings = settings.model_copy(update={"listen_address": f"127.0.0.1:{PORT}"})
    if settings.web_port >= 0:
        try:
            from probelog.web import main as web_main
        except ImportError as exc:
            raise FailedPrecondition(f"--web-port needs the web extra (pip install 'probelog[web]'): {exc}") from None
    embedded = await build(settings)

    async def start_web(grpc_port: int) -> Callable[[], Awaitable[None]]:
        # The page calls this server's SearchService over gRPC like any client, so API keys
        # and limits apply to it unchanged.
        host = settings.listen_address.rpartition(":")[0]
        target = "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host
        web = await web_main.WebServer.start(settings.web, f"{host}:{settings.web_port}", f"{target}:{grpc_port}")
        return web.stop

    await run(
        embedded.servicers, settings, PORT, cleanup=embedded.close, ready_file=ready_file,
        checks=[check for part in embedded.parts for check in part.checks],
        on_serving=start_web if settings.web_port >= 0 else None,
    )
