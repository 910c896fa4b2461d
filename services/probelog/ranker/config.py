from __future__ import annotations

from pydantic import Field

from probelog.common.settings import Settings, peer

PORT = 50055


class RankerSettings(Settings):
    store_address: str = peer("127.0.0.1:50054", "The descriptor store service (host:port).")
    shard_index: int = Field(
        -1,
        description="This ranker is shard shard_index of shard_count: it owns the partitions p of the store's "
        "feed with p mod shard_count == shard_index. -1: 0 when shard_count is 1, else the ordinal that ends "
        "the host name (HOSTNAME of a StatefulSet's pod <name>-<i>).",
    )
    shard_count: int = Field(
        1, description="Ranker shards in all (at most the store's partitions: 16 on Redis)."
    )
    batch_window_ms: float = Field(
        2.0, description="Concurrent Rank calls arriving within this window are scored in one pass; 0 disables."
    )
    max_batch_queries: int = Field(64, description="Most queries scored in one batched pass.")
    index_dtype: str = Field("float16", description="Storage of z-scored values in the index: float16 or float32.")
    index_dir: str = Field(
        "",
        description="Folder where the ranker keeps its index files, so that a restart memory-maps them instead "
        "of loading every model from the store (\"\": none).",
    )
