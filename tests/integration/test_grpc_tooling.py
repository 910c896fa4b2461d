"""The tools other teams use on our API: grpcurl (through server reflection) and buf.

The grpcurl Search command is read from the README and run as written (only the address is
swapped), so the README cannot drift from what the server accepts.
"""

from __future__ import annotations

import filecmp
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format

from probelog.v1 import search_pb2
from tests.support import mini, procs

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
README_ADDRESS = "localhost:50051"


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}; run ./scripts/setup.sh")
    return str(path)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, **kwargs)


def readme_command(pattern: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("grpcurl") and pattern in line]
    assert lines, f"README.md shows no grpcurl command with {pattern!r}"
    return shlex.split(lines[0])


@pytest.fixture(scope="module")
def server(embedded_process):
    result = procs.cli(["index", "--all", "--quiet", "--address", embedded_process.address])
    assert "indexed" in result.stderr, result.stderr
    return embedded_process.address


def test_readme_search_command_runs_through_reflection(server):
    cmd = readme_command("SearchService/Search")
    assert README_ADDRESS in cmd
    cmd = [tool("grpcurl"), *[server if part == README_ADDRESS else part for part in cmd[1:]]]
    result = run(cmd)
    assert result.returncode == 0, result.stderr
    # grpcurl prints proto field names; parsing into the message accepts either JSON style.
    response = json_format.Parse(result.stdout, search_pb2.SearchResponse())
    query = json.loads(cmd[cmd.index("-d") + 1])
    concept = mini.CONCEPTS.index(query["text"])
    assert len(response.hits) == query["top_k"]
    top2 = {(h.model_id, h.logit_index) for h in response.hits[:2]}
    assert top2 == {("matcher", concept), ("shuffled", mini.SHUFFLE.index(concept))}
    assert response.probe_set_id.startswith("ps-")
    assert response.n_logits_searched > 0
    assert [h.rank for h in response.hits] == list(range(1, len(response.hits) + 1))


def readme_grpcurl(pattern: str, server: str, swap: dict[str, str] | None = None) -> tuple[dict, str]:
    """The README's grpcurl command for ``pattern``, run as written but for the address and the
    ``swap``ped request values; its request and stdout."""
    cmd = readme_command(pattern)
    data = cmd[cmd.index("-d") + 1]
    for old, new in (swap or {}).items():
        data = data.replace(old, new)
    cmd[cmd.index("-d") + 1] = data
    result = run([tool("grpcurl"), *[server if part == README_ADDRESS else part for part in cmd[1:]]])
    assert result.returncode == 0, result.stderr
    return json.loads(data), result.stdout


def test_readme_task_and_similar_commands_run_through_reflection(server):
    # The README's concepts are the trained world's; the mini world serves the same request.
    query, stdout = readme_grpcurl("SearchService/TaskSearch", server)
    response = json_format.Parse(stdout, search_pb2.TaskSearchResponse())
    n = len(query["concepts"])
    assert len(response.models) == query["top_k"]
    for match in response.models:
        assert match.coverage == n and len(match.assignments) == n
        assert len({a.logit_index for a in match.assignments}) == n
    # The README's model is a world hub model; the mini world's matcher stands in for it.
    query, stdout = readme_grpcurl("SearchService/SimilarLogits", server, {"hub-0003": "matcher"})
    response = json_format.Parse(stdout, search_pb2.SimilarLogitsResponse())
    assert len(response.hits) == query["top_k"]
    assert ("matcher", query["logit_index"]) not in {(h.model_id, h.logit_index) for h in response.hits}


def test_readme_evidence_and_probe_images_commands_run_through_reflection(server):
    query, stdout = readme_grpcurl('"evidence_probes"', server)
    response = json_format.Parse(stdout, search_pb2.SearchResponse())
    assert [len(h.evidence) for h in response.hits] == [query["evidence_probes"]] * query["top_k"]
    query, stdout = readme_grpcurl("SearchService/GetProbeImages", server)
    images = json_format.Parse(stdout, search_pb2.GetProbeImagesResponse()).images
    assert [i.probe_index for i in images] == query["probe_indices"]
    assert all(i.data.startswith(b"\x89PNG") and max(i.width, i.height) == query["size_px"] for i in images)


