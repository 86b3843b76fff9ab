from . import shared_pb2 as _shared_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SSHUploadPackRequest(_message.Message):
    __slots__ = ["git_protocol", "repository", "stdin"]
    GIT_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    git_protocol: str
    repository: _shared_pb2.Repository
    stdin: bytes
    def __init__(self, repository: _Optional[_Union[_shared_pb2.Repository, _Mapping]] = ..., stdin: _Optional[bytes] = ..., git_protocol: _Optional[str] = ...) -> None: ...

class SSHUploadPackResponse(_message.Message):
    __slots__ = ["exit_status", "stderr", "stdout"]
    EXIT_STATUS_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    exit_status: _shared_pb2.ExitStatus
    stderr: bytes
    stdout: bytes
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_status: _Optional[_Union[_shared_pb2.ExitStatus, _Mapping]] = ...) -> None: ...
