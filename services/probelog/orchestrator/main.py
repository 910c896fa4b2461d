"""Composition root of the orchestrator."""

from __future__ import annotations

import grpc

from probelog.clip_encoder.client import ClipEncoderClient
from probelog.common.background import load_names
from probelog.common.errors import FailedPrecondition
from probelog.common.health import HealthCheck, peer_check, service_name
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.orchestrator.auto_index import AutoIndexer
from probelog.orchestrator.config import PORT, OrchestratorSettings
from probelog.orchestrator.search import SearchEngine
from probelog.orchestrator.servicer import SearchServicer
from probelog.orchestrator.work_queue import IndexQueue, IndexWorker, worker_names
from probelog.probe_runner.client import ProbeRunnerClient
from probelog.ranker.client import RankerClient
from probelog.ranker.sharded import ShardedRanker
from probelog.v1 import clip_encoder_pb2, descriptor_store_pb2, ranker_pb2


async def build(settings: OrchestratorSettings, peers: Peers) -> Built[SearchEngine]:
    """The search engine over its four peers (runner, encoder, store, ranker); with a work
    queue, ``index_workers`` indexing workers on it."""
    if settings.index_workers < 0:
        raise FailedPrecondition(f"index_workers must be 0 or more, got {settings.index_workers}")
    if settings.index_workers and not settings.index_queue_url:
        raise FailedPrecondition("index workers need a work queue: set index_queue_url")
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
    queue = await open_queue(settings)
    if queue is not None:
        closers.append(queue.close)
        for name in worker_names(settings.index_workers):
            worker = IndexWorker(queue, engine, name)
            worker.start()
            closers.append(worker.stop)
    if settings.auto_index:
        indexer = AutoIndexer(engine, settings.auto_index_interval_s, queue=queue)
        indexer.start()
        closers.append(indexer.stop)
    return Built([SearchServicer(engine, settings.model_limits, queue=queue)], engine, closers, list(peers.checks))


async def open_queue(settings: OrchestratorSettings) -> IndexQueue | None:
    """The bulk-indexing queue the settings name, checked (fails fast); None without one."""
    url = settings.index_queue_url
    if not url:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise FailedPrecondition(f"unsupported index queue URL {url!r}: use redis:// or rediss://")
    try:
        queue = IndexQueue.from_url(
            url, cluster=settings.index_queue_cluster, username=settings.index_queue_username,
            password=settings.index_queue_password, tls_ca_file=settings.index_queue_tls_ca_file,
            prefix=settings.index_queue_prefix,
            claim_timeout_s=settings.index_claim_timeout_s, max_attempts=settings.index_max_attempts,
        )
    except ValueError as exc:
        raise FailedPrecondition(f"index queue: {exc}") from None
    await queue.open()
    return queue


def ranker_addresses(settings: OrchestratorSettings) -> list[str]:
    """The ranker shards' addresses: ``ranker_dns`` for each of ``ranker_shards`` ordinals when
    set, else ``ranker_addresses``. gRPC resolves a name again when its connection fails, so a
    shard that restarts at a new IP address is found again under its name."""
    if not settings.ranker_dns and not settings.ranker_shards:
        if not settings.ranker_addresses:
            raise FailedPrecondition("no ranker: set ranker_addresses, or ranker_dns and ranker_shards")
        return list(settings.ranker_addresses)
    if settings.ranker_dns.count("{i}") != 1 or settings.ranker_shards < 1:
        raise FailedPrecondition(
            "ranker_dns needs one {i} (the shard's ordinal) and ranker_shards >= 1, got "
            f"ranker_dns={settings.ranker_dns!r} and ranker_shards={settings.ranker_shards}"
        )
    return [settings.ranker_dns.replace("{i}", str(i)) for i in range(settings.ranker_shards)]


def clients(settings: OrchestratorSettings) -> Peers:
    """gRPC clients of the four peers; a ranker of several shards is fanned out to and merged.

    Health: a search needs the store, the encoder and the ranker (every shard, or one with
    ``allow_partial``); the runner only indexes, so its absence leaves search SERVING."""
    tls = settings.client_tls
    checks: list[HealthCheck] = []

    def channel(address: str, service: str | None = None, role: str = "") -> grpc.aio.Channel:
        opened = create_channel(address, tls)
        if service is not None:
            checks.append(peer_check(opened, service, f"the {role} at {address}"))
        return opened

    store = DescriptorStoreClient(
        channel(settings.store_address, service_name(descriptor_store_pb2, "DescriptorStoreService"), "descriptor store"),
        settings.store_address,
    )
    runner = ProbeRunnerClient(channel(settings.runner_address), settings.runner_address)
    encoder = ClipEncoderClient(
        channel(settings.encoder_address, service_name(clip_encoder_pb2, "ClipEncoderService"), "CLIP encoder"),
        settings.encoder_address,
    )
    ranker_service = service_name(ranker_pb2, "RankerService")
    ranker: RankerClient | ShardedRanker
    addresses = ranker_addresses(settings)
    if len(addresses) == 1:
        ranker = RankerClient(channel(addresses[0], ranker_service, "ranker"), addresses[0])
    else:
        shards = [
            RankerClient(channel(a, None if settings.allow_partial else ranker_service, "ranker shard"), a)
            for a in addresses
        ]
        ranker = ShardedRanker(shards, allow_partial=settings.allow_partial)
    closers = [client.close for client in (store, runner, encoder, ranker)]
    return Peers(store=store, runner=runner, encoder=encoder, ranker=ranker, closers=closers, checks=checks)


async def serve(settings: OrchestratorSettings, ready_file: str = "") -> None:
    built = await build(settings, clients(settings))
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file, checks=built.checks)
