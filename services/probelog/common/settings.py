"""Settings from the environment (``PROBELOG_<FIELD>``) with command-line overrides.

Each service declares a dataclass deriving from :class:`Settings`; a field ``store_url`` is read
from ``PROBELOG_STORE_URL``. Flags given on the command line win over the environment, which
wins over the defaults.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from probelog.common.server import TlsFiles

S = TypeVar("S", bound="Settings")

ENV_PREFIX = "PROBELOG_"


def separator(field: dataclasses.Field[Any]) -> str:
    """How a tuple field's items are separated in the environment and on the command line:
    "," unless the field's metadata names another (prompt templates may contain commas)."""
    return str(field.metadata.get("separator", ","))


def split(value: str, sep: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(sep) if part.strip())


def _parse(value: str, kind: Any, name: str, sep: str = ",") -> Any:
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    if typing.get_origin(kind) in (list, tuple):
        return split(value, sep)
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """Settings every service has."""

    listen_address: str = ""
    #: Plaintext grpc.health.v1 only, for probes when the main port serves TLS ("" = off).
    health_listen_address: str = ""
    log_level: str = "INFO"
    grace_s: float = 5.0
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""

    @classmethod
    def from_env(
        cls: type[S],
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> S:
        """Read the fields from ``environ`` (default ``os.environ``), then apply ``overrides``
        (values that are None are ignored)."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = ENV_PREFIX + field.name.upper()
            if key in env:
                try:
                    values[field.name] = _parse(env[key], hints[field.name], key, separator(field))
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from exc
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)

    @property
    def server_tls(self) -> TlsFiles | None:
        if self.tls_cert_file and self.tls_key_file:
            return TlsFiles(cert_file=self.tls_cert_file, key_file=self.tls_key_file)
        return None

    @property
    def client_tls(self) -> TlsFiles | None:
        if self.tls_ca_file:
            return TlsFiles(ca_file=self.tls_ca_file)
        return None

    def address(self, default_port: int) -> str:
        return self.listen_address or f"[::]:{default_port}"
