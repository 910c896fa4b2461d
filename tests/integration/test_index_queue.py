"""Bulk indexing on the Redis Streams work queue, end to end on the tiny world.

Redis, tritonserver and the five services run as processes (:class:`DevStack`); the indexing
workers are further orchestrator processes started with ``--index-workers``. ``probelog index
--all`` queues the hub, the workers claim, probe through Triton, write through the store and
acknowledge; a worker killed with SIGKILL while it holds a claim loses nothing (another takes
the claim over); a model that fails is listed with its reason and retried.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time

import pytest
import redis

from probelog.client import ProbeLogClient
from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.probe_runner import triton_repo
from probelog_devstack import free_port
from probelog_devstack.stack import DevStack, ServiceProcess, StackSpec
from tests.support import procs

#: Idle time after which the test's workers take over a dead worker's claim (s).
CLAIM_TIMEOUT_S = 2.0
QUEUE = "{probelog:index}"


@pytest.fixture(scope="module")
def stack(tiny_world, tmp_path_factory):
    """The stack with the queue on its Redis; its orchestrator queues work and runs no worker."""
    spec = StackSpec.from_world(tiny_world, tmp_path_factory.mktemp("queue-stack"), index_queue=True)
    with DevStack(spec) as started:
        yield started
        codes = started.stop()
    assert all(code == 0 for code in codes.values()), {n: s.output()[-2000:] for n, s in started.services.items()}


@pytest.fixture
def fresh_queue(stack):
    """An empty store and queue for each test: the Redis keys are dropped and the stack's
    services keep running (the ranker follows the store's reset)."""
    yield

    async def drop() -> None:
        async with ProbeLogClient(stack.address) as client:
            for model in await client.models():
                await client.delete_model(model.model_id)
    asyncio.run(drop())
    redis.Redis.from_url(stack.redis.url).delete(*(f"{QUEUE}:{k}" for k in ("stream", "queued", "running", "done", "failed", "errors")))


def worker(stack: DevStack, name: str, *extra: str, runner: str = "") -> ServiceProcess:
    """A `probelog serve indexer` process: one indexing worker on the stack's queue."""
    services = stack.services
    process = ServiceProcess(name, [
        "indexer", *stack.spec.orchestrator_flags, "--store-address", services["descriptor-store"].address,
        "--runner-address", runner or services["probe-runner"].address,
        "--encoder-address", services["clip-encoder"].address,
        "--ranker-addresses", services["ranker"].address,
        "--index-queue-url", stack.redis.url,
        "--index-claim-timeout-s", str(CLAIM_TIMEOUT_S), *extra,
    ], free_port(), stack.spec.workdir)
    process.launch()
    process.wait_ready()
    return process


def hub_names(world) -> list[str]:
    return sorted(p.name for p in (world / "hub").iterdir() if (p / "config.pbtxt").is_file())


async def indexed_ids(address: str) -> list[str]:
    async with ProbeLogClient(address) as client:
        return sorted(m.model_id for m in await client.models())


async def wait_for(address: str, done, what: str, log: ServiceProcess, timeout: float = 600.0):
    """Poll the progress RPC until ``done(progress)``; fails with the worker's log after ``timeout``."""
    deadline = time.monotonic() + timeout
    async with ProbeLogClient(address) as client:
        while True:
            progress = await client.indexing_progress()
            if done(progress):
                return progress
            assert time.monotonic() < deadline, f"{what}: {progress}\n{log.output()[-3000:]}"
            await asyncio.sleep(0.2)


def test_index_all_through_two_workers(stack, tiny_world, fresh_queue):
    workers = [worker(stack, "worker-a"), worker(stack, "worker-b")]
    try:
        result = procs.cli(["index", "--all", "--address", stack.address])
        assert result.returncode == 0, result.stderr + "".join(w.output()[-2000:] for w in workers)
        names = hub_names(tiny_world)
        assert f"queued {len(names)} models" in result.stderr
        assert "indexing" in result.stderr  # the progress bar
        # Every model once: the listing has no duplicates and the queue is drained.
        assert asyncio.run(indexed_ids(stack.address)) == names
        status = procs.cli(["index", "--status", "--address", stack.address])
        assert status.returncode == 0, status.stderr
        assert status.stdout.split() == ["queued", "0", "running", "0", "done", str(len(names)), "failed", "0"]
        assert redis.Redis.from_url(stack.redis.url).xlen(f"{QUEUE}:stream") == 0
        # Both workers took part.
        for w in workers:
            assert "index worker" in w.output() and "indexed hub-" in w.output(), w.output()[-2000:]
        # Nothing left to do: a second --all queues nothing.
        again = procs.cli(["index", "--all", "--address", stack.address])
        assert again.returncode == 0 and "queued 0 models" in again.stderr, again.stderr
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0]


