from __future__ import annotations

from dataclasses import dataclass

from probelog.common.limits import DEFAULT_MAX_PROBE_SET_BYTES
from probelog.common.settings import Settings

PORT = 50054


@dataclass(frozen=True)
class StoreSettings(Settings):
    #: "redis://host:6379/0", "rediss://..." (TLS), or "file:///path" (one process only).
    store_url: str = "file://.data/store"
    redis_username: str = ""
    redis_password: str = ""
    redis_tls_ca_file: str = ""
    #: The store URL names one node of a Redis Cluster (the client finds the others).
    redis_cluster: bool = False
    #: Keys are "{<prefix>}:..." and "{<prefix>:<partition>}:...": a model's keys share one hash
    #: tag, so its write is one transaction on a Redis Cluster too.
    redis_key_prefix: str = "probelog"
    #: The change streams are trimmed to about this many entries in all (followers further
    #: behind reload).
    redis_stream_maxlen: int = 100_000
    #: How long a call is retried with backoff while Redis is unreachable, before UNAVAILABLE.
    redis_retry_s: float = 5.0
    #: Pixel bytes one PutProbeSet stream may carry (RESOURCE_EXHAUSTED beyond, as they arrive).
    max_probe_set_bytes: int = DEFAULT_MAX_PROBE_SET_BYTES
