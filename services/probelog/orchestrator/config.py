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
