"""The app's calls into CommitService, RefService and OperationService, as Rails makes them.

Each function takes a ``gitaly_client.Storage`` (address, token, trusted CAs) and
raises ``gitaly_client.GitalyCallError`` for a failed call, like every other call
the app makes to Gitaly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from lab.gitalypb import (
    commit_pb2,
    commit_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    ref_pb2,
    ref_pb2_grpc,
    repository_pb2,
    repository_pb2_grpc,
    shared_pb2,
)
from labsim.common import simconfig
from labsim.gitaly import gitaly_client

TIMEOUT = gitaly_client.TIMEOUT
#: Rails uses its long timeout for operations that write.
LONG_TIMEOUT = 55.0


_STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    "CommitService": commit_pb2_grpc.CommitServiceStub,
    "RefService": ref_pb2_grpc.RefServiceStub,
    "OperationService": operations_pb2_grpc.OperationServiceStub,
    "RepositoryService": repository_pb2_grpc.RepositoryServiceStub}


def _call(storage: gitaly_client.Storage, method: str, request: Any, _response_cls: Any = None,
          *, kind: str = "unary", timeout: float = TIMEOUT,
          metadata: list[tuple[str, str]] | None = None) -> Any:
    """One RPC ("/gitaly.Service/Method") through the generated stub; server streams
    are read to the end inside the channel's lifetime."""
    service, name = method.removeprefix("/gitaly.").split("/")
    # Rails' long-lived channel for this storage (gitaly_client.Storage): never closed here.
    def run(channel: grpc.Channel) -> Any:
        result = getattr(_STUBS[service](channel), name)(
            request, metadata=storage.metadata() + (metadata or []), timeout=timeout)
        return list(result) if kind == "unary_stream" else result

    try:
        return storage.rails_call(run)
    except grpc.RpcError as exc:
        # Rails' own call: its grpc gem's texts for the lab's release (eras GRPC_* rows).
        raise gitaly_client.call_error(exc, storage.release) from exc


@dataclass(frozen=True)
class User:
    """Who acts, as Rails sends it in OperationService calls (Gitlab::Git::User)."""

    gl_id: str = "user-1"
    name: str = "Administrator"
    email: str = "admin@example.com"
    gl_username: str = "root"

    def message(self) -> Any:
        return shared_pb2.User(gl_id=self.gl_id, name=self.name.encode(),
                               email=self.email.encode(), gl_username=self.gl_username)


