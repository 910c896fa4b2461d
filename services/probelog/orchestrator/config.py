from __future__ import annotations

from dataclasses import dataclass, field

from probelog.common import limits
from probelog.common.settings import Settings
from probelog.core.distance import DEFAULT_R

PORT = 50051
#: Candidate logits gathered per concept of a task when neither request nor settings say.
DEFAULT_TASK_CANDIDATES = 200


@dataclass(frozen=True)
class OrchestratorSettings(Settings):
    runner_address: str = field(default="127.0.0.1:50052", metadata={"peer": True})
    encoder_address: str = field(default="127.0.0.1:50053", metadata={"peer": True})
    store_address: str = field(default="127.0.0.1:50054", metadata={"peer": True})
    #: One address per ranker shard, comma-separated.
    ranker_addresses: tuple[str, ...] = field(default=("127.0.0.1:50055",), metadata={"peer": True})
    #: Ranker shards found through DNS instead (with ranker_shards): shard i's address is this
    #: with {i} replaced by i, e.g. the pods of a StatefulSet behind its headless Service,
    #: "probelog-ranker-{i}.probelog-ranker-headless.<namespace>.svc.cluster.local:50055". Any
    #: gRPC target form: "dns://<server>:<port>/<name>:<port>" asks that DNS server.
    ranker_dns: str = field(default="", metadata={"peer": True})
    #: How many ranker shards ranker_dns names (0 when ranker_dns is not used).
    ranker_shards: int = field(default=0, metadata={"peer": True})
    #: A probe-set .npz registered into the store at start (idempotent).
    probe_set_file: str = ""
    #: Probe-set id or name used when a request names none.
    default_probe_set: str = ""
    #: Background concept names: a file with one name per line, or "imagenet1k".
    background: str = "imagenet1k"
    #: Background concepts averaged per calibration offset; 0: DEFAULT_CALIBRATION_K, or the
    #: background size when that is smaller.
    calibration_k: int = 0
    r: int = DEFAULT_R
    #: Index every model that appears in the runner's repository.
    auto_index: bool = False
    auto_index_interval_s: float = 10.0
    #: The bulk-indexing work queue: "redis://..." or "rediss://..." (a Redis Stream), usually the
    #: store's Redis. Empty: no queue; `index --all` and the auto-indexer index one model at a time.
    index_queue_url: str = ""
    #: The queue's Redis ACL user and password (kept out of the URL, e.g. from a Secret).
    index_queue_username: str = ""
    index_queue_password: str = ""
    #: CA certificate that signs a "rediss://" queue server's certificate (else the system's).
    index_queue_tls_ca_file: str = ""
    #: The queue URL names one node of a Redis Cluster.
    index_queue_cluster: bool = False
    #: Keys are "{<prefix>:index}:...".
    index_queue_prefix: str = "probelog"
    #: Indexing workers this process runs on the queue (0: it only queues work).
    index_workers: int = 0
    #: A claimed model whose worker went silent this long is taken over by another worker.
    index_claim_timeout_s: float = 60.0
    #: Claims of one model before it fails for good.
    index_max_attempts: int = 3
    #: A missing ranker shard gives a partial result flagged as such (else UNAVAILABLE).
    allow_partial: bool = False
    #: Limits on what IndexModel stores with a model (INVALID_ARGUMENT beyond them).
    max_label_chars: int = limits.DEFAULT_MAX_LABEL_CHARS
    max_logits_per_model: int = limits.DEFAULT_MAX_LOGITS_PER_MODEL
    max_metadata_entries: int = limits.DEFAULT_MAX_METADATA_ENTRIES
    max_metadata_key_chars: int = limits.DEFAULT_MAX_METADATA_KEY_CHARS
    max_metadata_value_chars: int = limits.DEFAULT_MAX_METADATA_VALUE_CHARS
    #: N: candidate logits gathered per concept of a TaskSearch (and per logit of a model's
    #: SimilarLogits) when the request sets no candidate_depth; at most 1,000.
    task_candidates: int = DEFAULT_TASK_CANDIDATES

    @property
    def model_limits(self) -> limits.ModelLimits:
        return limits.ModelLimits(
            max_label_chars=self.max_label_chars,
            max_logits_per_model=self.max_logits_per_model,
            max_metadata_entries=self.max_metadata_entries,
            max_metadata_key_chars=self.max_metadata_key_chars,
            max_metadata_value_chars=self.max_metadata_value_chars,
        )


@dataclass(frozen=True)
class IndexerSettings(OrchestratorSettings):
    """`probelog serve indexer`: an orchestrator that runs indexing workers on the work queue."""

    index_workers: int = 1
