from probelog.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorSpec(_message.Message):
    __slots__ = ("name", "datatype", "dims")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    datatype: str
    dims: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., datatype: _Optional[str] = ..., dims: _Optional[_Iterable[int]] = ...) -> None: ...

class ServedModel(_message.Message):
    __slots__ = ("name", "version", "state", "inputs", "outputs", "max_batch_size", "n_logits", "platform", "parameters", "labels", "preprocessing", "output_name", "output_kind")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_LOGITS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    state: str
    inputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    max_batch_size: int
    n_logits: int
    platform: str
    parameters: _containers.ScalarMap[str, str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    preprocessing: _types_pb2.Preprocessing
    output_name: str
    output_kind: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., max_batch_size: _Optional[int] = ..., n_logits: _Optional[int] = ..., platform: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Iterable[str]] = ..., preprocessing: _Optional[_Union[_types_pb2.Preprocessing, _Mapping]] = ..., output_name: _Optional[str] = ..., output_kind: _Optional[str] = ...) -> None: ...

class ListServedModelsRequest(_message.Message):
    __slots__ = ("ready_only",)
    READY_ONLY_FIELD_NUMBER: _ClassVar[int]
    ready_only: bool
    def __init__(self, ready_only: _Optional[bool] = ...) -> None: ...

class ListServedModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ServedModel]
    def __init__(self, models: _Optional[_Iterable[_Union[ServedModel, _Mapping]]] = ...) -> None: ...

class GetServedModelRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetServedModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ServedModel
    def __init__(self, model: _Optional[_Union[ServedModel, _Mapping]] = ...) -> None: ...

class LoadServedModelRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class LoadServedModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ServedModel
    def __init__(self, model: _Optional[_Union[ServedModel, _Mapping]] = ...) -> None: ...

class UnloadServedModelRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class UnloadServedModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "probe_set_id", "batch_size", "preprocessing", "output_name", "output_kind")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    probe_set_id: str
    batch_size: int
    preprocessing: _types_pb2.Preprocessing
    output_name: str
    output_kind: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., probe_set_id: _Optional[str] = ..., batch_size: _Optional[int] = ..., preprocessing: _Optional[_Union[_types_pb2.Preprocessing, _Mapping]] = ..., output_name: _Optional[str] = ..., output_kind: _Optional[str] = ...) -> None: ...

class ProbeResponse(_message.Message):
    __slots__ = ("model", "probe_offset", "logits", "images_per_second")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROBE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    model: ServedModel
    probe_offset: int
    logits: _types_pb2.FloatMatrix
    images_per_second: float
    def __init__(self, model: _Optional[_Union[ServedModel, _Mapping]] = ..., probe_offset: _Optional[int] = ..., logits: _Optional[_Union[_types_pb2.FloatMatrix, _Mapping]] = ..., images_per_second: _Optional[float] = ...) -> None: ...
