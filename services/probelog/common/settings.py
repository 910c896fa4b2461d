"""Settings from the environment (``PROBELOG_<FIELD>``) with command-line overrides, on
pydantic-settings.

Each service declares a :class:`Settings` subclass in its ``config.py``: one annotated field per
setting, its description in ``Field(description=...)`` (the flag's ``--help`` text). A field
``store_url`` is read from ``PROBELOG_STORE_URL`` and set by ``--store-url``; values given to the
constructor (the flags) win over the environment, which wins over the defaults.

A process that runs several services (embedded mode) nests their settings as fields of its own
(:class:`Nested`); their fields keep their flat names (``PROBELOG_STORE_URL``, ``--store-url``),
except the process-wide ones (listen address, TLS, logging) and the addresses of peers, which
an in-process peer does not need (fields declared with :func:`peer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from probelog.common.server import TlsFiles

S = TypeVar("S", bound="Settings")

ENV_PREFIX = "PROBELOG_"


def split(value: str, sep: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(sep) if part.strip())


@dataclass(frozen=True)
class Split:
    """Field metadata: a tuple of strings written as one string, items separated by ``sep``."""

    sep: str

    def __call__(self, value: Any) -> Any:
        return split(value, self.sep) if isinstance(value, str) else value


#: A list setting written as one string with items separated by commas ("a:1,b:2"), in the
#: environment and on the command line; NoDecode keeps pydantic-settings from reading it as JSON.
#: Another separator: the same with ``Split("|")``.
CommaSeparated = Annotated[tuple[str, ...], NoDecode, Split(","), BeforeValidator(Split(","))]


def separator(field: FieldInfo) -> str | None:
    """How a list field's items are separated, or None for a field that is no list."""
    return next((m.sep for m in field.metadata if isinstance(m, Split)), None)


def peer(default: Any, description: str) -> Any:
    """A field holding the address of another service: no setting of a process that runs that
    service itself (embedded mode)."""
    return Field(default, description=description, json_schema_extra={"peer": True})


def is_peer(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("peer"))


def _nested_class(field: FieldInfo) -> type[Settings] | None:
    hint = field.annotation
    return hint if isinstance(hint, type) and issubclass(hint, Settings) else None


def flat_fields(cls: type[Settings]) -> dict[str, FieldInfo]:
    """Every setting a class reads, by its flat name: its own fields and those of the settings it
    nests (less the process-wide and peer-address ones)."""
    out: dict[str, FieldInfo] = {}
    for name, field in cls.model_fields.items():
        nested = _nested_class(field)
        if nested is None:
            out[name] = field
            continue
        for inner, spec in _service_fields(nested).items():
            if inner in out:
                raise TypeError(f"{cls.__name__}: setting {inner} is declared twice")
            out[inner] = spec
    return out


def _service_fields(nested: type[Settings]) -> dict[str, FieldInfo]:
    """The settings a nested service brings: all but the process-wide ones and peer addresses."""
    return {
        name: field
        for name, field in flat_fields(nested).items()
        if name not in Settings.model_fields and not is_peer(field)
    }


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _one_line(exc: ValidationError, flags: set[str]) -> str:
    """A validation error as one line naming the flag or environment variable at fault."""
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        where = flag(name) if name in flags else env_name(name)
        parts.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)


class Settings(BaseSettings):
    """Settings every service has."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    listen_address: str = Field("", description="host:port the gRPC server binds (\"\": the service's port on [::]).")
    health_listen_address: str = Field(
        "", description="Plaintext grpc.health.v1 only, for probes when the main port serves TLS (\"\" = off)."
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field(
        "json", description="\"json\" (one object a line, for collectors) or \"text\" (for reading in a terminal)."
    )
    metrics_listen_address: str = Field(
        "", description="host:port of an HTTP endpoint with Prometheus metrics at /metrics (\"\" = off)."
    )
    health_interval_s: float = Field(5.0, description="Seconds between two checks of the backends that health reports on.")
    grace_s: float = Field(5.0, description="Seconds calls in flight may finish after SIGTERM.")
    tls_cert_file: str = Field("", description="This server's certificate (TLS on the listen address).")
    tls_key_file: str = Field("", description="This server's private key.")
    tls_ca_file: str = Field("", description="The CA this process's clients verify the servers they call against.")
    tls_client_ca_file: str = Field(
        "", description="mTLS: the server requires a client certificate signed by this CA (\"\" = none required)."
    )
    tls_client_cert_file: str = Field(
        "",
        description="mTLS: the certificate this process's clients present to the services they call "
        "(default: tls_cert_file, when tls_ca_file is set).",
    )
    tls_client_key_file: str = Field("", description="mTLS: the key of tls_client_cert_file (default: tls_key_file).")
    api_keys: CommaSeparated = Field(
        (),
        description="API keys, \"role:key\" (role read or write; key as \"sha256:<hex>\" to give only its hash). "
        "With none here or in api_keys_file, calls need no key.",
    )
    api_keys_file: str = Field(
        "", description="A file of API keys, one \"<role> <key>\" per line (e.g. mounted from a Secret)."
    )
    auth_open_reflection: bool = Field(True, description="Server reflection answers without a key (health always does).")

    @classmethod
    def from_env(cls: type[S], overrides: dict[str, Any] | None = None) -> S:
        """The settings from the environment, with ``overrides`` (the flags; None values are
        ignored) winning. A bad value raises ValueError with one line naming its flag or variable."""
        given = {name: value for name, value in (overrides or {}).items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ValueError(_one_line(exc, set(given))) from None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every flat setting's declared default (the environment aside)."""
        return {name: field.get_default(call_default_factory=True) for name, field in flat_fields(cls).items()}

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


class Nested(Settings):
    """Settings that nest other services' settings, built from flat names.

    ``Cls(store_url=..., clip_model=...)`` routes each name to the nested settings that declares
    it, which reads the rest from the environment as it does on its own; a nested settings
    object may also be passed whole (``Cls(store=StoreSettings(...))``).
    """

    def __init__(self, **values: Any) -> None:
        for name, field in type(self).model_fields.items():
            nested = _nested_class(field)
            if nested is None:
                continue
            names = _service_fields(nested)
            given = {key: values.pop(key) for key in list(values) if key in names}
            if name not in values:
                values[name] = nested(**given)
            elif given:
                values[name] = values[name].model_copy(update=given)
        unknown = sorted(set(values) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no settings {unknown}")
        super().__init__(**values)

    def flat_values(self) -> dict[str, Any]:
        """Every setting by its flat name (as :func:`flat_fields` names them)."""
        out: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            nested = _nested_class(field)
            if nested is None:
                out[name] = value
                continue
            out.update({inner: getattr(value, inner) for inner in _service_fields(nested)})
        return out

    def updated(self: S, values: dict[str, Any]) -> S:
        """A copy with these settings, by flat name, changed."""
        own = {name: value for name, value in values.items() if name in type(self).model_fields}
        for name, field in type(self).model_fields.items():
            nested = _nested_class(field)
            if nested is None:
                continue
            inner = {key: value for key, value in values.items() if key in _service_fields(nested)}
            if inner:
                own[name] = getattr(self, name).model_copy(update=inner)
        return self.model_copy(update=own)
