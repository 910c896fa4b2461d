"""Operating the services: health that follows the backends, Prometheus metrics, JSON logs.

Real processes (``probelog serve``), a real redis-server killed and restarted, real HTTP scrapes
of the metrics endpoint.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probelog.client import ProbeLogClient
from probelog.common.errors import InvalidArgument, NotFound
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.v1 import search_pb2, search_pb2_grpc
from probelog_devstack import free_port, redis_server
from tests.support import mini, procs, stores

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
STORE = "probelog.v1.DescriptorStoreService"
RUNNER = "probelog.v1.ProbeRunnerService"
SEARCH = "probelog.v1.SearchService"
FAST_HEALTH = ["--health-interval-s", "0.2"]


def health(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout} s"
        time.sleep(0.1)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_store_and_runner_health_follow_redis_and_the_store(tmp_path):
    redis = redis_server.start(tmp_path / "redis")
    started: list[procs.Service] = []
    try:
        store = procs.start("store", ["descriptor-store", "--store-url", redis.url, *FAST_HEALTH], tmp_path)
        started.append(store)
        runner = procs.start("runner", [
            "probe-runner", "--runner-url", f"onnx://{tmp_path}", "--store-address", store.address, *FAST_HEALTH,
        ], tmp_path)
        started.append(runner)
        assert health(store.address) == health(store.address, STORE) == SERVING
        assert health(runner.address, RUNNER) == SERVING

        redis.kill()
        wait_until("NOT_SERVING", lambda: health(store.address, STORE) == NOT_SERVING)
        assert health(store.address) == SERVING  # liveness: the process answers, no restart
        # The runner needs the store (its probe images): it follows.
        wait_until("NOT_SERVING", lambda: health(runner.address, RUNNER) == NOT_SERVING)

        redis.restart()
        wait_until("SERVING", lambda: health(store.address, STORE) == SERVING)
        wait_until("SERVING", lambda: health(runner.address, RUNNER) == SERVING)

        down = [line for line in json_lines(store.output()) if "NOT_SERVING" in line["message"]]
        assert down and f"redis at 127.0.0.1:{redis.port}" in down[0]["message"], store.output()[-2000:]
        assert down[0]["level"] == "ERROR" and down[0]["logger"] == "probelog.common.health"
        assert any("SERVING again" in line["message"] for line in json_lines(store.output()))
    finally:
        codes = [s.stop() for s in reversed(started)]
        redis.stop()
    assert codes == [0, 0]


def scrape(port: int) -> dict[str, float]:
    """The metrics endpoint's samples, by their full name with labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.fixture(scope="module")
def observed(mini_world, tmp_path_factory):
    """`probelog serve --embedded` with metrics on and a store directory the test may move."""
    work = tmp_path_factory.mktemp("observed")
    flags = mini.service_flags(mini_world)
    metrics_port = free_port()
    service = procs.start("embedded", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{mini_world.hub}",
        *flags["clip"], *flags["orchestrator"], *FAST_HEALTH,
        "--metrics-listen-address", f"127.0.0.1:{metrics_port}",
    ], work)
    yield service, metrics_port, work / "store"
    assert service.stop() == 0, service.output()[-3000:]


