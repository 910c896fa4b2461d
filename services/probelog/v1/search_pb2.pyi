from probelog.v1 import clip_encoder_pb2 as _clip_encoder_pb2
from probelog.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskAggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_AGGREGATION_UNSPECIFIED: _ClassVar[TaskAggregation]
    TASK_AGGREGATION_MEAN: _ClassVar[TaskAggregation]
    TASK_AGGREGATION_WORST: _ClassVar[TaskAggregation]
    TASK_AGGREGATION_MEAN_RANK: _ClassVar[TaskAggregation]
TASK_AGGREGATION_UNSPECIFIED: TaskAggregation
TASK_AGGREGATION_MEAN: TaskAggregation
TASK_AGGREGATION_WORST: TaskAggregation
TASK_AGGREGATION_MEAN_RANK: TaskAggregation

class SearchRequest(_message.Message):
    __slots__ = ("text", "images", "top_k", "one_hit_per_model", "include_model_ids", "exclude_model_ids", "probe_set_id", "prompt_templates", "evidence_probes")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    ONE_HIT_PER_MODEL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_PROBES_FIELD_NUMBER: _ClassVar[int]
    text: str
    images: _clip_encoder_pb2.ImageSet
    top_k: int
    one_hit_per_model: bool
    include_model_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_model_ids: _containers.RepeatedScalarFieldContainer[str]
    probe_set_id: str
    prompt_templates: _containers.RepeatedScalarFieldContainer[str]
    evidence_probes: int
    def __init__(self, text: _Optional[str] = ..., images: _Optional[_Union[_clip_encoder_pb2.ImageSet, _Mapping]] = ..., top_k: _Optional[int] = ..., one_hit_per_model: _Optional[bool] = ..., include_model_ids: _Optional[_Iterable[str]] = ..., exclude_model_ids: _Optional[_Iterable[str]] = ..., probe_set_id: _Optional[str] = ..., prompt_templates: _Optional[_Iterable[str]] = ..., evidence_probes: _Optional[int] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("encode_us", "rank_us", "total_us")
    ENCODE_US_FIELD_NUMBER: _ClassVar[int]
    RANK_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    encode_us: int
    rank_us: int
    total_us: int
    def __init__(self, encode_us: _Optional[int] = ..., rank_us: _Optional[int] = ..., total_us: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "probe_set_id", "n_logits_searched", "n_models_searched", "timings", "partial")
    HITS_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    N_MODELS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_types_pb2.Hit]
    probe_set_id: str
    n_logits_searched: int
    n_models_searched: int
    timings: StageTimings
    partial: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[_types_pb2.Hit, _Mapping]]] = ..., probe_set_id: _Optional[str] = ..., n_logits_searched: _Optional[int] = ..., n_models_searched: _Optional[int] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., partial: _Optional[bool] = ...) -> None: ...

class IndexModelRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "model_id", "probe_set_id", "labels", "metadata", "preprocessing", "output_name", "output_kind")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    model_id: str
    probe_set_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    preprocessing: _types_pb2.Preprocessing
    output_name: str
    output_kind: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., model_id: _Optional[str] = ..., probe_set_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., preprocessing: _Optional[_Union[_types_pb2.Preprocessing, _Mapping]] = ..., output_name: _Optional[str] = ..., output_kind: _Optional[str] = ...) -> None: ...

class IndexTimings(_message.Message):
    __slots__ = ("probe_us", "descriptors_us", "store_us", "searchable_us", "total_us")
    PROBE_US_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_US_FIELD_NUMBER: _ClassVar[int]
    STORE_US_FIELD_NUMBER: _ClassVar[int]
    SEARCHABLE_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    probe_us: int
    descriptors_us: int
    store_us: int
    searchable_us: int
    total_us: int
    def __init__(self, probe_us: _Optional[int] = ..., descriptors_us: _Optional[int] = ..., store_us: _Optional[int] = ..., searchable_us: _Optional[int] = ..., total_us: _Optional[int] = ...) -> None: ...

