"""Composition root of the orchestrator."""

from __future__ import annotations

import grpc

from probelog.clip_encoder.client import ClipEncoderClient
from probelog.common.background import load_names
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.orchestrator.auto_index import AutoIndexer
from probelog.orchestrator.config import PORT, OrchestratorSettings
from probelog.orchestrator.search import SearchEngine
from probelog.orchestrator.servicer import SearchServicer
from probelog.probe_runner.client import ProbeRunnerClient
from probelog.ranker.client import RankerClient
from probelog.ranker.sharded import ShardedRanker


async def build(settings: OrchestratorSettings, peers: Peers) -> Built[SearchEngine]:
    """The search engine over its four peers (runner, encoder, store, ranker)."""
    engine = SearchEngine(
        runner=need(peers.runner, "probe runner"),
        encoder=need(peers.encoder, "CLIP encoder"),
        store=need(peers.store, "descriptor store"),
        ranker=need(peers.ranker, "ranker"),
        background=load_names(settings.background),
        r=settings.r,
        k=settings.calibration_k or None,
        default_probe_set=settings.default_probe_set,
        limits=settings.model_limits,
        task_candidates=settings.task_candidates,
    )
    if settings.probe_set_file:
        await engine.register_probe_set_file(settings.probe_set_file)
    closers = list(peers.closers)
    if settings.auto_index:
        indexer = AutoIndexer(engine, settings.auto_index_interval_s)
        indexer.start()
        closers.append(indexer.stop)
    return Built([SearchServicer(engine, settings.model_limits)], engine, closers)


def clients(settings: OrchestratorSettings) -> Peers:
    """gRPC clients of the four peers; a ranker of several shards is fanned out to and merged."""
    tls = settings.client_tls

    def channel(address: str) -> grpc.aio.Channel:
        return create_channel(address, tls)

    store = DescriptorStoreClient(channel(settings.store_address), settings.store_address)
    runner = ProbeRunnerClient(channel(settings.runner_address), settings.runner_address)
    encoder = ClipEncoderClient(channel(settings.encoder_address), settings.encoder_address)
    ranker: RankerClient | ShardedRanker
    if len(settings.ranker_addresses) == 1:
        address = settings.ranker_addresses[0]
        ranker = RankerClient(channel(address), address)
    else:
        ranker = ShardedRanker(
            [RankerClient(channel(a), a) for a in settings.ranker_addresses],
            allow_partial=settings.allow_partial,
        )
    closers = [client.close for client in (store, runner, encoder, ranker)]
    return Peers(store=store, runner=runner, encoder=encoder, ranker=ranker, closers=closers)


async def serve(settings: OrchestratorSettings, ready_file: str = "") -> None:
    built = await build(settings, clients(settings))
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file)
