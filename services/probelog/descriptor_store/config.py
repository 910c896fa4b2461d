from __future__ import annotations

from dataclasses import dataclass

from probelog.common.settings import Settings

PORT = 50054


@dataclass(frozen=True)
class StoreSettings(Settings):
    #: "redis://host:6379/0", "rediss://..." (TLS), or "file:///path" (one process only).
    store_url: str = "file://.data/store"
    redis_username: str = ""
    redis_password: str = ""
    redis_tls_ca_file: str = ""
