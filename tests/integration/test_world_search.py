"""Search on the trained tiny world: real training, real models, known ground truth.

The tiny world is small and quickly trained, so its numbers are far below the bench hub's
(bench/results/quality.md); these tests check that search finds the right logits far more often
than chance, through the public API, and that the README's main job works as written.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import grpc
import pytest_asyncio
from PIL import Image

from probelog.common.server import create_server
from probelog.embedded import EmbeddedSettings, build
from probelog.v1 import search_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc
from tests.support import procs


@pytest_asyncio.fixture(scope="module")
async def world_stub(tiny_world, tmp_path_factory):
    settings = EmbeddedSettings(world=str(tiny_world), store_url=f"file://{tmp_path_factory.mktemp('store')}", cache_dir="")
    embedded = await build(settings)
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.SearchServiceStub(channel)
    source = await stub.ListSourceModels(search_pb2.ListSourceModelsRequest())
    for model in source.models:
        await stub.IndexModel(search_pb2.IndexModelRequest(model_name=model.model_name))
    stub.address = f"127.0.0.1:{server.port}"  # for clients in other processes
    yield stub
    await channel.close()
    await server.stop(0)
    await embedded.close()


def truth(world) -> dict[str, list[str]]:
    return {m: v["concepts"] for m, v in json.loads((world / "ground_truth.json").read_text())["models"].items()}


async def test_text_search_finds_the_right_logits_far_more_often_than_chance(world_stub, tiny_world):
    concepts = truth(tiny_world)
    n_logits = sum(len(c) for c in concepts.values())
    queries = sorted({c for cs in concepts.values() for c in cs})
    hits_at_5 = 0
    chance = 0.0
    for query in queries:
        response = await world_stub.Search(search_pb2.SearchRequest(text=query, top_k=5))
        assert response.n_logits_searched == n_logits
        if any(concepts[h.model_id][h.logit_index] == query for h in response.hits):
            hits_at_5 += 1
        relevant = sum(cs.count(query) for cs in concepts.values())
        chance += 1 - _none_in_top(n_logits, relevant, 5)
    accuracy, chance = hits_at_5 / len(queries), chance / len(queries)
    # Measured on seed 0: about 40% against a chance level of about 4%.
    assert accuracy > 5 * chance, (accuracy, chance)


async def test_task_search_finds_the_model_of_a_task_far_more_often_than_chance(world_stub, tiny_world):
    # Each hub model's first five labels are a task; a hit is a model whose labels hold it all.
    concepts = truth(tiny_world)
    correct = 0
    for _, labels in sorted(concepts.items()):
        task = labels[:5]
        response = await world_stub.TaskSearch(
            search_pb2.TaskSearchRequest(concepts=[search_pb2.TaskConcept(text=c) for c in task], top_k=3)
        )
        assert response.n_models_searched == len(concepts)
        for match in response.models:
            assert match.coverage == 5
            assert len({a.logit_index for a in match.assignments}) == 5
        correct += bool(response.models) and set(task) <= set(concepts[response.models[0].model_id])
    # Chance is one model in twelve (about 1 of 12 tasks); measured on seed 0: 5 of 12.
    assert correct >= 3, correct
    similar = await world_stub.SimilarLogits(search_pb2.SimilarLogitsRequest(model_id="hub-0000", logit_index=0))
    assert len(similar.hits) == 10 and ("hub-0000", 0) not in {(h.model_id, h.logit_index) for h in similar.hits}


def _none_in_top(n: int, relevant: int, k: int) -> float:
    p = 1.0
    for i in range(k):
        p *= (n - relevant - i) / (n - i)
    return p


async def test_one_hit_per_model_returns_distinct_models(world_stub):
    response = await world_stub.Search(search_pb2.SearchRequest(text="red circle", top_k=8, one_hit_per_model=True))
    ids = [h.model_id for h in response.hits]
    assert len(ids) == len(set(ids)) == 8


def test_readme_main_command(tiny_world, tmp_path):
    """scripts/demo.sh, as the README runs it, on the (already built) tiny world."""
    env = procs.test_env(
        PROBELOG_WORLD=str(tiny_world), PROBELOG_WORLD_SCALE="tiny", PROBELOG_DEMO_STORE=str(tmp_path / "store")
    )
    result = subprocess.run(["./scripts/demo.sh"], cwd=procs.REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "indexed 12 of 12 models" in result.stderr
    # Three text queries and one image query, each a table of 5 hits with the truth column.
    assert result.stdout.count("ground truth (evaluation only)") == 4
    assert result.stdout.count(" hits among ") == 4
    # It ends with ProbeLog's top-1 over every concept of the hub, measured through the API.
    assert "ProbeLog top-1 over all" in result.stdout.splitlines()[-1]


def test_quality_bench_writes_every_table_and_plot(tiny_world, tmp_path):
    """`probelog bench quality` end to end on the tiny world, with small probe pools."""
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "probelog.cli", "bench", "quality", "--hub", str(tiny_world), "--out", str(out),
         "--seeds", "2", "--probes", "200", "--pool-size", "300"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "quality.md").read_text()
    for heading in ("findings, checked", "Table 1", "Table 2", "Tuning r and k", "Table 4", "Table 5", "Table 3",
                    "Table 7", "Selectivity", "differs from the paper's INet-Hub"):
        assert heading in report, heading
    assert "--pool-size 300" in report  # the command that produced it
    # It says whether the hub's logits were computed in this run or came from the world's cache.
    assert re.search(r"Hub logits: (computed in this run|all \d+ .* from the cache|\d+ .* computed in this run, \d+ from)", report)
    for plot in ("fig4_hubness", "fig5_probes", "fig8_r", "fig7_pr_auc", "calibration_k"):
        assert (out / "quality" / f"{plot}.png").stat().st_size > 1000
    res = json.loads((out / "quality" / "quality.json").read_text())
    assert res["seeds"] == [0, 1]
    # r and k were chosen on the tuning half, which shares no concept with the test half.
    tuning = res["tuning"]
    assert [res["r_chosen"], res["k"]] == tuning["best"]
    assert res["r_chosen"] in tuning["r_values"] and res["k"] in tuning["k_values"]
    tune, test = set(res["split"]["tune"]), set(res["split"]["test"])
    assert tune and test and not tune & test
    assert res["strongest_baseline"] in res["main"] and res["strongest_baseline"] != "ProbeLog"
    assert set(res["probe_counts"]) == {"ProbeLog", res["strongest_baseline"]}
    sel = res["selectivity"]
    assert 0.0 <= sel["logits"][0] <= sel["ceiling"] + 1e-12 and 0.0 <= sel["clip"][0] <= sel["ceiling"] + 1e-12
    assert sel["logits_of_ceiling"] == sel["logits"][0] / sel["ceiling"]
    # Search beats chance on the tiny hub: ProbeLog's mean top-5 retrieval (test half) is above 5 / n_logits.
    truth = json.loads((tiny_world / "ground_truth.json").read_text())["models"]
    n_logits = sum(len(m["concepts"]) for m in truth.values())
    assert sum(res["main"]["ProbeLog"]["ret5"]) / 2 > 5 / n_logits


def test_quality_bench_refuses_too_few_probes(tiny_world, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "probelog.cli", "bench", "quality", "--hub", str(tiny_world), "--out", str(tmp_path),
         "--probes", "20"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "must exceed r = 50" in result.stderr
    assert not (tmp_path / "quality.md").exists()


async def test_readme_python_example_runs_as_a_saved_script(world_stub, tmp_path):
    # The README's Python block, saved as it is and run against the tiny world's hub (the
    # example's fox images are any two images of the reader's).
    text = (procs.REPO / "README.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]  # the async example
    script = tmp_path / "example.py"
    script.write_text(block)
    for name in ("fox1.png", "fox2.png"):
        Image.new("RGB", (64, 64), (200, 120, 40)).save(tmp_path / name)
    env = procs.test_env(PROBELOG_ADDRESS=world_stub.address)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[0].split()[0] == "1"  # the first hit's rank
