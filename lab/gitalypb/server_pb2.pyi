from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServerInfoRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ServerInfoResponse(_message.Message):
    __slots__ = ["git_version", "server_version", "storage_statuses"]
    class StorageStatus(_message.Message):
        __slots__ = ["filesystem_id", "fs_type", "readable", "replication_factor", "storage_name", "writeable"]
        FILESYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
        FS_TYPE_FIELD_NUMBER: _ClassVar[int]
        READABLE_FIELD_NUMBER: _ClassVar[int]
        REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
        STORAGE_NAME_FIELD_NUMBER: _ClassVar[int]
        WRITEABLE_FIELD_NUMBER: _ClassVar[int]
        filesystem_id: str
        fs_type: str
        readable: bool
        replication_factor: int
        storage_name: str
        writeable: bool
        def __init__(self, storage_name: _Optional[str] = ..., readable: bool = ..., writeable: bool = ..., fs_type: _Optional[str] = ..., filesystem_id: _Optional[str] = ..., replication_factor: _Optional[int] = ...) -> None: ...
    GIT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORAGE_STATUSES_FIELD_NUMBER: _ClassVar[int]
    git_version: str
    server_version: str
    storage_statuses: _containers.RepeatedCompositeFieldContainer[ServerInfoResponse.StorageStatus]
    def __init__(self, server_version: _Optional[str] = ..., git_version: _Optional[str] = ..., storage_statuses: _Optional[_Iterable[_Union[ServerInfoResponse.StorageStatus, _Mapping]]] = ...) -> None: ...
