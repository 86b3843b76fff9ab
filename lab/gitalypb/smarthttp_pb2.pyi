from . import shared_pb2 as _shared_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRefsRequest(_message.Message):
    __slots__ = ["git_protocol", "repository"]
    GIT_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    git_protocol: str
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., git_protocol: _Optional[str] = ...) -> None: ...

class InfoRefsResponse(_message.Message):
    __slots__ = ["data"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class PostReceivePackRequest(_message.Message):
    __slots__ = ["data", "git_protocol", "gl_id", "gl_repository", "gl_username", "repository"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    GIT_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    GL_ID_FIELD_NUMBER: _ClassVar[int]
    GL_REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    GL_USERNAME_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    git_protocol: str
    gl_id: str
    gl_repository: str
    gl_username: str
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., data: _Optional[bytes] = ..., gl_id: _Optional[str] = ..., gl_repository: _Optional[str] = ..., gl_username: _Optional[str] = ..., git_protocol: _Optional[str] = ...) -> None: ...

class PostReceivePackResponse(_message.Message):
    __slots__ = ["data"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class PostUploadPackRequest(_message.Message):
    __slots__ = ["data", "git_protocol", "repository"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    GIT_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    git_protocol: str
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., data: _Optional[bytes] = ..., git_protocol: _Optional[str] = ...) -> None: ...

class PostUploadPackResponse(_message.Message):
    __slots__ = ["data"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...
