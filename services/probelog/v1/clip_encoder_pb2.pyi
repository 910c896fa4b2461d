from probelog.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodeTextRequest(_message.Message):
    __slots__ = ("texts", "prompt_templates")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    prompt_templates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., prompt_templates: _Optional[_Iterable[str]] = ...) -> None: ...

class EncodeTextResponse(_message.Message):
    __slots__ = ("embeddings",)
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _types_pb2.FloatMatrix
    def __init__(self, embeddings: _Optional[_Union[_types_pb2.FloatMatrix, _Mapping]] = ...) -> None: ...

class EncodeImagesRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class EncodeImagesResponse(_message.Message):
    __slots__ = ("embeddings",)
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _types_pb2.FloatMatrix
    def __init__(self, embeddings: _Optional[_Union[_types_pb2.FloatMatrix, _Mapping]] = ...) -> None: ...

class ImageSet(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Concept(_message.Message):
    __slots__ = ("text", "images")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    images: ImageSet
    def __init__(self, text: _Optional[str] = ..., images: _Optional[_Union[ImageSet, _Mapping]] = ...) -> None: ...

class ComputeDescriptorsRequest(_message.Message):
    __slots__ = ("probe_set_id", "concepts", "prompt_templates")
    PROBE_SET_ID_FIELD_NUMBER: _ClassVar[int]
    CONCEPTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    probe_set_id: str
    concepts: _containers.RepeatedCompositeFieldContainer[Concept]
    prompt_templates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, probe_set_id: _Optional[str] = ..., concepts: _Optional[_Iterable[_Union[Concept, _Mapping]]] = ..., prompt_templates: _Optional[_Iterable[str]] = ...) -> None: ...

class ComputeDescriptorsResponse(_message.Message):
    __slots__ = ("descriptors",)
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    descriptors: _types_pb2.FloatMatrix
    def __init__(self, descriptors: _Optional[_Union[_types_pb2.FloatMatrix, _Mapping]] = ...) -> None: ...

class GetEncoderInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEncoderInfoResponse(_message.Message):
    __slots__ = ("model_name", "pretrained", "embedding_dim", "default_prompt_templates", "encoder_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PRETRAINED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROMPT_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    ENCODER_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    pretrained: str
    embedding_dim: int
    default_prompt_templates: _containers.RepeatedScalarFieldContainer[str]
    encoder_id: str
    def __init__(self, model_name: _Optional[str] = ..., pretrained: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., default_prompt_templates: _Optional[_Iterable[str]] = ..., encoder_id: _Optional[str] = ...) -> None: ...