class Repository:
    """One project's repository on its storage."""

    def __init__(self, storage: gitaly_client.Storage, relative_path: str,
                 gl_repository: str, project_path: str) -> None:
        self.storage = storage
        self.message = shared_pb2.Repository(storage_name=storage.name,
                                             relative_path=relative_path,
                                             gl_repository=gl_repository,
                                             gl_project_path=project_path)

    # -- CommitService -----------------------------------------------------------

    def tree_entry(self, revision: str, path: str) -> tuple[Any, bytes] | None:
        """(first response, whole data) of a blob, or None when there is no such entry."""
        request = commit_pb2.TreeEntryRequest(repository=self.message, revision=revision.encode(),
                                              path=path.encode())
        try:
            responses = _call(self.storage, "/gitaly.CommitService/TreeEntry", request,
                              commit_pb2.TreeEntryResponse, kind="unary_stream")
        except gitaly_client.GitalyCallError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        if not responses or not responses[0].oid:
            return None
        return responses[0], b"".join(r.data for r in responses)

    def tree_entries(self, revision: str, path: str, recursive: bool) -> list[Any] | None:
        request = commit_pb2.GetTreeEntriesRequest(repository=self.message,
                                                   revision=revision.encode(),
                                                   path=path.encode(), recursive=recursive)
        try:
            responses = _call(self.storage, "/gitaly.CommitService/GetTreeEntries", request,
                              commit_pb2.GetTreeEntriesResponse, kind="unary_stream")
        except gitaly_client.GitalyCallError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return [entry for response in responses for entry in response.entries]

    def find_commit(self, revision: str) -> Any | None:
        response = _call(self.storage, "/gitaly.CommitService/FindCommit",
                         commit_pb2.FindCommitRequest(repository=self.message,
                                                      revision=revision.encode()),
                         commit_pb2.FindCommitResponse)
        return response.commit if response.HasField("commit") else None

    def find_commits(self, revision: str, *, limit: int, offset: int, paths: Iterable[str] = (),
                     all_refs: bool = False) -> list[Any]:
        request = commit_pb2.FindCommitsRequest(
            repository=self.message, revision=revision.encode(), limit=limit, offset=offset,
            paths=[p.encode() for p in paths], all=all_refs)
        responses = _call(self.storage, "/gitaly.CommitService/FindCommits", request,
                          commit_pb2.FindCommitsResponse, kind="unary_stream")
        return [c for response in responses for c in response.commits]

    def commit_stats(self, revision: str) -> tuple[int, int]:
        response = _call(self.storage, "/gitaly.CommitService/CommitStats",
                         commit_pb2.CommitStatsRequest(repository=self.message,
                                                       revision=revision.encode()),
                         commit_pb2.CommitStatsResponse)
        return int(response.additions), int(response.deletions)

    def last_commit_for_path(self, revision: str, path: str) -> Any | None:
        commits = self.find_commits(revision, limit=1, offset=0, paths=[path])
        return commits[0] if commits else None

    # -- RefService --------------------------------------------------------------

    def branches(self) -> list[tuple[str, Any]]:
        responses = _call(self.storage, "/gitaly.RefService/FindAllBranches",
                          ref_pb2.FindAllBranchesRequest(repository=self.message),
                          ref_pb2.FindAllBranchesResponse, kind="unary_stream")
        return [(b.name.decode().removeprefix("refs/heads/"), b.target)
                for response in responses for b in response.branches]

    def merged_branches(self, names: Iterable[str]) -> set[str]:
        request = ref_pb2.FindAllBranchesRequest(repository=self.message, merged_only=True,
                                                 merged_branches=[n.encode() for n in names])
        responses = _call(self.storage, "/gitaly.RefService/FindAllBranches", request,
                          ref_pb2.FindAllBranchesResponse, kind="unary_stream")
        return {b.name.decode().removeprefix("refs/heads/")
                for response in responses for b in response.branches}

    def find_branch(self, name: str) -> Any | None:
        response = _call(self.storage, "/gitaly.RefService/FindBranch",
                         ref_pb2.FindBranchRequest(repository=self.message, name=name.encode()),
                         ref_pb2.FindBranchResponse)
        return response.branch if response.HasField("branch") else None

    def tags(self) -> list[Any]:
        responses = _call(self.storage, "/gitaly.RefService/FindAllTags",
                          ref_pb2.FindAllTagsRequest(repository=self.message),
                          ref_pb2.FindAllTagsResponse, kind="unary_stream")
        return [t for response in responses for t in response.tags]

    def default_branch(self) -> str:
        response = _call(self.storage, "/gitaly.RefService/FindDefaultBranchName",
                         ref_pb2.FindDefaultBranchNameRequest(repository=self.message),
                         ref_pb2.FindDefaultBranchNameResponse)
        return str(response.name.decode().removeprefix("refs/heads/"))

    # -- OperationService --------------------------------------------------------

    def create_branch(self, user: User, name: str, start_point: str) -> Any:
        return _call(self.storage, "/gitaly.OperationService/UserCreateBranch",
                     operations_pb2.UserCreateBranchRequest(
                         repository=self.message, branch_name=name.encode(),
                         user=user.message(), start_point=start_point.encode()),
                     operations_pb2.UserCreateBranchResponse, timeout=LONG_TIMEOUT)

    def delete_branch(self, user: User, name: str) -> Any:
        return _call(self.storage, "/gitaly.OperationService/UserDeleteBranch",
                     operations_pb2.UserDeleteBranchRequest(
                         repository=self.message, branch_name=name.encode(),
                         user=user.message()),
                     operations_pb2.UserDeleteBranchResponse, timeout=LONG_TIMEOUT)

    def create_tag(self, user: User, name: str, target: str, message: str) -> Any:
        return _call(self.storage, "/gitaly.OperationService/UserCreateTag",
                     operations_pb2.UserCreateTagRequest(
                         repository=self.message, tag_name=name.encode(), user=user.message(),
                         target_revision=target.encode(), message=message.encode()),
                     operations_pb2.UserCreateTagResponse, timeout=LONG_TIMEOUT)

    def delete_tag(self, user: User, name: str) -> Any:
        return _call(self.storage, "/gitaly.OperationService/UserDeleteTag",
                     operations_pb2.UserDeleteTagRequest(
                         repository=self.message, tag_name=name.encode(), user=user.message()),
                     operations_pb2.UserDeleteTagResponse, timeout=LONG_TIMEOUT)

    def commit_files(self, user: User, *, branch: str, message: str,
                     actions: list[dict[str, Any]], start_branch: str = "",
                     author_name: str = "", author_email: str = "", force: bool = False,
                     start_sha: str = "") -> Any:
        """UserCommitFiles: a header message, then per action a header and its content."""
        header = operations_pb2.UserCommitFilesRequestHeader(
            repository=self.message, user=user.message(), branch_name=branch.encode(),
            commit_message=message.encode(), commit_author_name=author_name.encode(),
            commit_author_email=author_email.encode(),
            start_branch_name=start_branch.encode(), force=force, start_sha=start_sha)
        return _call(self.storage, "/gitaly.OperationService/UserCommitFiles",
                     _commit_files_stream(header, actions),
                     operations_pb2.UserCommitFilesResponse, kind="stream_unary",
                     timeout=LONG_TIMEOUT)


