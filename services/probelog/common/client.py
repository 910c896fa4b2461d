"""What every gRPC client adapter shares: error translation and deadlines."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from probelog.common.edge import from_rpc_error


@contextlib.contextmanager
def remote_errors(peer: str) -> Iterator[None]:
    """Re-raise a failed call as the matching domain exception, naming ``peer`` when it is
    unreachable."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, peer=peer) from None
