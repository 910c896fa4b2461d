from probelog.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RankRequest(_message.Message):
    __slots__ = ("probe_set_id", "queries", "top_k", "one_hit_per_model", "include_model_ids", "exclude_model_ids", "normalized")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    ONE_HIT_PER_MODEL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    queries: _containers.RepeatedCompositeFieldContainer[_types_pb2.Descriptor]
    top_k: int
    one_hit_per_model: bool
    include_model_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_model_ids: _containers.RepeatedScalarFieldContainer[str]
    normalized: bool
    def __init__(self, probe_set_id: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[_types_pb2.Descriptor, _Mapping]]] = ..., top_k: _Optional[int] = ..., one_hit_per_model: _Optional[bool] = ..., include_model_ids: _Optional[_Iterable[str]] = ..., exclude_model_ids: _Optional[_Iterable[str]] = ..., normalized: _Optional[bool] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("results", "n_logits_searched", "n_models_searched", "partial", "shards_answered", "shards_total")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    N_MODELS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    SHARDS_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_types_pb2.QueryHits]
    n_logits_searched: int
    n_models_searched: int
    partial: bool
    shards_answered: int
    shards_total: int
    def __init__(self, results: _Optional[_Iterable[_Union[_types_pb2.QueryHits, _Mapping]]] = ..., n_logits_searched: _Optional[int] = ..., n_models_searched: _Optional[int] = ..., partial: _Optional[bool] = ..., shards_answered: _Optional[int] = ..., shards_total: _Optional[int] = ...) -> None: ...

class GetIndexStatsRequest(_message.Message):
    __slots__ = ("probe_set_id",)
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    def __init__(self, probe_set_id: _Optional[str] = ...) -> None: ...

class GetIndexStatsResponse(_message.Message):
    __slots__ = ("probe_set_id", "n_logits", "n_models", "n_probes", "r", "index_bytes", "applied_sequence", "shard_index", "shard_count", "applied_sequences", "partitions")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_FIELD_NUMBER: _ClassVar[int]
    N_MODELS_FIELD_NUMBER: _ClassVar[int]
    N_PROBES_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    n_logits: int
    n_models: int
    n_probes: int
    r: int
    index_bytes: int
    applied_sequence: int
    shard_index: int
    shard_count: int
    applied_sequences: _containers.RepeatedScalarFieldContainer[int]
    partitions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, probe_set_id: _Optional[str] = ..., n_logits: _Optional[int] = ..., n_models: _Optional[int] = ..., n_probes: _Optional[int] = ..., r: _Optional[int] = ..., index_bytes: _Optional[int] = ..., applied_sequence: _Optional[int] = ..., shard_index: _Optional[int] = ..., shard_count: _Optional[int] = ..., applied_sequences: _Optional[_Iterable[int]] = ..., partitions: _Optional[_Iterable[int]] = ...) -> None: ...
