from __future__ import annotations

from pydantic import Field

from probelog.common.limits import DEFAULT_MAX_PROBE_SET_BYTES
from probelog.common.settings import Settings

PORT = 50054


class StoreSettings(Settings):
    store_url: str = Field(
        "file://.data/store",
        description="\"redis://host:6379/0\", \"rediss://...\" (TLS), or \"file:///path\" (one process only).",
    )
    redis_username: str = Field("", description="Redis ACL user name.")
    redis_password: str = Field("", description="Redis password (over the one in the URL).")
    redis_tls_ca_file: str = Field("", description="The CA a rediss:// server's certificate is verified against.")
    redis_cluster: bool = Field(
        False, description="The store URL names one node of a Redis Cluster (the client finds the others)."
    )
    redis_key_prefix: str = Field(
        "probelog",
        description="Keys are \"{<prefix>}:...\" and \"{<prefix>:<partition>}:...\": a model's keys share one hash "
        "tag, so its write is one transaction on a Redis Cluster too.",
    )
    redis_stream_maxlen: int = Field(
        100_000,
        description="The change streams are trimmed to about this many entries in all (followers further "
        "behind reload).",
    )
    redis_retry_s: float = Field(
        5.0, description="How long a call is retried with backoff while Redis is unreachable, before UNAVAILABLE."
    )
    max_probe_set_bytes: int = Field(
        DEFAULT_MAX_PROBE_SET_BYTES,
        description="Pixel bytes one PutProbeSet stream may carry (RESOURCE_EXHAUSTED beyond, as they arrive).",
    )
