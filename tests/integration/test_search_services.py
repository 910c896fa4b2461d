"""The five services as five processes, and the embedded server as one, on the same hub: both
give the same ranking, through the CLI and the Python client."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probelog.client import ProbeLogClient
from probelog.common.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.support import mini, procs

QUERIES = [*mini.CONCEPTS, "cat", "a blue square"]


@pytest.fixture(scope="module")
def five(mini_world, tmp_path_factory):
    work = tmp_path_factory.mktemp("five")
    flags = mini.service_flags(mini_world)
    started: list[procs.Service] = []
    try:
        store = procs.start("store", ["descriptor-store", "--store-url", f"file://{work / 'store'}"], work)
        started.append(store)
        started.append(procs.start("runner", ["probe-runner", "--runner-url", f"onnx://{mini_world.hub}",
                                              "--store-address", store.address], work))
        started.append(procs.start("encoder", ["clip-encoder", *flags["clip"], "--store-address", store.address], work))
        started.append(procs.start("ranker", ["ranker", "--store-address", store.address], work))
        runner, encoder, ranker = started[1:]
        orchestrator = procs.start("orchestrator", [
            "orchestrator", *flags["orchestrator"], "--store-address", store.address,
            "--runner-address", runner.address, "--encoder-address", encoder.address,
            "--ranker-addresses", ranker.address,
        ], work)
        started.append(orchestrator)
        yield {s.name: s for s in started}
    finally:
        codes = {s.name: s.stop() for s in reversed(started)}
    assert all(code == 0 for code in codes.values()), codes


def index_all(address: str) -> procs.subprocess.CompletedProcess[str]:
    return procs.cli(["index", "--all", "--quiet", "--address", address])


def search_json(address: str, query: str) -> list[tuple[str, int]]:
    result = procs.cli(["search", query, "--top-k", "8", "--json", "--address", address])
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout).get("hits", [])
    return [(h["modelId"], int(h.get("logitIndex", 0))) for h in hits]


def test_five_processes_and_embedded_give_the_same_ranking(five, embedded_process):
    orchestrator = five["orchestrator"].address
    embedded = embedded_process
    for address in (orchestrator, embedded.address):
        result = index_all(address)
        # The two unindexable models are reported (the embedded server is shared with other
        # tests, which may have indexed the good ones already); every good one ends indexed.
        assert result.returncode == 1, result.stderr
        assert "bad-output: FAILED_PRECONDITION" in result.stderr
        assert "dead-logit: FAILED_PRECONDITION" in result.stderr
        listed = procs.cli(["models", "--json", "--address", address])
        assert sorted(m["modelId"] for m in json.loads(listed.stdout)) == sorted(mini.MiniWorld.GOOD_MODELS)
    for query in QUERIES:
        assert search_json(orchestrator, query) == search_json(embedded.address, query), query
    j = mini.CONCEPTS.index("pizza")
    assert set(search_json(orchestrator, "pizza")[:2]) == {("matcher", j), ("shuffled", mini.SHUFFLE.index(j))}


def test_cli_table_and_models(five, mini_world, tmp_path):
    address = five["orchestrator"].address
    index_all(address)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"models": {"matcher": {"concepts": mini.CONCEPTS}}}))
    table = procs.cli(["search", "fire truck", "--top-k", "3", "--truth", str(truth), "--address", address])
    assert table.returncode == 0, table.stderr
    assert "matcher" in table.stdout and "fire truck" in table.stdout.split("\n", 2)[2]
    # Evidence through the five processes: the orchestrator reads each hit's model from the
    # store service over gRPC.
    explained = procs.cli(["search", "fire truck", "--top-k", "2", "--evidence", "3", "--address", address])
    assert explained.returncode == 0, explained.stderr
    lines = [line for line in explained.stdout.splitlines() if "evidence (probe: logit z / query z)" in line]
    assert len(lines) == 2 and all(line.count("/") == 4 for line in lines)
    too_many = procs.cli(["search", "fire truck", "--evidence", "500", "--address", address])
    assert too_many.returncode != 0 and "evidence_probes" in too_many.stderr
    assert "Traceback" not in too_many.stderr and len(too_many.stderr.strip().splitlines()) == 1
    models = procs.cli(["models", "--address", address])
    assert models.returncode == 0
    assert all(name in models.stdout for name in mini.MiniWorld.GOOD_MODELS)
    # Only the models not indexed yet are tried again: the two that cannot be indexed.
    again = index_all(address)
    assert "indexed 0 of 2 models" in again.stderr


def task_json(address: str, *args: str) -> list[tuple[str, int, list[int]]]:
    result = procs.cli([*args, "--json", "--address", address])
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    models = [
        (m["modelId"], int(m.get("coverage", 0)), [int(a.get("logitIndex", 0)) for a in m.get("assignments", [])])
        for m in response.get("models", [])
    ]
    return models + [(h["modelId"], int(h.get("logitIndex", 0)), []) for h in response.get("hits", [])]


def test_task_and_similar_searches_agree_between_five_processes_and_embedded(five, embedded_process, tmp_path):
    orchestrator = five["orchestrator"].address
    for address in (orchestrator, embedded_process.address):
        index_all(address)
    commands = [
        ("task", *mini.CONCEPTS[:3]),
        ("task", "pizza", "cat", "--min-coverage", "1", "--aggregation", "worst", "--top-k", "20"),
        ("similar", "matcher", "--logit", "1", "--top-k", "20"),
        ("similar", "shuffled", "--top-k", "20"),
    ]
    for command in commands:
        assert task_json(orchestrator, *command) == task_json(embedded_process.address, *command), command
    found = task_json(orchestrator, "task", *mini.CONCEPTS[:3], "--top-k", "2")
    assert {model for model, _, _ in found} == {"matcher", "shuffled"}
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"models": {"matcher": {"concepts": mini.CONCEPTS}}}))
    table = procs.cli(["task", "fire truck", "pizza", "--truth", str(truth), "--address", orchestrator])
    assert table.returncode == 0, table.stderr
    assert "covers 2/2" in table.stdout and "|  pizza" in table.stdout
    similar = procs.cli(["similar", "matcher", "--address", orchestrator])
    assert similar.returncode == 0 and "models like matcher" in similar.stdout and "shuffled" in similar.stdout
    bad = procs.cli(["task", "cat", "--address", orchestrator])
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "Traceback" not in bad.stderr
    missing = procs.cli(["similar", "no-such-model", "--address", orchestrator])
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


async def test_python_client_errors_keep_their_codes_across_hops(five):
    async with ProbeLogClient(five["orchestrator"].address) as client:
        with pytest.raises(NotFound, match="no-such-model"):
            await client.index("no-such-model")
        with pytest.raises(FailedPrecondition, match="constant"):
            await client.index("dead-logit")
        with pytest.raises(InvalidArgument, match="not a readable image"):
            await client.search(images=[b"\x89PNG broken"])
        with pytest.raises(NotFound):
            await client.get_model("never-indexed")
        probe_sets = await client.probe_sets()
        assert probe_sets.default_probe_set_id == probe_sets.probe_sets[0].probe_set_id


async def test_every_service_reports_health(five):
    for service in five.values():
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(health_pb2.HealthCheckRequest(service=""))
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service.name


def test_cli_reports_unreachable_server():
    result = procs.cli(["search", "cat", "--address", "127.0.0.1:9"])
    assert result.returncode == 2
    assert "UNAVAILABLE" in result.stderr and "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
