from __future__ import annotations

from dataclasses import dataclass, field

from probelog.common.settings import Settings

PORT = 50055


@dataclass(frozen=True)
class RankerSettings(Settings):
    store_address: str = field(default="127.0.0.1:50054", metadata={"peer": True})
    #: This ranker is shard shard_index of shard_count: it owns the partitions p of the store's
    #: feed with p mod shard_count == shard_index (shard_count at most the store's partitions:
    #: 16 on Redis). -1: 0 when shard_count is 1, else the ordinal that ends the host name
    #: (HOSTNAME of a StatefulSet's pod <name>-<i>).
    shard_index: int = -1
    shard_count: int = 1
    #: Concurrent Rank calls arriving within this window are scored in one pass; 0 disables.
    batch_window_ms: float = 2.0
    #: Most queries scored in one batched pass.
    max_batch_queries: int = 64
    #: Storage of z-scored values in the index: float16 (default) or float32.
    index_dtype: str = "float16"
    #: Folder where the ranker keeps its index files, so that a restart memory-maps them instead
    #: of loading every model from the store; empty: none.
    index_dir: str = ""