class IndexModelResponse(_message.Message):
    __slots__ = ("model", "timings", "images_per_second", "searchable")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SEARCHABLE_FIELD_NUMBER: _ClassVar[int]
    model: _types_pb2.ModelInfo
    timings: IndexTimings
    images_per_second: float
    searchable: bool
    def __init__(self, model: _Optional[_Union[_types_pb2.ModelInfo, _Mapping]] = ..., timings: _Optional[_Union[IndexTimings, _Mapping]] = ..., images_per_second: _Optional[float] = ..., searchable: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("probe_set_id", "page_size", "page_token")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    page_size: int
    page_token: str
    def __init__(self, probe_set_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_types_pb2.ModelInfo]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[_types_pb2.ModelInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model_id", "probe_set_id", "top_probes")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_PROBES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    probe_set_id: str
    top_probes: int
    def __init__(self, model_id: _Optional[str] = ..., probe_set_id: _Optional[str] = ..., top_probes: _Optional[int] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model", "logits")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    model: _types_pb2.ModelInfo
    logits: _containers.RepeatedCompositeFieldContainer[_types_pb2.LogitProbes]
    def __init__(self, model: _Optional[_Union[_types_pb2.ModelInfo, _Mapping]] = ..., logits: _Optional[_Iterable[_Union[_types_pb2.LogitProbes, _Mapping]]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("model_id", "probe_set_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    probe_set_id: str
    def __init__(self, model_id: _Optional[str] = ..., probe_set_id: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProbeSetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProbeSetsResponse(_message.Message):
    __slots__ = ("probe_sets", "default_probe_set_id")
    PROBE_SETS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    probe_sets: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProbeSetInfo]
    default_probe_set_id: str
    def __init__(self, probe_sets: _Optional[_Iterable[_Union[_types_pb2.ProbeSetInfo, _Mapping]]] = ..., default_probe_set_id: _Optional[str] = ...) -> None: ...

class ListSourceModelsRequest(_message.Message):
    __slots__ = ("probe_set_id",)
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    def __init__(self, probe_set_id: _Optional[str] = ...) -> None: ...

class SourceModel(_message.Message):
    __slots__ = ("model_name", "model_version", "state", "indexed")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    state: str
    indexed: bool
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., state: _Optional[str] = ..., indexed: _Optional[bool] = ...) -> None: ...

class ListSourceModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[SourceModel]
    def __init__(self, models: _Optional[_Iterable[_Union[SourceModel, _Mapping]]] = ...) -> None: ...

class TaskConcept(_message.Message):
    __slots__ = ("text", "images")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    images: _clip_encoder_pb2.ImageSet
    def __init__(self, text: _Optional[str] = ..., images: _Optional[_Union[_clip_encoder_pb2.ImageSet, _Mapping]] = ...) -> None: ...

class TaskSearchRequest(_message.Message):
    __slots__ = ("concepts", "top_k", "min_coverage", "allow_shared_logits", "include_model_ids", "exclude_model_ids", "probe_set_id", "prompt_templates", "candidate_depth", "max_score", "aggregation", "evidence_probes")
    CONCEPTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SHARED_LOGITS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_PROBES_FIELD_NUMBER: _ClassVar[int]
    concepts: _containers.RepeatedCompositeFieldContainer[TaskConcept]
    top_k: int
    min_coverage: int
    allow_shared_logits: bool
    include_model_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_model_ids: _containers.RepeatedScalarFieldContainer[str]
    probe_set_id: str
    prompt_templates: _containers.RepeatedScalarFieldContainer[str]
    candidate_depth: int
    max_score: float
    aggregation: TaskAggregation
    evidence_probes: int
    def __init__(self, concepts: _Optional[_Iterable[_Union[TaskConcept, _Mapping]]] = ..., top_k: _Optional[int] = ..., min_coverage: _Optional[int] = ..., allow_shared_logits: _Optional[bool] = ..., include_model_ids: _Optional[_Iterable[str]] = ..., exclude_model_ids: _Optional[_Iterable[str]] = ..., probe_set_id: _Optional[str] = ..., prompt_templates: _Optional[_Iterable[str]] = ..., candidate_depth: _Optional[int] = ..., max_score: _Optional[float] = ..., aggregation: _Optional[_Union[TaskAggregation, str]] = ..., evidence_probes: _Optional[int] = ...) -> None: ...

class ConceptAssignment(_message.Message):
    __slots__ = ("concept_index", "covered", "logit_index", "label", "score", "distance", "concept_rank", "evidence")
    CONCEPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    LOGIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    CONCEPT_RANK_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    concept_index: int
    covered: bool
    logit_index: int
    label: str
    score: float
    distance: float
    concept_rank: int
    evidence: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProbeEvidence]
    def __init__(self, concept_index: _Optional[int] = ..., covered: _Optional[bool] = ..., logit_index: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., distance: _Optional[float] = ..., concept_rank: _Optional[int] = ..., evidence: _Optional[_Iterable[_Union[_types_pb2.ProbeEvidence, _Mapping]]] = ...) -> None: ...

class TaskMatch(_message.Message):
    __slots__ = ("model_id", "score", "coverage", "rank", "assignments")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    score: float
    coverage: int
    rank: int
    assignments: _containers.RepeatedCompositeFieldContainer[ConceptAssignment]
    def __init__(self, model_id: _Optional[str] = ..., score: _Optional[float] = ..., coverage: _Optional[int] = ..., rank: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[ConceptAssignment, _Mapping]]] = ...) -> None: ...

class TaskSearchResponse(_message.Message):
    __slots__ = ("models", "probe_set_id", "n_logits_searched", "n_models_searched", "n_models_eligible", "timings", "partial", "candidate_depth")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    N_MODELS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    N_MODELS_ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[TaskMatch]
    probe_set_id: str
    n_logits_searched: int
    n_models_searched: int
    n_models_eligible: int
    timings: StageTimings
    partial: bool
    candidate_depth: int
    def __init__(self, models: _Optional[_Iterable[_Union[TaskMatch, _Mapping]]] = ..., probe_set_id: _Optional[str] = ..., n_logits_searched: _Optional[int] = ..., n_models_searched: _Optional[int] = ..., n_models_eligible: _Optional[int] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., partial: _Optional[bool] = ..., candidate_depth: _Optional[int] = ...) -> None: ...

class SimilarLogitsRequest(_message.Message):
    __slots__ = ("model_id", "logit_index", "top_k", "include_model_ids", "exclude_model_ids", "probe_set_id", "min_coverage", "allow_shared_logits", "candidate_depth")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SHARED_LOGITS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    logit_index: int
    top_k: int
    include_model_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_model_ids: _containers.RepeatedScalarFieldContainer[str]
    probe_set_id: str
    min_coverage: int
    allow_shared_logits: bool
    candidate_depth: int
    def __init__(self, model_id: _Optional[str] = ..., logit_index: _Optional[int] = ..., top_k: _Optional[int] = ..., include_model_ids: _Optional[_Iterable[str]] = ..., exclude_model_ids: _Optional[_Iterable[str]] = ..., probe_set_id: _Optional[str] = ..., min_coverage: _Optional[int] = ..., allow_shared_logits: _Optional[bool] = ..., candidate_depth: _Optional[int] = ...) -> None: ...

class SimilarLogitsResponse(_message.Message):
    __slots__ = ("hits", "models", "probe_set_id", "n_logits_searched", "n_models_searched", "timings", "partial")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    N_MODELS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_types_pb2.Hit]
    models: _containers.RepeatedCompositeFieldContainer[TaskMatch]
    probe_set_id: str
    n_logits_searched: int
    n_models_searched: int
    timings: StageTimings
    partial: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[_types_pb2.Hit, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[TaskMatch, _Mapping]]] = ..., probe_set_id: _Optional[str] = ..., n_logits_searched: _Optional[int] = ..., n_models_searched: _Optional[int] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., partial: _Optional[bool] = ...) -> None: ...

