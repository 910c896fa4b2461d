"""The images' entrypoint (deploy/docker/entrypoint.sh), run with the real shell and `probelog`.

A role's missing file or setting ends in one line and exit code 2 before anything starts; with
everything there it becomes `probelog serve <role>` (the image's own role when none is named).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probelog_devstack import stop_process
from tests.support import procs

ENTRYPOINT = procs.REPO / "deploy" / "docker" / "entrypoint.sh"
CLEARED = (
    "PROBELOG_CLIP_MODEL", "PROBELOG_CLIP_PRETRAINED", "PROBELOG_CLIP_CONFIG", "PROBELOG_PROBE_SET_FILE",
    "PROBELOG_BACKGROUND", "PROBELOG_STORE_URL", "PROBELOG_IMAGE_ROLE", "PROBELOG_WORLD",
)


def entry_env(**settings: str) -> dict[str, str]:
    """The test environment with `probelog` on PATH (as in the image) and only these settings."""
    env = {k: v for k, v in procs.test_env().items() if k not in CLEARED}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(settings)
    return env


def entry(args: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=entry_env(**settings), timeout=120
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "checkpoint.pt").write_bytes(b"weights")
    (tmp_path / "scenes.npz").write_bytes(b"probes")
    (tmp_path / "background.txt").write_text("cat\ndog\n")
    return {name: str(tmp_path / name) for name in ("checkpoint.pt", "scenes.npz", "background.txt")}


@pytest.mark.parametrize(
    ("args", "settings", "message"),
    [
        (["serve", "clip-encoder"], {"PROBELOG_CLIP_PRETRAINED": "/x.pt"}, "the CLIP model (PROBELOG_CLIP_MODEL or --clip-model) is not set"),
        (["serve", "clip-encoder"], {"PROBELOG_CLIP_MODEL": "ViT-B-32"}, "the CLIP checkpoint (PROBELOG_CLIP_PRETRAINED or --clip-pretrained) is not set"),
        (
            ["serve", "clip-encoder"],
            {"PROBELOG_CLIP_MODEL": "ViT-B-32", "PROBELOG_CLIP_PRETRAINED": "/data/clip/checkpoint.pt"},
            "the CLIP checkpoint /data/clip/checkpoint.pt does not exist (is the data volume mounted?",
        ),
        (
            # A flag wins over the variable, and is what gets checked.
            ["serve", "clip-encoder", "--clip-pretrained", "/elsewhere/model.pt"],
            {"PROBELOG_CLIP_MODEL": "ViT-B-32", "PROBELOG_CLIP_PRETRAINED": "{checkpoint.pt}"},
            "the CLIP checkpoint /elsewhere/model.pt does not exist",
        ),
        (["serve", "orchestrator"], {"PROBELOG_PROBE_SET_FILE": "/data/probe_sets/scenes.npz"}, "the probe set /data/probe_sets/scenes.npz does not exist"),
        (
            ["serve", "orchestrator"],
            {"PROBELOG_PROBE_SET_FILE": "{scenes.npz}", "PROBELOG_BACKGROUND": "/data/background.txt"},
            "the background list /data/background.txt does not exist",
        ),
        (["serve", "descriptor-store"], {}, "the store URL (PROBELOG_STORE_URL or --store-url) is not set"),
        (["serve", "descriptor-store"], {"PROBELOG_STORE_URL": "s3://bucket"}, "the store URL s3://bucket is neither file://"),
        (["serve", "--embedded", "--world", "/no/world"], {}, "the world directory /no/world does not exist"),
        (["serve"], {}, "serve needs a role"),
    ],
)
def test_a_missing_file_or_setting_is_one_line_and_exit_code_2(args, settings, message, files):
    # "{name}" stands for a file the fixture made.
    settings = {k: files[v[1:-1]] if v.startswith("{") else v for k, v in settings.items()}
    result = entry(args, **settings)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("probelog-entrypoint: "), result.stderr
    assert message in result.stderr


def test_a_store_directory_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = entry(["serve", "descriptor-store"], PROBELOG_STORE_URL=f"file://{tmp_path / 'file' / 'store'}")
    assert result.returncode == 2, result.stderr
    assert f"cannot be made: {tmp_path / 'file'} is not a directory" in result.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        result = entry(["serve", "descriptor-store"], PROBELOG_STORE_URL=f"file://{locked / 'store'}")
        assert result.returncode == 2 and "is not writable by uid" in result.stderr


def test_files_that_are_there_pass_the_check(files):
    # The checks pass and `probelog serve` runs: here it stops at its own flag check, one line.
    result = entry(
        ["serve", "clip-encoder", "--no-such-flag"],
        PROBELOG_CLIP_MODEL="ViT-B-32", PROBELOG_CLIP_PRETRAINED=files["checkpoint.pt"],
    )
    assert "probelog-entrypoint" not in result.stderr
    assert result.returncode == 2 and "--no-such-flag" in result.stderr and "Traceback" not in result.stderr


def test_serve_alone_serves_the_images_role(tmp_path):
    ready = tmp_path / "store.port"
    log = tmp_path / "store.log"
    env = entry_env(PROBELOG_IMAGE_ROLE="descriptor-store", PROBELOG_STORE_URL=f"file://{tmp_path / 'store'}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["sh", str(ENTRYPOINT), "serve", "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 120
        while not (ready.exists() and ready.read_text().strip()):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        with grpc.insecure_channel(f"127.0.0.1:{int(ready.read_text())}") as channel:
            request = health_pb2.HealthCheckRequest(service="probelog.v1.DescriptorStoreService")
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        # exec: the shell became probelog, so the signal reaches the server itself.
        assert stop_process(proc, "store", 15.0) == 0, log.read_text()
    assert (tmp_path / "store" / "models").is_dir()


def test_other_commands_pass_through():
    result = entry(["--help"])
    assert result.returncode == 0 and "serve" in result.stdout
