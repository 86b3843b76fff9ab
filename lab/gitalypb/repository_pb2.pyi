from . import shared_pb2 as _shared_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateRepositoryRequest(_message.Message):
    __slots__ = ["repository"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ...) -> None: ...

class CreateRepositoryResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class RemoveRepositoryRequest(_message.Message):
    __slots__ = ["repository"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ...) -> None: ...

class RemoveRepositoryResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ReplicateRepositoryRequest(_message.Message):
    __slots__ = ["repository", "source"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    source: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., source: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ...) -> None: ...

class ReplicateRepositoryResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class RepositoryExistsRequest(_message.Message):
    __slots__ = ["repository"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ...) -> None: ...

class RepositoryExistsResponse(_message.Message):
    __slots__ = ["exists"]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    def __init__(self, exists: bool = ...) -> None: ...
