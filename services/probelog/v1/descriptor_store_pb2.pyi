from probelog.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_PUT: _ClassVar[ChangeKind]
    CHANGE_KIND_DELETE: _ClassVar[ChangeKind]
    CHANGE_KIND_RESET: _ClassVar[ChangeKind]
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_PUT: ChangeKind
CHANGE_KIND_DELETE: ChangeKind
CHANGE_KIND_RESET: ChangeKind

class PutProbeSetRequest(_message.Message):
    __slots__ = ("header", "images")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    header: _types_pb2.ProbeSetInfo
    images: bytes
    def __init__(self, header: _Optional[_Union[_types_pb2.ProbeSetInfo, _Mapping]] = ..., images: _Optional[bytes] = ...) -> None: ...

class PutProbeSetResponse(_message.Message):
    __slots__ = ("probe_set", "created")
    PROBE_SET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    probe_set: _types_pb2.ProbeSetInfo
    created: bool
    def __init__(self, probe_set: _Optional[_Union[_types_pb2.ProbeSetInfo, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetProbeSetRequest(_message.Message):
    __slots__ = ("probe_set_id",)
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    def __init__(self, probe_set_id: _Optional[str] = ...) -> None: ...

class GetProbeSetResponse(_message.Message):
    __slots__ = ("header", "images")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    header: _types_pb2.ProbeSetInfo
    images: bytes
    def __init__(self, header: _Optional[_Union[_types_pb2.ProbeSetInfo, _Mapping]] = ..., images: _Optional[bytes] = ...) -> None: ...

class ListStoredProbeSetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStoredProbeSetsResponse(_message.Message):
    __slots__ = ("probe_sets",)
    PROBE_SETS_FIELD_NUMBER: _ClassVar[int]
    probe_sets: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProbeSetInfo]
    def __init__(self, probe_sets: _Optional[_Iterable[_Union[_types_pb2.ProbeSetInfo, _Mapping]]] = ...) -> None: ...

class PutModelDescriptorsRequest(_message.Message):
    __slots__ = ("model", "descriptors")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    model: _types_pb2.ModelInfo
    descriptors: _types_pb2.LogitDescriptors
    def __init__(self, model: _Optional[_Union[_types_pb2.ModelInfo, _Mapping]] = ..., descriptors: _Optional[_Union[_types_pb2.LogitDescriptors, _Mapping]] = ...) -> None: ...

class PutModelDescriptorsResponse(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class GetModelDescriptorsRequest(_message.Message):
    __slots__ = ("probe_set_id", "model_id", "include_descriptors")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    model_id: str
    include_descriptors: bool
    def __init__(self, probe_set_id: _Optional[str] = ..., model_id: _Optional[str] = ..., include_descriptors: _Optional[bool] = ...) -> None: ...

class GetModelDescriptorsResponse(_message.Message):
    __slots__ = ("model", "descriptors")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    model: _types_pb2.ModelInfo
    descriptors: _types_pb2.LogitDescriptors
    def __init__(self, model: _Optional[_Union[_types_pb2.ModelInfo, _Mapping]] = ..., descriptors: _Optional[_Union[_types_pb2.LogitDescriptors, _Mapping]] = ...) -> None: ...

class ListStoredModelsRequest(_message.Message):
    __slots__ = ("probe_set_id", "page_size", "page_token", "partitions")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    page_size: int
    page_token: str
    partitions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, probe_set_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., partitions: _Optional[_Iterable[int]] = ...) -> None: ...

class ListStoredModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_types_pb2.ModelInfo]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[_types_pb2.ModelInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteModelDescriptorsRequest(_message.Message):
    __slots__ = ("probe_set_id", "model_id")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    model_id: str
    def __init__(self, probe_set_id: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class DeleteModelDescriptorsResponse(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class WatchChangesRequest(_message.Message):
    __slots__ = ("after_sequence", "after_sequences", "partitions")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    after_sequences: _containers.RepeatedScalarFieldContainer[int]
    partitions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, after_sequence: _Optional[int] = ..., after_sequences: _Optional[_Iterable[int]] = ..., partitions: _Optional[_Iterable[int]] = ...) -> None: ...

class WatchChangesResponse(_message.Message):
    __slots__ = ("sequence", "kind", "probe_set_id", "model_id", "partition")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: ChangeKind
    probe_set_id: str
    model_id: str
    partition: int
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., probe_set_id: _Optional[str] = ..., model_id: _Optional[str] = ..., partition: _Optional[int] = ...) -> None: ...

class GetStoreStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStoreStatusResponse(_message.Message):
    __slots__ = ("sequence", "backend", "sequences")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    backend: str
    sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequence: _Optional[int] = ..., backend: _Optional[str] = ..., sequences: _Optional[_Iterable[int]] = ...) -> None: ...