class GetProbeImagesRequest(_message.Message):
    __slots__ = ("probe_set_id", "probe_indices", "size_px")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_INDICES_FIELD_NUMBER: _ClassVar[int]
    SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    probe_indices: _containers.RepeatedScalarFieldContainer[int]
    size_px: int
    def __init__(self, probe_set_id: _Optional[str] = ..., probe_indices: _Optional[_Iterable[int]] = ..., size_px: _Optional[int] = ...) -> None: ...

class ProbeImage(_message.Message):
    __slots__ = ("probe_index", "data", "media_type", "width", "height")
    PROBE_INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    probe_index: int
    data: bytes
    media_type: str
    width: int
    height: int
    def __init__(self, probe_index: _Optional[int] = ..., data: _Optional[bytes] = ..., media_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class GetProbeImagesResponse(_message.Message):
    __slots__ = ("probe_set_id", "images")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    images: _containers.RepeatedCompositeFieldContainer[ProbeImage]
    def __init__(self, probe_set_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[ProbeImage, _Mapping]]] = ...) -> None: ...

class EnqueueIndexingRequest(_message.Message):
    __slots__ = ("model_names", "all", "reindex", "retry_failed", "probe_set_id")
    MODEL_NAMES_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    REINDEX_FIELD_NUMBER: _ClassVar[int]
    RETRY_FAILED_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    model_names: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    reindex: bool
    retry_failed: bool
    probe_set_id: str
    def __init__(self, model_names: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., reindex: _Optional[bool] = ..., retry_failed: _Optional[bool] = ..., probe_set_id: _Optional[str] = ...) -> None: ...

class EnqueueIndexingResponse(_message.Message):
    __slots__ = ("enqueued", "already_queued")
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_QUEUED_FIELD_NUMBER: _ClassVar[int]
    enqueued: int
    already_queued: int
    def __init__(self, enqueued: _Optional[int] = ..., already_queued: _Optional[int] = ...) -> None: ...

class GetIndexingProgressRequest(_message.Message):
    __slots__ = ("max_failures",)
    MAX_FAILURES_FIELD_NUMBER: _ClassVar[int]
    max_failures: int
    def __init__(self, max_failures: _Optional[int] = ...) -> None: ...

class IndexingFailure(_message.Message):
    __slots__ = ("model_name", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetIndexingProgressResponse(_message.Message):
    __slots__ = ("queue_enabled", "queued", "running", "done", "failed", "failures")
    QUEUE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    queue_enabled: bool
    queued: int
    running: int
    done: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[IndexingFailure]
    def __init__(self, queue_enabled: _Optional[bool] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[IndexingFailure, _Mapping]]] = ...) -> None: ...