def test_grpcurl_lists_the_public_api_only(server):
    result = run([tool("grpcurl"), "-plaintext", server, "list"])
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    # The internal services are wired in process and never served on the public port.
    assert services == {
        "probelog.v1.SearchService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    described = run([tool("grpcurl"), "-plaintext", server, "describe", "probelog.v1.SearchService"])
    assert "rpc Search ( .probelog.v1.SearchRequest ) returns ( .probelog.v1.SearchResponse )" in described.stdout


def test_grpcurl_health_check(server):
    for service in ("", "probelog.v1.SearchService"):
        result = run([tool("grpcurl"), "-plaintext", "-d", json.dumps({"service": service}), server,
                      "grpc.health.v1.Health/Check"])
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"status": "SERVING"}


def test_grpcurl_sees_clear_errors(server):
    result = run([tool("grpcurl"), "-plaintext", "-d", '{"text": ""}', server, "probelog.v1.SearchService/Search"])
    assert result.returncode != 0
    assert "InvalidArgument" in result.stderr and "empty" in result.stderr
    result = run([tool("grpcurl"), "-plaintext", "-d", '{"model_id": "nope"}', server, "probelog.v1.SearchService/GetModel"])
    assert "NotFound" in result.stderr and "nope" in result.stderr
    result = run([tool("grpcurl"), "-plaintext", "-d", '{"concepts": [{"text": "cat"}]}', server,
                  "probelog.v1.SearchService/TaskSearch"])
    assert result.returncode != 0 and "InvalidArgument" in result.stderr and "concepts" in result.stderr
    result = run([tool("grpcurl"), "-plaintext", "-d", '{"model_id": "nope", "logit_index": 0}', server,
                  "probelog.v1.SearchService/SimilarLogits"])
    assert result.returncode != 0 and "NotFound" in result.stderr


def test_buf_lint_and_format():
    buf = tool("buf")
    lint = run([buf, "lint"])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run([buf, "format", "--diff", "--exit-code"])
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_buf_breaking_against_main():
    has_main = run(["git", "rev-parse", "--verify", "--quiet", "refs/heads/main"]).returncode == 0
    against = ".git#branch=main" if has_main else ".git#ref=HEAD"
    result = run([tool("buf"), "breaking", "--against", against])
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_catches_an_incompatible_change(tmp_path):
    # A copy of the module with a field renumbered must be reported against the real one.
    changed = tmp_path / "protos"
    subprocess.run(["cp", "-r", str(REPO / "protos"), str(changed)], check=True)
    (tmp_path / "buf.yaml").write_text((REPO / "buf.yaml").read_text())
    search = changed / "probelog" / "v1" / "search.proto"
    text = search.read_text()
    search.write_text(re.sub(r"uint32 top_k = 3;", "uint32 top_k = 30;", text, count=1))
    result = subprocess.run([tool("buf"), "breaking", str(tmp_path), "--against", str(REPO)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "top_k" in result.stdout + result.stderr


def test_generated_code_is_fresh(tmp_path):
    out = tmp_path / "gen"
    (out / "probelog" / "v1").mkdir(parents=True)
    result = run(["bash", "scripts/gen_protos.sh", str(out)], env={"PYTHON": sys.executable, "PATH": f"{BIN}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    committed = REPO / "services" / "probelog" / "v1"
    generated = out / "probelog" / "v1"
    names = sorted(p.name for p in generated.iterdir() if p.suffix in (".py", ".pyi"))
    assert names == sorted(p.name for p in committed.iterdir() if p.suffix in (".py", ".pyi"))
    _, mismatch, errors = filecmp.cmpfiles(committed, generated, names, shallow=False)
    assert not mismatch and not errors, f"stale generated code: {mismatch or errors}; run scripts/gen_protos.sh"
