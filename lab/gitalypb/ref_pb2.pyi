from . import shared_pb2 as _shared_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FindAllBranchesRequest(_message.Message):
    __slots__ = ["merged_branches", "merged_only", "repository"]
    MERGED_BRANCHES_FIELD_NUMBER: _ClassVar[int]
    MERGED_ONLY_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    merged_branches: _containers.RepeatedScalarFieldContainer[bytes]
    merged_only: bool
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., merged_only: bool = ..., merged_branches: _Optional[_Iterable[bytes]] = ...) -> None: ...

class FindAllBranchesResponse(_message.Message):
    __slots__ = ["branches"]
    class Branch(_message.Message):
        __slots__ = ["name", "target"]
        NAME_FIELD_NUMBER: _ClassVar[int]
        TARGET_FIELD_NUMBER: _ClassVar[int]
        name: bytes
        target: _shared_pb2.GitCommit
        def __init__(self, name: _Optional[bytes] = ..., target: _Optional[_Union[_shared_pb2.GitCommit, _Mapping]] = ...) -> None: ...
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    branches: _containers.RepeatedCompositeFieldContainer[FindAllBranchesResponse.Branch]
    def __init__(self, branches: _Optional[_Iterable[_Union[FindAllBranchesResponse.Branch, _Mapping]]] = ...) -> None: ...

class FindAllTagsRequest(_message.Message):
    __slots__ = ["repository"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ...) -> None: ...

class FindAllTagsResponse(_message.Message):
    __slots__ = ["tags"]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[_shared_pb2.Tag]
    def __init__(self, tags: _Optional[_Iterable[_Union[_shared_pb2.Tag, _Mapping]]] = ...) -> None: ...

class FindBranchRequest(_message.Message):
    __slots__ = ["name", "repository"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., name: _Optional[bytes] = ...) -> None: ...

class FindBranchResponse(_message.Message):
    __slots__ = ["branch"]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    branch: _shared_pb2.Branch
    def __init__(self, branch: _Optional[_Union[_shared_pb2.Branch, _Mapping]] = ...) -> None: ...

class FindDefaultBranchNameRequest(_message.Message):
    __slots__ = ["repository"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ...) -> None: ...

class FindDefaultBranchNameResponse(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    def __init__(self, name: _Optional[bytes] = ...) -> None: ...
