"""Settings from the environment (``PROBELOG_<FIELD>``) with command-line overrides.

Each service declares a dataclass deriving from :class:`Settings`; a field ``store_url`` is read
from ``PROBELOG_STORE_URL``. Flags given on the command line win over the environment, which
wins over the defaults.

A process that runs several services (embedded mode) nests their settings as fields of its own
(:class:`Nested`); their fields keep their flat names (``PROBELOG_STORE_URL``, ``--store-url``),
except the process-wide ones (listen address, TLS, logging) and the addresses of peers, which
an in-process peer does not need (fields marked ``metadata={"peer": True}``).
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


def _nested_class(hint: Any) -> type[Settings] | None:
    return hint if isinstance(hint, type) and issubclass(hint, Settings) else None


def flat_fields(cls: type[Settings]) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    """Every setting a class reads, by its flat name: its own fields and those of the settings it
    nests (less the process-wide and peer-address ones), each with its type."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[dataclasses.Field[Any], Any]] = {}
    for field in dataclasses.fields(cls):
        nested = _nested_class(hints[field.name])
        if nested is None:
            out[field.name] = (field, hints[field.name])
            continue
        for name, spec in _service_fields(nested).items():
            if name in out:
                raise TypeError(f"{cls.__name__}: setting {name} is declared twice")
            out[name] = spec
    return out


def _service_fields(nested: type[Settings]) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    """The settings a nested service brings: all but the process-wide ones and peer addresses."""
    return {
        name: (field, hint)
        for name, (field, hint) in flat_fields(nested).items()
        if name not in _PROCESS_FIELDS and not field.metadata.get("peer")
    }


@dataclasses.dataclass(frozen=True)
class Settings:
    """Settings every service has."""

    listen_address: str = ""
    #: Plaintext grpc.health.v1 only, for probes when the main port serves TLS ("" = off).
    health_listen_address: str = ""
    log_level: str = "INFO"
    #: "json" (one object a line, for collectors) or "text" (for reading in a terminal).
    log_format: str = "json"
    #: host:port of an HTTP endpoint with Prometheus metrics at /metrics ("" = off).
    metrics_listen_address: str = ""
    #: Seconds between two checks of the backends that health reports on.
    health_interval_s: float = 5.0
    grace_s: float = 5.0
    #: This server's certificate and key (TLS on the listen address).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: The CA this process's clients verify the servers they call against.
    tls_ca_file: str = ""
    #: mTLS: the server requires a client certificate signed by this CA ("" = none required).
    tls_client_ca_file: str = ""
    #: mTLS: the certificate and key this process's clients present to the services they call
    #: (default: tls_cert_file and tls_key_file, when tls_ca_file is set).
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    #: API keys, "role:key" (role read or write; key as "sha256:<hex>" to give only its hash),
    #: comma-separated. With none here or in api_keys_file, calls need no key.
    api_keys: tuple[str, ...] = ()
    #: A file of API keys, one "<role> <key>" per line (e.g. mounted from a Secret).
    api_keys_file: str = ""
    #: Server reflection answers without a key (health always does).
    auth_open_reflection: bool = True

    @classmethod
    def from_env(
        cls: type[S],
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> S:
        """Read the fields from ``environ`` (default ``os.environ``), then apply ``overrides``
        (values that are None are ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (field, hint) in flat_fields(cls).items():
            key = ENV_PREFIX + name.upper()
            if key in env:
                try:
                    values[name] = _parse(env[key], hint, key, separator(field))
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from exc
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)

    @property
    def server_tls(self) -> TlsFiles | None:
        if self.tls_cert_file and self.tls_key_file:
            return TlsFiles(
                cert_file=self.tls_cert_file, key_file=self.tls_key_file, client_ca_file=self.tls_client_ca_file
            )
        return None

    @property
    def client_tls(self) -> TlsFiles | None:
        if self.tls_ca_file:
            return TlsFiles(
                ca_file=self.tls_ca_file,
                cert_file=self.tls_client_cert_file or self.tls_cert_file,
                key_file=self.tls_client_key_file or self.tls_key_file,
            )
        return None

    def address(self, default_port: int) -> str:
        return self.listen_address or f"[::]:{default_port}"


#: Fields of :class:`Settings` itself: they belong to the process, not to a nested service.
_PROCESS_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))


class Nested(Settings):
    """Settings that nest other services' settings, built from flat names.

    ``Cls(store_url=..., clip_model=...)`` routes each name to the nested settings that declares
    it, starting from the nested field's default; a nested settings object may also be passed
    whole (``Cls(store=StoreSettings(...))``).
    """

    def __init__(self, **values: Any) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            nested = _nested_class(hints[field.name])
            if field.name in values:
                value = values.pop(field.name)
            elif field.default is not dataclasses.MISSING:
                value = field.default
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                raise TypeError(f"{type(self).__name__}: {field.name} is required")
            if nested is not None:
                names = _service_fields(nested)
                given = {name: values.pop(name) for name in list(values) if name in names}
                if given:
                    value = dataclasses.replace(value, **given)
            object.__setattr__(self, field.name, value)
        if values:
            raise TypeError(f"{type(self).__name__} has no settings {sorted(values)}")

    def flat_values(self) -> dict[str, Any]:
        """Every setting by its flat name (as :func:`flat_fields` names them)."""
        hints = typing.get_type_hints(type(self))
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            nested = _nested_class(hints[field.name])
            if nested is None:
                out[field.name] = value
                continue
            out.update({name: getattr(value, name) for name in _service_fields(nested)})
        return out
