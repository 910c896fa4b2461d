"""Decompression bombs: small PNGs that decode to 13000 x 13000 pixels, sent in concurrent
searches to a real embedded server process. Each is refused from its header (INVALID_ARGUMENT),
the server's peak memory barely moves, and health keeps answering within its 1 s deadline."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from probelog.v1 import clip_encoder_pb2, search_pb2, search_pb2_grpc

SEARCHES = 4
ROUNDS = 3
BOMBS_PER_SEARCH = 4
#: The most the server's peak resident memory may grow while the bombs are refused.
MAX_PEAK_GROWTH_KB = 200 * 1024


def bomb(side: int = 13000) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


async def test_image_bombs_are_refused_from_their_header(embedded_process):
    data = bomb()
    assert len(data) < 100_000  # a small upload...
    pid = embedded_process.proc.pid
    before = peak_rss_kb(pid)
    request = search_pb2.SearchRequest(images=clip_encoder_pb2.ImageSet(images=[data] * BOMBS_PER_SEARCH))
    async with grpc.aio.insecure_channel(embedded_process.address) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        attacking = True
        health_checks = 0

        async def attack() -> list[grpc.StatusCode]:
            codes = []
            for _ in range(ROUNDS):
                try:
                    await stub.Search(request, timeout=60)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    assert "pixels" in (exc.details() or ""), exc.details()
                    codes.append(exc.code())
            return codes

        async def check_health() -> None:
            nonlocal health_checks
            while attacking:
                response = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                assert response.status == health_pb2.HealthCheckResponse.SERVING
                health_checks += 1
                await asyncio.sleep(0.05)

        checker = asyncio.create_task(check_health())
        try:
            results = await asyncio.gather(*(attack() for _ in range(SEARCHES)))
        finally:
            attacking = False
            await checker
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for codes in results for code in codes)
    assert health_checks > 0
    assert peak_rss_kb(pid) - before < MAX_PEAK_GROWTH_KB
