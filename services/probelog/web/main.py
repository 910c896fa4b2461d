"""Composition root of the web role (``probelog serve web``), and the web page an embedded server
serves beside its gRPC port (``--web-port``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from probelog.common.files import atomic_write_bytes
from probelog.common.server import create_channel
from probelog.web.app import create_app
from probelog.web.config import PORT, WebSettings
from probelog.web.gateway import SearchGateway

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without signal handlers of its own: the process's runner owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class WebServer:
    """A running explorer: its HTTP server, on ``port`` (the bound one: any free port for 0),
    and the SearchService client it calls through."""

    server: _Server
    task: asyncio.Task[None]
    port: int
    client: SearchGateway

    @classmethod
    async def start(cls, settings: WebSettings, address: str, search_address: str) -> WebServer:
        """Serve the explorer on ``address``, calling SearchService at ``search_address``."""
        host, port = split_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        channel = create_channel(search_address, settings.client_tls)
        client = SearchGateway(channel, search_address, timeout_s=settings.web_timeout_s)
        config = uvicorn.Config(
            create_app(client, settings), lifespan="off", access_log=False, log_level="warning", server_header=False
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            await client.close()
            task.result()  # raises what stopped it
            raise OSError(f"the web server on {address} stopped while starting")
        bound = sock.getsockname()[1]
        logger.info("web page on port %d, SearchService at %s", bound, search_address)
        return cls(server, task, bound, client)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task
        await self.client.close()


async def serve(settings: WebSettings, ready_file: str = "") -> None:
    """Serve the web role until SIGTERM or SIGINT."""
    web = await WebServer.start(settings, settings.address(PORT), settings.search_address)
    try:
        if ready_file:
            atomic_write_bytes(Path(ready_file), f"{web.port}\n".encode())
        logger.info("serving on port %d (pid %d)", web.port, os.getpid())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopper, web.task}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        await web.stop()
