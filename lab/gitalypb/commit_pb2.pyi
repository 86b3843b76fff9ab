from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import shared_pb2 as _shared_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommitStatsRequest(_message.Message):
    __slots__ = ["repository", "revision"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    revision: bytes
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., revision: _Optional[bytes] = ...) -> None: ...

class CommitStatsResponse(_message.Message):
    __slots__ = ["additions", "deletions", "oid"]
    ADDITIONS_FIELD_NUMBER: _ClassVar[int]
    DELETIONS_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    additions: int
    deletions: int
    oid: str
    def __init__(self, oid: _Optional[str] = ..., additions: _Optional[int] = ..., deletions: _Optional[int] = ...) -> None: ...

class CountCommitsRequest(_message.Message):
    __slots__ = ["after", "all", "before", "max_count", "path", "repository", "revision"]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    after: _timestamp_pb2.Timestamp
    all: bool
    before: _timestamp_pb2.Timestamp
    max_count: int
    path: bytes
    repository: _shared_pb2.Repository
    revision: bytes
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., revision: _Optional[bytes] = ..., after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., path: _Optional[bytes] = ..., max_count: _Optional[int] = ..., all: bool = ...) -> None: ...

class CountCommitsResponse(_message.Message):
    __slots__ = ["count"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class FindCommitRequest(_message.Message):
    __slots__ = ["repository", "revision"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    revision: bytes
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., revision: _Optional[bytes] = ...) -> None: ...

class FindCommitResponse(_message.Message):
    __slots__ = ["commit"]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    commit: _shared_pb2.GitCommit
    def __init__(self, commit: _Optional[_Union[_shared_pb2.GitCommit, _Mapping]] = ...) -> None: ...

class FindCommitsRequest(_message.Message):
    __slots__ = ["after", "all", "before", "limit", "offset", "paths", "repository", "revision", "skip_merges"]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SKIP_MERGES_FIELD_NUMBER: _ClassVar[int]
    after: _timestamp_pb2.Timestamp
    all: bool
    before: _timestamp_pb2.Timestamp
    limit: int
    offset: int
    paths: _containers.RepeatedScalarFieldContainer[bytes]
    repository: _shared_pb2.Repository
    revision: bytes
    skip_merges: bool
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., revision: _Optional[bytes] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., paths: _Optional[_Iterable[bytes]] = ..., skip_merges: bool = ..., after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., all: bool = ...) -> None: ...

class FindCommitsResponse(_message.Message):
    __slots__ = ["commits"]
    COMMITS_FIELD_NUMBER: _ClassVar[int]
    commits: _containers.RepeatedCompositeFieldContainer[_shared_pb2.GitCommit]
    def __init__(self, commits: _Optional[_Iterable[_Union[_shared_pb2.GitCommit, _Mapping]]] = ...) -> None: ...

class GetTreeEntriesRequest(_message.Message):
    __slots__ = ["path", "recursive", "repository", "revision"]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    recursive: bool
    repository: _shared_pb2.Repository
    revision: bytes
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., revision: _Optional[bytes] = ..., path: _Optional[bytes] = ..., recursive: bool = ...) -> None: ...

class GetTreeEntriesResponse(_message.Message):
    __slots__ = ["entries"]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[TreeEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[TreeEntry, _Mapping]]] = ...) -> None: ...

class TreeEntry(_message.Message):
    __slots__ = ["commit_oid", "flat_path", "mode", "oid", "path", "root_oid", "type"]
    class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    BLOB: TreeEntry.EntryType
    COMMIT: TreeEntry.EntryType
    COMMIT_OID_FIELD_NUMBER: _ClassVar[int]
    FLAT_PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_OID_FIELD_NUMBER: _ClassVar[int]
    TREE: TreeEntry.EntryType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    commit_oid: str
    flat_path: bytes
    mode: int
    oid: str
    path: bytes
    root_oid: str
    type: TreeEntry.EntryType
    def __init__(self, oid: _Optional[str] = ..., root_oid: _Optional[str] = ..., path: _Optional[bytes] = ..., type: _Optional[_Union[TreeEntry.EntryType, str]] = ..., mode: _Optional[int] = ..., commit_oid: _Optional[str] = ..., flat_path: _Optional[bytes] = ...) -> None: ...

class TreeEntryRequest(_message.Message):
    __slots__ = ["limit", "path", "repository", "revision"]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    limit: int
    path: bytes
    repository: _shared_pb2.Repository
    revision: bytes
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., revision: _Optional[bytes] = ..., path: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class TreeEntryResponse(_message.Message):
    __slots__ = ["data", "mode", "oid", "size", "type"]
    class ObjectType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    BLOB: TreeEntryResponse.ObjectType
    COMMIT: TreeEntryResponse.ObjectType
    DATA_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TAG: TreeEntryResponse.ObjectType
    TREE: TreeEntryResponse.ObjectType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mode: int
    oid: str
    size: int
    type: TreeEntryResponse.ObjectType
    def __init__(self, type: _Optional[_Union[TreeEntryResponse.ObjectType, str]] = ..., oid: _Optional[str] = ..., size: _Optional[int] = ..., mode: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
