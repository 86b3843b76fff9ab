from . import shared_pb2 as _shared_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperationBranchUpdate(_message.Message):
    __slots__ = ["branch_created", "commit_id", "repo_created"]
    BRANCH_CREATED_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    REPO_CREATED_FIELD_NUMBER: _ClassVar[int]
    branch_created: bool
    commit_id: str
    repo_created: bool
    def __init__(self, commit_id: _Optional[str] = ..., repo_created: bool = ..., branch_created: bool = ...) -> None: ...

class UserCommitFilesAction(_message.Message):
    __slots__ = ["content", "header"]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    header: UserCommitFilesActionHeader
    def __init__(self, header: _Optional[_Union[UserCommitFilesActionHeader, _Mapping]] = ..., content: _Optional[bytes] = ...) -> None: ...

class UserCommitFilesActionHeader(_message.Message):
    __slots__ = ["action", "base64_content", "execute_filemode", "file_path", "infer_content", "previous_path"]
    class ActionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BASE64_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CHMOD: UserCommitFilesActionHeader.ActionType
    CREATE: UserCommitFilesActionHeader.ActionType
    CREATE_DIR: UserCommitFilesActionHeader.ActionType
    DELETE: UserCommitFilesActionHeader.ActionType
    EXECUTE_FILEMODE_FIELD_NUMBER: _ClassVar[int]
    FILE_PATH_FIELD_NUMBER: _ClassVar[int]
    INFER_CONTENT_FIELD_NUMBER: _ClassVar[int]
    MOVE: UserCommitFilesActionHeader.ActionType
    PREVIOUS_PATH_FIELD_NUMBER: _ClassVar[int]
    UPDATE: UserCommitFilesActionHeader.ActionType
    action: UserCommitFilesActionHeader.ActionType
    base64_content: bool
    execute_filemode: bool
    file_path: bytes
    infer_content: bool
    previous_path: bytes
    def __init__(self, action: _Optional[_Union[UserCommitFilesActionHeader.ActionType, str]] = ..., file_path: _Optional[bytes] = ..., previous_path: _Optional[bytes] = ..., base64_content: bool = ..., execute_filemode: bool = ..., infer_content: bool = ...) -> None: ...

class UserCommitFilesRequest(_message.Message):
    __slots__ = ["action", "header"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    action: UserCommitFilesAction
    header: UserCommitFilesRequestHeader
    def __init__(self, header: _Optional[_Union[UserCommitFilesRequestHeader, _Mapping]] = ..., action: _Optional[_Union[UserCommitFilesAction, _Mapping]] = ...) -> None: ...

class UserCommitFilesRequestHeader(_message.Message):
    __slots__ = ["branch_name", "commit_author_email", "commit_author_name", "commit_message", "force", "repository", "start_branch_name", "start_sha", "user"]
    BRANCH_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_AUTHOR_EMAIL_FIELD_NUMBER: _ClassVar[int]
    COMMIT_AUTHOR_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    START_BRANCH_NAME_FIELD_NUMBER: _ClassVar[int]
    START_SHA_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    branch_name: bytes
    commit_author_email: bytes
    commit_author_name: bytes
    commit_message: bytes
    force: bool
    repository: _shared_pb2.Repository
    start_branch_name: bytes
    start_sha: str
    user: _shared_pb2.User
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., user: _Optional[_Union[_shared_pb2.User, _Mapping]] = ..., branch_name: _Optional[bytes] = ..., commit_message: _Optional[bytes] = ..., commit_author_name: _Optional[bytes] = ..., commit_author_email: _Optional[bytes] = ..., start_branch_name: _Optional[bytes] = ..., force: bool = ..., start_sha: _Optional[str] = ...) -> None: ...

class UserCommitFilesResponse(_message.Message):
    __slots__ = ["branch_update", "index_error", "pre_receive_error"]
    BRANCH_UPDATE_FIELD_NUMBER: _ClassVar[int]
    INDEX_ERROR_FIELD_NUMBER: _ClassVar[int]
    PRE_RECEIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    branch_update: OperationBranchUpdate
    index_error: str
    pre_receive_error: str
    def __init__(self, branch_update: _Optional[_Union[OperationBranchUpdate, _Mapping]] = ..., index_error: _Optional[str] = ..., pre_receive_error: _Optional[str] = ...) -> None: ...

class UserCreateBranchRequest(_message.Message):
    __slots__ = ["branch_name", "repository", "start_point", "user"]
    BRANCH_NAME_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    START_POINT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    branch_name: bytes
    repository: _shared_pb2.Repository
    start_point: bytes
    user: _shared_pb2.User
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., branch_name: _Optional[bytes] = ..., user: _Optional[_Union[_shared_pb2.User, _Mapping]] = ..., start_point: _Optional[bytes] = ...) -> None: ...

class UserCreateBranchResponse(_message.Message):
    __slots__ = ["branch", "pre_receive_error"]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    PRE_RECEIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    branch: _shared_pb2.Branch
    pre_receive_error: str
    def __init__(self, branch: _Optional[_Union[_shared_pb2.Branch, _Mapping]] = ..., pre_receive_error: _Optional[str] = ...) -> None: ...

class UserCreateTagRequest(_message.Message):
    __slots__ = ["message", "repository", "tag_name", "target_revision", "user"]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_REVISION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    repository: _shared_pb2.Repository
    tag_name: bytes
    target_revision: bytes
    user: _shared_pb2.User
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., tag_name: _Optional[bytes] = ..., user: _Optional[_Union[_shared_pb2.User, _Mapping]] = ..., target_revision: _Optional[bytes] = ..., message: _Optional[bytes] = ...) -> None: ...

class UserCreateTagResponse(_message.Message):
    __slots__ = ["exists", "pre_receive_error", "tag"]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    PRE_RECEIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    pre_receive_error: str
    tag: _shared_pb2.Tag
    def __init__(self, tag: _Optional[_Union[_shared_pb2.Tag, _Mapping]] = ..., exists: bool = ..., pre_receive_error: _Optional[str] = ...) -> None: ...

class UserDeleteBranchRequest(_message.Message):
    __slots__ = ["branch_name", "repository", "user"]
    BRANCH_NAME_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    branch_name: bytes
    repository: _shared_pb2.Repository
    user: _shared_pb2.User
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., branch_name: _Optional[bytes] = ..., user: _Optional[_Union[_shared_pb2.User, _Mapping]] = ...) -> None: ...

class UserDeleteBranchResponse(_message.Message):
    __slots__ = ["pre_receive_error"]
    PRE_RECEIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    pre_receive_error: str
    def __init__(self, pre_receive_error: _Optional[str] = ...) -> None: ...

class UserDeleteTagRequest(_message.Message):
    __slots__ = ["repository", "tag_name", "user"]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    TAG_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    repository: _shared_pb2.Repository
    tag_name: bytes
    user: _shared_pb2.User
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., tag_name: _Optional[bytes] = ..., user: _Optional[_Union[_shared_pb2.User, _Mapping]] = ...) -> None: ...

class UserDeleteTagResponse(_message.Message):
    __slots__ = ["pre_receive_error"]
    PRE_RECEIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    pre_receive_error: str
    def __init__(self, pre_receive_error: _Optional[str] = ...) -> None: ...