def test_a_killed_workers_claim_is_taken_over(stack, tiny_world, fresh_queue):
    # Worker A probes through a runner of its own, which is stopped (SIGSTOP): A claims a model
    # and hangs on it until it is killed.
    services = stack.services
    frozen = ServiceProcess("runner-frozen", [
        "probe-runner", "--runner", stack.triton.url, "--store-address", services["descriptor-store"].address,
    ], free_port(), stack.spec.workdir)
    frozen.launch()
    frozen.wait_ready()
    victim = None
    survivor = None
    try:
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        victim = worker(stack, "worker-a", runner=frozen.address)
        queued = procs.cli(["index", "--all", "--no-wait", "--address", stack.address])
        assert queued.returncode == 0, queued.stderr
        asyncio.run(wait_for(stack.address, lambda p: p.running == 1, "worker A claims", victim))
        claimed = redis.Redis.from_url(stack.redis.url).smembers(f"{QUEUE}:running")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        survivor = worker(stack, "worker-b")
        names = hub_names(tiny_world)
        progress = asyncio.run(wait_for(
            stack.address, lambda p: p.done == len(names), "worker B finishes", survivor
        ))
        assert (progress.queued, progress.running, progress.failed) == (0, 0, 0)
        assert asyncio.run(indexed_ids(stack.address)) == names
        (lost,) = claimed
        assert f"reclaimed {lost.decode()}" in survivor.output(), survivor.output()[-3000:]
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
        frozen.stop()
        if victim is not None and victim.proc.poll() is None:
            victim.stop()
        if survivor is not None:
            assert survivor.stop() == 0


def test_failed_model_is_listed_and_retried(stack, tiny_world, fresh_queue):
    survivor = worker(stack, "worker-a")
    try:
        async def queue_unknown() -> None:
            async with ProbeLogClient(stack.address) as client:
                response = await client.enqueue_indexing(["late-upload"])
                assert (response.enqueued, response.already_queued) == (1, 0)
                with pytest.raises(InvalidArgument):
                    await client.enqueue_indexing()  # nothing named, no --all
                with pytest.raises(InvalidArgument):
                    await client.enqueue_indexing(["bad\nname"])

        asyncio.run(queue_unknown())
        asyncio.run(wait_for(stack.address, lambda p: p.failed == 1, "late-upload fails", survivor))
        status = procs.cli(["index", "--status", "--address", stack.address])
        assert status.returncode == 0, status.stderr
        assert "failed: late-upload: NOT_FOUND:" in status.stderr, status.stderr
        # The model arrives; retrying it indexes it.
        hub = tiny_world / "hub" / "hub-0000"
        triton_repo.write_model(
            "late-upload", hub / "config.pbtxt", [("1", hub / "1" / "model.onnx")], stack.repository, backend="python",
        )
        retried = procs.cli(["index", "--retry-failed", "--address", stack.address])
        assert retried.returncode == 0, retried.stderr + survivor.output()[-2000:]
        assert "queued 1 models" in retried.stderr and "done 1, failed 0" in retried.stderr
        assert asyncio.run(indexed_ids(stack.address)) == ["late-upload"]
    finally:
        assert survivor.stop() == 0
        shutil.rmtree(stack.repository / "late-upload", ignore_errors=True)


def test_auto_indexer_queues_the_models_it_finds(stack, tiny_world, fresh_queue):
    services = stack.services
    auto = ServiceProcess("orchestrator-auto", [
        "orchestrator", *stack.spec.orchestrator_flags, "--store-address", services["descriptor-store"].address,
        "--runner-address", services["probe-runner"].address, "--encoder-address", services["clip-encoder"].address,
        "--ranker-addresses", services["ranker"].address, "--index-queue-url", stack.redis.url,
        "--auto-index", "--auto-index-interval-s", "0.5",
    ], free_port(), stack.spec.workdir)
    auto.launch()
    survivor = None
    try:
        auto.wait_ready()
        survivor = worker(stack, "worker-a")
        names = hub_names(tiny_world)
        progress = asyncio.run(wait_for(auto.address, lambda p: p.done == len(names), "auto-indexed", survivor))
        assert (progress.queued, progress.running, progress.failed) == (0, 0, 0)
        assert asyncio.run(indexed_ids(stack.address)) == names
        assert f"auto-index round: {len(names)} new models queued" in auto.output(), auto.output()[-3000:]
        assert "indexed hub-" in survivor.output()
    finally:
        assert auto.stop() == 0
        if survivor is not None:
            assert survivor.stop() == 0


def test_queue_rpcs_without_a_queue_and_bad_input(stack):
    """An orchestrator without a queue says so, in one line at the CLI."""
    services = stack.services
    plain = ServiceProcess("orchestrator-plain", [
        "orchestrator", *stack.spec.orchestrator_flags, "--store-address", services["descriptor-store"].address,
        "--runner-address", services["probe-runner"].address, "--encoder-address", services["clip-encoder"].address,
        "--ranker-addresses", services["ranker"].address,
    ], free_port(), stack.spec.workdir)
    plain.launch()
    try:
        plain.wait_ready()

        async def calls() -> None:
            async with ProbeLogClient(plain.address) as client:
                assert not (await client.indexing_progress()).queue_enabled
                with pytest.raises(FailedPrecondition, match="no indexing queue"):
                    await client.enqueue_indexing(all_models=True)

        asyncio.run(calls())
        status = procs.cli(["index", "--status", "--address", plain.address])
        assert status.returncode == 1 and status.stderr.strip().splitlines() == [
            "error: the orchestrator has no indexing queue (--index-queue-url)"
        ], status.stderr
        bad = procs.cli(["serve", "indexer", "--port", "0"])
        assert bad.returncode == 1 and "index workers need a work queue" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        assert plain.stop() == 0
