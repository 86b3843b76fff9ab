from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Branch(_message.Message):
    __slots__ = ["name", "target_commit"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_COMMIT_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    target_commit: GitCommit
    def __init__(self, name: _Optional[bytes] = ..., target_commit: _Optional[_Union[GitCommit, _Mapping]] = ...) -> None: ...

class CommitAuthor(_message.Message):
    __slots__ = ["date", "email", "name", "timezone"]
    DATE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    date: _timestamp_pb2.Timestamp
    email: bytes
    name: bytes
    timezone: bytes
    def __init__(self, name: _Optional[bytes] = ..., email: _Optional[bytes] = ..., date: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[bytes] = ...) -> None: ...

class ExitStatus(_message.Message):
    __slots__ = ["value"]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: int
    def __init__(self, value: _Optional[int] = ...) -> None: ...

class GitCommit(_message.Message):
    __slots__ = ["author", "body", "body_size", "committer", "id", "parent_ids", "subject"]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    BODY_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMMITTER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_IDS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    author: CommitAuthor
    body: bytes
    body_size: int
    committer: CommitAuthor
    id: str
    parent_ids: _containers.RepeatedScalarFieldContainer[str]
    subject: bytes
    def __init__(self, id: _Optional[str] = ..., subject: _Optional[bytes] = ..., body: _Optional[bytes] = ..., author: _Optional[_Union[CommitAuthor, _Mapping]] = ..., committer: _Optional[_Union[CommitAuthor, _Mapping]] = ..., parent_ids: _Optional[_Iterable[str]] = ..., body_size: _Optional[int] = ...) -> None: ...

class Repository(_message.Message):
    __slots__ = ["gl_project_path", "gl_repository", "relative_path", "storage_name"]
    GL_PROJECT_PATH_FIELD_NUMBER: _ClassVar[int]
    GL_REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_PATH_FIELD_NUMBER: _ClassVar[int]
    STORAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    gl_project_path: str
    gl_repository: str
    relative_path: str
    storage_name: str
    def __init__(self, storage_name: _Optional[str] = ..., relative_path: _Optional[str] = ..., gl_repository: _Optional[str] = ..., gl_project_path: _Optional[str] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ["id", "message", "message_size", "name", "tagger", "target_commit"]
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGGER_FIELD_NUMBER: _ClassVar[int]
    TARGET_COMMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    message: bytes
    message_size: int
    name: bytes
    tagger: CommitAuthor
    target_commit: GitCommit
    def __init__(self, name: _Optional[bytes] = ..., id: _Optional[str] = ..., target_commit: _Optional[_Union[GitCommit, _Mapping]] = ..., message: _Optional[bytes] = ..., message_size: _Optional[int] = ..., tagger: _Optional[_Union[CommitAuthor, _Mapping]] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ["email", "gl_id", "gl_username", "name"]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    GL_ID_FIELD_NUMBER: _ClassVar[int]
    GL_USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    email: bytes
    gl_id: str
    gl_username: str
    name: bytes
    def __init__(self, gl_id: _Optional[str] = ..., name: _Optional[bytes] = ..., email: _Optional[bytes] = ..., gl_username: _Optional[str] = ...) -> None: ...
