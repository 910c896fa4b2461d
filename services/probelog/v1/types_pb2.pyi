import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FloatMatrix(_message.Message):
    __slots__ = ("rows", "cols", "data")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    data: bytes
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Descriptor(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class ProbeSetInfo(_message.Message):
    __slots__ = ("probe_set_id", "name", "n_probes", "height", "width", "channels", "created_at", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    N_PROBES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    name: str
    n_probes: int
    height: int
    width: int
    channels: int
    created_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, probe_set_id: _Optional[str] = ..., name: _Optional[str] = ..., n_probes: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ModelSource(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class Calibration(_message.Message):
    __slots__ = ("background_id", "n_background", "k")
    BACKGROUND_ID_FIELD_NUMBER: _ClassVar[int]
    N_BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    background_id: str
    n_background: int
    k: int
    def __init__(self, background_id: _Optional[str] = ..., n_background: _Optional[int] = ..., k: _Optional[int] = ...) -> None: ...

class Preprocessing(_message.Message):
    __slots__ = ("preset", "height", "width", "resize", "crop_fraction", "value_range", "mean", "std", "channel_order", "layout", "datatype")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    CROP_FRACTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_RANGE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ORDER_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    preset: str
    height: int
    width: int
    resize: str
    crop_fraction: float
    value_range: str
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    channel_order: str
    layout: str
    datatype: str
    def __init__(self, preset: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., resize: _Optional[str] = ..., crop_fraction: _Optional[float] = ..., value_range: _Optional[str] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ..., channel_order: _Optional[str] = ..., layout: _Optional[str] = ..., datatype: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "probe_set_id", "n_logits", "labels", "metadata", "source", "indexed_at", "r", "calibration", "preprocessing", "output_name", "output_kind")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INDEXED_AT_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    probe_set_id: str
    n_logits: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    source: ModelSource
    indexed_at: _timestamp_pb2.Timestamp
    r: int
    calibration: Calibration
    preprocessing: Preprocessing
    output_name: str
    output_kind: str
    def __init__(self, model_id: _Optional[str] = ..., probe_set_id: _Optional[str] = ..., n_logits: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., source: _Optional[_Union[ModelSource, _Mapping]] = ..., indexed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., r: _Optional[int] = ..., calibration: _Optional[_Union[Calibration, _Mapping]] = ..., preprocessing: _Optional[_Union[Preprocessing, _Mapping]] = ..., output_name: _Optional[str] = ..., output_kind: _Optional[str] = ...) -> None: ...

class LogitDescriptors(_message.Message):
    __slots__ = ("n_logits", "r", "top_indices", "top_values", "offsets")
    N_LOGITS_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    TOP_INDICES_FIELD_NUMBER: _ClassVar[int]
    TOP_VALUES_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    n_logits: int
    r: int
    top_indices: bytes
    top_values: bytes
    offsets: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, n_logits: _Optional[int] = ..., r: _Optional[int] = ..., top_indices: _Optional[bytes] = ..., top_values: _Optional[bytes] = ..., offsets: _Optional[_Iterable[float]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("model_id", "logit_index", "label", "score", "distance", "rank", "evidence")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    logit_index: int
    label: str
    score: float
    distance: float
    rank: int
    evidence: _containers.RepeatedCompositeFieldContainer[ProbeEvidence]
    def __init__(self, model_id: _Optional[str] = ..., logit_index: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., distance: _Optional[float] = ..., rank: _Optional[int] = ..., evidence: _Optional[_Iterable[_Union[ProbeEvidence, _Mapping]]] = ...) -> None: ...

class ProbeEvidence(_message.Message):
    __slots__ = ("probe_index", "logit_value", "query_value")
    PROBE_INDEX_FIELD_NUMBER: _ClassVar[int]
    LOGIT_VALUE_FIELD_NUMBER: _ClassVar[int]
    QUERY_VALUE_FIELD_NUMBER: _ClassVar[int]
    probe_index: int
    logit_value: float
    query_value: float
    def __init__(self, probe_index: _Optional[int] = ..., logit_value: _Optional[float] = ..., query_value: _Optional[float] = ...) -> None: ...

class LogitProbes(_message.Message):
    __slots__ = ("logit_index", "label", "probes")
    LOGIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    logit_index: int
    label: str
    probes: _containers.RepeatedCompositeFieldContainer[ProbeEvidence]
    def __init__(self, logit_index: _Optional[int] = ..., label: _Optional[str] = ..., probes: _Optional[_Iterable[_Union[ProbeEvidence, _Mapping]]] = ...) -> None: ...

class QueryHits(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...