async def test_metrics_count_calls_by_method_and_code_and_logs_carry_the_request_id(observed):
    service, port, _ = observed
    before = scrape(port)
    async with ProbeLogClient(service.address) as client:
        await client.index("matcher")
        with pytest.raises(InvalidArgument):
            await client.search("", top_k=3)
    with grpc.insecure_channel(service.address) as channel:
        request = search_pb2.SearchRequest(text="pizza", top_k=3)
        reply = search_pb2_grpc.SearchServiceStub(channel).Search(
            request, metadata=(("x-request-id", "req-observed-1"),), timeout=30
        )
    assert reply.hits[0].model_id == "matcher"
    after = scrape(port)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    ok = f'probelog_rpc_total{{code="OK",method="Search",service="{SEARCH}"}}'
    bad = f'probelog_rpc_total{{code="INVALID_ARGUMENT",method="Search",service="{SEARCH}"}}'
    assert grew(ok) == 1 and grew(bad) == 1
    assert grew(f'probelog_rpc_duration_seconds_count{{method="Search",service="{SEARCH}"}}') == 2
    assert after[f'probelog_health_serving{{service="{SEARCH}"}}'] == 1
    for stage in ("encode", "rank"):
        assert grew(f'probelog_stage_seconds_count{{rpc="Search",stage="{stage}"}}') == 1
    for stage in ("probe", "descriptors", "store", "searchable"):
        assert grew(f'probelog_stage_seconds_count{{rpc="IndexModel",stage="{stage}"}}') == 1
    assert grew("probelog_probe_images_per_second_count") == 1
    # The file store timed the model's write (its one put_model of this test).
    assert grew('probelog_store_write_seconds_count{backend="file",operation="put_model"}') == 1
    assert grew('probelog_store_write_seconds_sum{backend="file",operation="put_model"}') > 0
    assert grew('probelog_text_cache_lookups_total{result="miss"}') >= 1

    lines = json_lines(service.output())
    access = [line for line in lines if line.get("request_id") == "req-observed-1" and line["logger"] == "probelog.access"]
    assert len(access) == 1, service.output()[-3000:]
    assert access[0]["rpc"] == f"/{SEARCH}/Search" and access[0]["code"] == "OK" and access[0]["duration_ms"] > 0
    refused = [line for line in lines if line.get("code") == "INVALID_ARGUMENT"]
    assert refused and refused[0]["request_id"] and refused[0]["request_id"] != "req-observed-1"
    # Libraries that log through the root logger appear under their own names.
    assert all(line["logger"] != "root" for line in lines)


def test_embedded_health_follows_its_store_directory(observed):
    service, _, store = observed
    assert health(service.address, SEARCH) == SERVING
    moved = store.with_name("store-moved")
    store.rename(moved)
    try:
        wait_until("NOT_SERVING", lambda: health(service.address, SEARCH) == NOT_SERVING)
        assert health(service.address) == SERVING
    finally:
        if store.exists():
            shutil.rmtree(store)
        moved.rename(store)
    wait_until("SERVING", lambda: health(service.address, SEARCH) == SERVING)


async def test_the_redis_store_times_its_reads_and_writes(tmp_path):
    redis = redis_server.start(tmp_path / "redis")
    metrics_port = free_port()
    store = procs.start("store", [
        "descriptor-store", "--store-url", redis.url, "--metrics-listen-address", f"127.0.0.1:{metrics_port}",
    ], tmp_path)
    try:
        before = scrape(metrics_port)
        client = DescriptorStoreClient(grpc.aio.insecure_channel(store.address), store.address)
        try:
            ps, _ = await client.put_probe_set("probes", stores.images())
            await client.put_model(*stores.model(ps.probe_set_id, "timed"))
            assert (await client.get_model(ps.probe_set_id, "timed")).info.model_id == "timed"
            with pytest.raises(NotFound):
                await client.get_model(ps.probe_set_id, "absent")
            listed, _ = await client.list_models(ps.probe_set_id)
            assert [m.model_id for m in listed] == ["timed"]
            await client.delete_model(ps.probe_set_id, "timed")
        finally:
            await client.close()
        after = scrape(metrics_port)
    finally:
        code = store.stop()
        redis.stop()
    assert code == 0

    def grew(kind: str, operation: str, part: str = "count") -> float:
        name = f'probelog_store_{kind}_seconds_{part}{{backend="redis",operation="{operation}"}}'
        return after.get(name, 0.0) - before.get(name, 0.0)

    expected = {
        ("write", "put_probe_set"): 1, ("write", "put_model"): 1, ("write", "delete_model"): 1,
        ("read", "get_model"): 2, ("read", "list_models"): 1,  # the missing model's read counts too
    }
    for (kind, operation), count in expected.items():
        assert grew(kind, operation) == count, (kind, operation)
        assert grew(kind, operation, "sum") > 0
        # A histogram: every call falls under the +Inf bucket, the slowest bucket counts them all.
        bucket = f'probelog_store_{kind}_seconds_bucket{{backend="redis",le="+Inf",operation="{operation}"}}'
        assert after[bucket] - before.get(bucket, 0.0) == count


