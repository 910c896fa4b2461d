from __future__ import annotations

from pydantic import Field

from probelog.common import limits
from probelog.common.settings import CommaSeparated, Settings, peer
from probelog.core.distance import DEFAULT_R

PORT = 50051
#: Candidate logits gathered per concept of a task when neither request nor settings say.
DEFAULT_TASK_CANDIDATES = 200


class OrchestratorSettings(Settings):
    runner_address: str = peer("127.0.0.1:50052", "The probe runner service.")
    encoder_address: str = peer("127.0.0.1:50053", "The CLIP encoder service.")
    store_address: str = peer("127.0.0.1:50054", "The descriptor store service (host:port).")
    ranker_addresses: CommaSeparated = peer(("127.0.0.1:50055",), "One address per ranker shard.")
    ranker_dns: str = peer(
        "",
        "Ranker shards found through DNS instead (with ranker_shards): shard i's address is this with {i} "
        "replaced by i, e.g. the pods of a StatefulSet behind its headless Service, "
        "\"probelog-ranker-{i}.probelog-ranker.<namespace>.svc.cluster.local:50055\". Any gRPC "
        "target form: \"dns://<server>:<port>/<name>:<port>\" asks that DNS server.",
    )
    ranker_shards: int = peer(0, "How many ranker shards ranker_dns names (0 when ranker_dns is not used).")
    probe_set_file: str = Field("", description="A probe-set .npz registered into the store at start (idempotent).")
    default_probe_set: str = Field("", description="Probe-set id or name used when a request names none.")
    background: str = Field(
        "imagenet1k", description="Background concept names: a file with one name per line, or \"imagenet1k\"."
    )
    calibration_k: int = Field(
        0,
        description="Background concepts averaged per calibration offset; 0: DEFAULT_CALIBRATION_K, or the "
        "background size when that is smaller.",
    )
    r: int = Field(DEFAULT_R, description="Top probes compared per logit (the paper's r).")
    auto_index: bool = Field(False, description="Index every model that appears in the runner's repository.")
    auto_index_interval_s: float = Field(10.0, description="Seconds between two looks at the runner's repository.")
    index_queue_url: str = Field(
        "",
        description="The bulk-indexing work queue: \"redis://...\" or \"rediss://...\" (a Redis Stream), usually "
        "the store's Redis. Empty: no queue; `index --all` and the auto-indexer index one model at a time.",
    )
    index_queue_username: str = Field("", description="The queue's Redis ACL user (kept out of the URL).")
    index_queue_password: str = Field("", description="The queue's Redis password (kept out of the URL).")
    index_queue_tls_ca_file: str = Field(
        "", description="CA certificate that signs a \"rediss://\" queue server's certificate (else the system's)."
    )
    index_queue_cluster: bool = Field(False, description="The queue URL names one node of a Redis Cluster.")
    index_queue_prefix: str = Field("probelog", description="Keys are \"{<prefix>:index}:...\".")
    index_workers: int = Field(0, description="Indexing workers this process runs on the queue (0: it only queues work).")
    index_claim_timeout_s: float = Field(
        60.0, description="A claimed model whose worker went silent this long is taken over by another worker."
    )
    index_max_attempts: int = Field(3, description="Claims of one model before it fails for good.")
    allow_partial: bool = Field(
        False, description="A missing ranker shard gives a partial result flagged as such (else UNAVAILABLE)."
    )
    max_label_chars: int = Field(limits.DEFAULT_MAX_LABEL_CHARS, description="Longest logit label IndexModel stores.")
    max_logits_per_model: int = Field(
        limits.DEFAULT_MAX_LOGITS_PER_MODEL, description="Most logits IndexModel stores for one model."
    )
    max_metadata_entries: int = Field(
        limits.DEFAULT_MAX_METADATA_ENTRIES, description="Most metadata entries IndexModel stores with a model."
    )
    max_metadata_key_chars: int = Field(
        limits.DEFAULT_MAX_METADATA_KEY_CHARS, description="Longest metadata key IndexModel stores."
    )
    max_metadata_value_chars: int = Field(
        limits.DEFAULT_MAX_METADATA_VALUE_CHARS, description="Longest metadata value IndexModel stores."
    )
    task_candidates: int = Field(
        DEFAULT_TASK_CANDIDATES,
        description="N: candidate logits gathered per concept of a TaskSearch (and per logit of a model's "
        "SimilarLogits) when the request sets no candidate_depth; at most 1,000.",
    )

    @property
    def model_limits(self) -> limits.ModelLimits:
        return limits.ModelLimits(
            max_label_chars=self.max_label_chars,
            max_logits_per_model=self.max_logits_per_model,
            max_metadata_entries=self.max_metadata_entries,
            max_metadata_key_chars=self.max_metadata_key_chars,
            max_metadata_value_chars=self.max_metadata_value_chars,
        )


class IndexerSettings(OrchestratorSettings):
    """`probelog serve indexer`: an orchestrator that runs indexing workers on the work queue."""

    index_workers: int = Field(1, description="Indexing workers this process runs on the queue.")