def replicate(target: gitaly_client.Storage, source: gitaly_client.Storage,
              relative_path: str) -> None:
    """ReplicateRepository on the target storage's Gitaly, which fetches from the source
    Gitaly named in the ``gitaly-servers`` metadata (as Rails' storage move does)."""
    servers = {source.name: {"address": source.address, "token": source.token}}
    request = repository_pb2.ReplicateRepositoryRequest(
        repository=shared_pb2.Repository(storage_name=target.name, relative_path=relative_path),
        source=shared_pb2.Repository(storage_name=source.name, relative_path=relative_path))
    _call(target, "/gitaly.RepositoryService/ReplicateRepository", request,
          timeout=LONG_TIMEOUT,
          metadata=[("gitaly-servers", base64.b64encode(json.dumps(servers).encode()).decode())])


def remove(storage: gitaly_client.Storage, relative_path: str) -> None:
    _call(storage, "/gitaly.RepositoryService/RemoveRepository",
          repository_pb2.RemoveRepositoryRequest(repository=shared_pb2.Repository(
              storage_name=storage.name, relative_path=relative_path)), timeout=LONG_TIMEOUT)


_HEADER = operations_pb2.UserCommitFilesActionHeader
_ACTIONS = {"create": _HEADER.CREATE, "create_dir": _HEADER.CREATE_DIR, "update": _HEADER.UPDATE,
            "move": _HEADER.MOVE, "delete": _HEADER.DELETE, "chmod": _HEADER.CHMOD}


def action_type(name: str) -> operations_pb2.UserCommitFilesActionHeader.ActionType | None:
    return _ACTIONS.get(name)


def _commit_files_stream(header: Any, actions: list[dict[str, Any]]) -> Iterator[Any]:
    messages = operations_pb2
    yield messages.UserCommitFilesRequest(header=header)
    for action in actions:
        content: bytes = action.get("content", b"")
        action_header = messages.UserCommitFilesActionHeader(
            action=_ACTIONS[action["action"]], file_path=action["file_path"].encode(),
            previous_path=action.get("previous_path", "").encode(),
            base64_content=bool(action.get("base64")),
            execute_filemode=bool(action.get("execute_filemode")),
            infer_content=bool(action.get("infer_content")))
        yield messages.UserCommitFilesRequest(
            action=messages.UserCommitFilesAction(header=action_header))
        if content:
            for chunk in simconfig.chunks(content):
                yield messages.UserCommitFilesRequest(
                    action=messages.UserCommitFilesAction(content=chunk))