def test_a_bad_log_format_or_metrics_address_is_one_clear_line(tmp_path):
    result = procs.cli(["serve", "descriptor-store", "--store-url", f"file://{tmp_path}", "--log-format", "xml"])
    assert result.returncode == 2 and "log format must be one of json, text" in result.stderr
    assert "Traceback" not in result.stderr
    result = procs.cli([
        "serve", "descriptor-store", "--store-url", f"file://{tmp_path}", "--port", "0",
        "--metrics-listen-address", "nowhere",
    ])
    assert result.returncode == 1 and "cannot serve metrics on nowhere" in result.stderr
    assert "Traceback" not in result.stderr


def spans_in(text: str) -> list[dict]:
    """The spans a console exporter wrote into a process's output, one JSON object a line."""
    return [line for line in json_lines(text) if "context" in line and "trace_id" in line.get("context", {})]


def test_one_search_is_one_trace_across_the_services(mini_world, tmp_path):
    # Four processes with the console exporter (the standard OTEL_* variables): the orchestrator's
    # Search span and the store's, the encoder's and the ranker's server spans share one trace.
    flags = mini.service_flags(mini_world)
    started: list[procs.Service] = []

    def env(role: str) -> dict[str, str]:
        return procs.test_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME=f"test-{role}")

    try:
        store = procs.start("store", ["descriptor-store", "--store-url", f"file://{tmp_path / 'store'}"], tmp_path, env=env("store"))
        started.append(store)
        encoder = procs.start("encoder", ["clip-encoder", *flags["clip"], "--store-address", store.address], tmp_path, env=env("encoder"))
        started.append(encoder)
        ranker = procs.start("ranker", ["ranker", "--store-address", store.address], tmp_path, env=env("ranker"))
        started.append(ranker)
        orchestrator = procs.start("orchestrator", [
            "orchestrator", *flags["orchestrator"], "--store-address", store.address,
            "--runner-address", f"127.0.0.1:{free_port()}", "--encoder-address", encoder.address,
            "--ranker-addresses", ranker.address,
        ], tmp_path, env=env("orchestrator"))
        started.append(orchestrator)
        with grpc.insecure_channel(orchestrator.address) as channel:
            search_pb2_grpc.SearchServiceStub(channel).Search(search_pb2.SearchRequest(text="pizza", top_k=3), timeout=60)
    finally:
        codes = [s.stop() for s in reversed(started)]
    assert codes == [0, 0, 0, 0]

    (search,) = [s for s in spans_in(orchestrator.output()) if s["name"] == f"/{SEARCH}/Search"]
    trace_id = search["context"]["trace_id"]
    assert search["resource"]["attributes"]["service.name"] == "test-orchestrator"
    for service, method in ((encoder, "ClipEncoderService/ComputeDescriptors"), (ranker, "RankerService/Rank")):
        joined = [s for s in spans_in(service.output()) if s["context"]["trace_id"] == trace_id]
        assert any(s["name"] == f"/probelog.v1.{method}" for s in joined), (method, service.output()[-2000:])
    assert any(s["context"]["trace_id"] == trace_id for s in spans_in(store.output()))


def test_tracing_is_off_without_the_variables_and_a_bad_exporter_is_one_line(tmp_path):
    from probelog.common.errors import FailedPrecondition
    from probelog.common.tracing import exporter_name

    assert exporter_name({}) == "" and exporter_name({"OTEL_TRACES_EXPORTER": "none"}) == ""
    assert exporter_name({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}) == "otlp"
    assert exporter_name({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    with pytest.raises(FailedPrecondition, match="OTEL_TRACES_EXPORTER"):
        exporter_name({"OTEL_TRACES_EXPORTER": "zipkin"})
    result = procs.cli(["serve", "descriptor-store", "--store-url", f"file://{tmp_path}", "--port", "0"],
                       env=procs.test_env(OTEL_TRACES_EXPORTER="zipkin"))
    assert result.returncode == 1 and "OTEL_TRACES_EXPORTER must be one of" in result.stderr
    assert "Traceback" not in result.stderr
