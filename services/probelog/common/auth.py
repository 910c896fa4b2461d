"""API keys with roles on a gRPC server: ``authorization: Bearer <key>`` call metadata.

A server given keys checks every call with :class:`ApiKeyInterceptor` before its handler runs:

- no key, or a key it does not hold: UNAUTHENTICATED;
- a key whose role does not allow the method: PERMISSION_DENIED;
- grpc.health.v1 is always open (probes and load balancers carry no key), and so is server
  reflection unless ``auth_open_reflection`` is off.

Roles, by method name (so that a read RPC added later is a read without touching this table):
``write`` methods change the index (:data:`WRITE_METHODS`); every other method is a ``read``.
The ``write`` role may also read.

Keys come from the environment (``PROBELOG_API_KEYS=read:KEY,write:KEY``) or a file (one
``<role> <key>`` per line, ``#`` comments); a key may be given as ``sha256:<hex digest>`` so that
the file holds no key at all. Only SHA-256 digests are kept in memory; a presented key is hashed
and compared with every digest in constant time (:func:`hmac.compare_digest`). Keys are never
logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import grpc

logger = logging.getLogger(__name__)


class Role(Enum):
    READ = "read"
    WRITE = "write"


#: Methods that change what is indexed; any other method of any service is a read.
WRITE_METHODS = frozenset(
    {"IndexModel", "DeleteModel", "PutProbeSet", "PutModelDescriptors", "DeleteModelDescriptors"}
)
_HEALTH = "/grpc.health.v1.Health/"
_REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
_BEARER = "bearer "


def required_role(method: str) -> Role:
    """The role a full method name (``/package.Service/Method``) needs."""
    return Role.WRITE if method.rsplit("/", 1)[-1] in WRITE_METHODS else Role.READ


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKeys:
    """SHA-256 digests of the accepted keys, each with its role."""

    digests: tuple[tuple[bytes, Role], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.digests)

    @classmethod
    def parse(cls, entries: Iterable[tuple[str, str]], where: str) -> ApiKeys:
        """Keys from (role, key or ``sha256:<hex>``) pairs; ValueError naming ``where`` (never the
        key) for a bad entry."""
        digests = []
        for n, (role_name, key) in enumerate(entries, start=1):
            try:
                role = Role(role_name.strip().lower())
            except ValueError:
                raise ValueError(f"{where}, entry {n}: role must be read or write, got {role_name!r}") from None
            key = key.strip()
            if key.startswith("sha256:"):
                try:
                    digest = bytes.fromhex(key.removeprefix("sha256:"))
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise ValueError(f"{where}, entry {n}: a sha256: key needs 64 hex digits")
            elif len(key) < 16:
                raise ValueError(f"{where}, entry {n}: a key needs at least 16 characters")
            else:
                digest = _digest(key)
            digests.append((digest, role))
        return cls(tuple(digests))

    @classmethod
    def load(cls, env_entries: Iterable[str] = (), file: str = "") -> ApiKeys:
        """Keys from ``role:key`` entries (the environment) and a keys file."""
        pairs = [tuple(e.split(":", 1)) for e in env_entries]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("PROBELOG_API_KEYS: entries are role:key")
        keys = cls.parse(pairs, "PROBELOG_API_KEYS")  # type: ignore[arg-type]
        if file:
            lines = [line.split("#", 1)[0].split() for line in Path(file).read_text(encoding="utf-8").splitlines()]
            lines = [line for line in lines if line]
            if any(len(line) != 2 for line in lines):
                raise ValueError(f"{file}: lines are '<role> <key>'")
            keys = cls(keys.digests + cls.parse(((r, k) for r, k in lines), file).digests)
        return keys

    def role_of(self, key: str) -> Role | None:
        """The role of ``key`` (the write role when it is listed under both), or None."""
        digest = _digest(key)
        found: Role | None = None
        for stored, role in self.digests:  # every digest is compared: no early exit on a match
            if hmac.compare_digest(stored, digest) and found is not Role.WRITE:
                found = role
        return found


def allows(role: Role, needed: Role) -> bool:
    return role is Role.WRITE or needed is Role.READ


def _denied(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that fails every call with ``code``."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    kinds = {
        (False, False): (grpc.unary_unary_rpc_method_handler, unary),
        (False, True): (grpc.unary_stream_rpc_method_handler, streaming),
        (True, False): (grpc.stream_unary_rpc_method_handler, unary),
        (True, True): (grpc.stream_stream_rpc_method_handler, streaming),
    }
    make, behaviour = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks ``authorization: Bearer <key>`` against :class:`ApiKeys` and the method's role."""

    def __init__(self, keys: ApiKeys, *, open_reflection: bool = True) -> None:
        self._keys = keys
        self._open = (_HEALTH, *(_REFLECTION if open_reflection else ()))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(self._open):
            return handler
        token = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str) and value[: len(_BEARER)].lower() == _BEARER:
                token = value[len(_BEARER) :].strip()
        if not token:
            return _denied(
                handler, grpc.StatusCode.UNAUTHENTICATED, "an API key is required: authorization: Bearer <key>"
            )
        role = self._keys.role_of(token)
        if role is None:
            return _denied(handler, grpc.StatusCode.UNAUTHENTICATED, "the API key is not valid")
        needed = required_role(method)
        if not allows(role, needed):
            name = method.rsplit("/", 1)[-1]
            return _denied(
                handler, grpc.StatusCode.PERMISSION_DENIED, f"{name} needs the {needed.value} role; the key has {role.value}"
            )
        return handler


def is_loopback(address: str) -> bool:
    """Whether a listen address (``host:port``) binds only the loopback interface."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------- the client side


#: Metadata added to the calls made in this context, on channels made with ``per_call=True``
#: (``ProbeLogClient.call_metadata``); an ``authorization`` entry here replaces the channel's key.
CALL_METADATA: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "probelog_call_metadata", default=()
)


class _Bearer:
    """Adds the key, and the context's call metadata, to a call's metadata (grpc.aio sorts
    interceptors by their one kind)."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        extra = CALL_METADATA.get()
        own = () if any(key == "authorization" for key, _ in extra) else self._metadata
        if not extra and not own:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *own, *extra)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def bearer_interceptors(token: str, *, per_call: bool = False) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that add ``authorization: Bearer <token>`` to every call and, with
    ``per_call``, the metadata of :data:`CALL_METADATA` (none for an empty token without it)."""
    if not token and not per_call:
        return []
    kinds = (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)
    return [kind(token) for kind in kinds]
