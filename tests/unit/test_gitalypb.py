"""The modules generated from our Gitaly protos (proto/gitaly-lab -> lab/gitalypb), the names
and numbers they must share with Gitaly, and the host client using them."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import shutil
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

import lab.gitalypb
from lab.client.gitaly import GitalyError, ServerInfo, StorageStatus, server_info
from lab.engine import images
from lab.gitalypb import (
    commit_pb2,
    operations_pb2,
    ref_pb2,
    repository_pb2,
    server_pb2,
    server_pb2_grpc,
    shared_pb2,
    smarthttp_pb2,
    ssh_pb2,
)
from lab.omnibus.auth import check_gitaly_auth

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto" / "gitaly-lab"
TOKEN = "secret-token"


def test_one_module_per_proto_and_the_release_they_follow() -> None:
    protos = {p.stem for p in PROTO_DIR.glob("*.proto")}
    generated = {m.name.removesuffix("_pb2") for m in pkgutil.iter_modules(lab.gitalypb.__path__)
                 if m.name.endswith("_pb2")}
    assert protos == generated
    assert lab.gitalypb.GITALY_PROTO_RELEASE == _generator().GITALY_RELEASE == "v15.8.6"
    for module in pkgutil.iter_modules(lab.gitalypb.__path__):
        importlib.import_module(f"lab.gitalypb.{module.name}")


def _numbers(message: Any) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


#: Per RPC its input and output message, as in Gitaly v15.8.6's protos.
GITALY_RPCS = {
    "ServerService": {"ServerInfo": ("ServerInfoRequest", "ServerInfoResponse")},
    "RepositoryService": {
        "RepositoryExists": ("RepositoryExistsRequest", "RepositoryExistsResponse"),
        "CreateRepository": ("CreateRepositoryRequest", "CreateRepositoryResponse"),
        "RemoveRepository": ("RemoveRepositoryRequest", "RemoveRepositoryResponse"),
        "ReplicateRepository": ("ReplicateRepositoryRequest", "ReplicateRepositoryResponse")},
    "SSHService": {"SSHUploadPack": ("SSHUploadPackRequest", "SSHUploadPackResponse")},
    "SmartHTTPService": {
        "InfoRefsUploadPack": ("InfoRefsRequest", "InfoRefsResponse"),
        "InfoRefsReceivePack": ("InfoRefsRequest", "InfoRefsResponse"),
        "PostUploadPack": ("PostUploadPackRequest", "PostUploadPackResponse"),
        "PostReceivePack": ("PostReceivePackRequest", "PostReceivePackResponse")},
    "CommitService": {m: (f"{m}Request", f"{m}Response") for m in (
        "TreeEntry", "GetTreeEntries", "FindCommit", "FindCommits", "CountCommits",
        "CommitStats")},
    "RefService": {m: (f"{m}Request", f"{m}Response") for m in (
        "FindDefaultBranchName", "FindAllBranches", "FindAllTags", "FindBranch")},
    "OperationService": {m: (f"{m}Request", f"{m}Response") for m in (
        "UserCreateBranch", "UserDeleteBranch", "UserCreateTag", "UserDeleteTag",
        "UserCommitFiles")},
}


def test_services_and_methods_are_gitalys() -> None:
    found = {}
    for module in (server_pb2, repository_pb2, smarthttp_pb2, ssh_pb2, commit_pb2, ref_pb2,
                   operations_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            assert service.full_name == f"gitaly.{service.name}"
            found[service.name] = {m.name: (m.input_type.full_name, m.output_type.full_name)
                                   for m in service.methods}
    assert found == {service: {m: (f"gitaly.{i}", f"gitaly.{o}") for m, (i, o) in rpcs.items()}
                     for service, rpcs in GITALY_RPCS.items()}


def test_names_and_field_numbers_are_gitalys() -> None:
    # Numbers from Gitaly v15.8.6's protos: a wrong one still compiles, only this catches it.
    assert _numbers(server_pb2.ServerInfoResponse.StorageStatus) == {
        "storage_name": 1, "readable": 2, "writeable": 3, "fs_type": 4, "filesystem_id": 5,
        "replication_factor": 6}
    assert _numbers(server_pb2.ServerInfoResponse) == {
        "server_version": 1, "git_version": 2, "storage_statuses": 3}
    assert _numbers(shared_pb2.Repository) == {
        "storage_name": 2, "relative_path": 3, "gl_repository": 6, "gl_project_path": 8}
    assert _numbers(shared_pb2.User) == {"gl_id": 1, "name": 2, "email": 3, "gl_username": 4}
    assert _numbers(shared_pb2.GitCommit) == {
        "id": 1, "subject": 2, "body": 3, "author": 4, "committer": 5, "parent_ids": 6,
        "body_size": 7}
    assert _numbers(shared_pb2.Tag) == {
        "name": 1, "id": 2, "target_commit": 3, "message": 4, "message_size": 5, "tagger": 6}
    assert _numbers(smarthttp_pb2.PostReceivePackRequest) == {
        "repository": 1, "data": 2, "gl_id": 3, "gl_repository": 4, "gl_username": 5,
        "git_protocol": 6}
    assert _numbers(smarthttp_pb2.PostUploadPackRequest) == {
        "repository": 1, "data": 2, "git_protocol": 4}
    assert _numbers(ssh_pb2.SSHUploadPackRequest) == {
        "repository": 1, "stdin": 2, "git_protocol": 5}
    assert _numbers(ssh_pb2.SSHUploadPackResponse) == {
        "stdout": 1, "stderr": 2, "exit_status": 3}
    assert _numbers(repository_pb2.ReplicateRepositoryRequest) == {"repository": 1, "source": 2}
    assert _numbers(commit_pb2.TreeEntryResponse) == {
        "type": 1, "oid": 2, "size": 3, "mode": 4, "data": 5}
    assert _numbers(commit_pb2.FindCommitsRequest) == {
        "repository": 1, "revision": 2, "limit": 3, "offset": 4, "paths": 5, "skip_merges": 7,
        "after": 9, "before": 10, "all": 11}
    assert _numbers(commit_pb2.CountCommitsRequest) == {
        "repository": 1, "revision": 2, "after": 3, "before": 4, "path": 5, "max_count": 6,
        "all": 7}
    assert _numbers(commit_pb2.TreeEntry) == {
        "oid": 1, "root_oid": 2, "path": 3, "type": 4, "mode": 5, "commit_oid": 6,
        "flat_path": 7}
    assert _numbers(operations_pb2.UserCommitFilesRequestHeader) == {
        "repository": 1, "user": 2, "branch_name": 3, "commit_message": 4,
        "commit_author_name": 5, "commit_author_email": 6, "start_branch_name": 7, "force": 9,
        "start_sha": 10}
    assert _numbers(operations_pb2.UserCreateTagResponse) == {
        "tag": 1, "exists": 2, "pre_receive_error": 3}
    assert _numbers(operations_pb2.UserCreateBranchResponse) == {
        "branch": 1, "pre_receive_error": 2}


def test_enum_values_are_gitalys() -> None:
    def values(enum: Any) -> dict[str, int]:
        return {v.name: v.number for v in enum.DESCRIPTOR.values}
    assert values(commit_pb2.TreeEntryResponse.ObjectType) == {
        "COMMIT": 0, "BLOB": 1, "TREE": 2, "TAG": 3}
    assert values(commit_pb2.TreeEntry.EntryType) == {"BLOB": 0, "TREE": 1, "COMMIT": 3}
    assert values(operations_pb2.UserCommitFilesActionHeader.ActionType) == {
        "CREATE": 0, "CREATE_DIR": 1, "UPDATE": 2, "MOVE": 3, "DELETE": 4, "CHMOD": 5}


def test_a_commit_files_stream_is_gitalys_bytes() -> None:
    # Tag 0x0a = field 1, length-delimited: the header is field 1 of the request's oneof.
    header = operations_pb2.UserCommitFilesRequestHeader(branch_name=b"main", force=True)
    request = operations_pb2.UserCommitFilesRequest(header=header)
    assert request.SerializeToString() == b"\x0a\x08\x1a\x04main\x48\x01"


def test_generated_modules_import_each_other_relatively() -> None:
    # The sim image carries the same files as a top-level ``gitalypb`` package.
    spec = importlib.util.find_spec("lab.gitalypb")
    assert spec is not None
    assert spec.origin is not None
    for path in Path(spec.origin).parent.glob("*.py"):
        for line in path.read_text().splitlines():
            assert not (line.startswith("import ") and "_pb2" in line), f"{path.name}: {line}"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_rewrites_only_our_imports() -> None:
    text = ("from google.protobuf import duration_pb2 as d\nimport shared_pb2 as shared__pb2\n"
            "import grpc\nimport other_pb2 as o\nfrom lint_pb2 import x\n")
    assert _generator()._relative_imports(text, {"shared_pb2", "lint_pb2"}) == (
        "from google.protobuf import duration_pb2 as d\nfrom . import shared_pb2 as shared__pb2\n"
        "import grpc\nimport other_pb2 as o\nfrom .lint_pb2 import x\n")


def test_sim_tag_follows_the_generated_modules(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    images.forget_image_refs()
    before = images.sim_image_ref()
    lab_copy = tmp_path / "lab"
    shutil.copytree(ROOT / "lab", lab_copy, ignore=shutil.ignore_patterns("__pycache__"))
    copy = lab_copy / "gitalypb"
    monkeypatch.setattr(images, "_lab_dir", lambda: lab_copy)
    monkeypatch.setattr(images, "_labsim_dir", lambda: ROOT / "labsim")
    images.forget_image_refs()
    assert images.sim_image_ref() == before
    (copy / "server_pb2.py").write_text((copy / "server_pb2.py").read_text() + "\n")
    images.forget_image_refs()
    assert images.sim_image_ref() != before
    images.forget_image_refs()


class _Server(server_pb2_grpc.ServerServiceServicer):
    def ServerInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        result = check_gitaly_auth(TOKEN, dict(context.invocation_metadata()).get("authorization"))
        if not result.ok:
            context.abort(getattr(grpc.StatusCode, result.outcome.value), result.message)
        return server_pb2.ServerInfoResponse(
            server_version="15.8.6", git_version="2.39.2",
            storage_statuses=[server_pb2.ServerInfoResponse.StorageStatus(
                storage_name="default", readable=True, writeable=True, fs_type="ext4",
                filesystem_id="id-1", replication_factor=1)])


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server_pb2_grpc.add_ServerServiceServicer_to_server(_Server(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"tcp://127.0.0.1:{port}"
    server.stop(0).wait()


def test_server_info_through_the_typed_stub(address: str) -> None:
    assert server_info(address, TOKEN) == ServerInfo(
        "15.8.6", "2.39.2", (StorageStatus("default", True, True, "ext4", "id-1"),))


# Like Rails, the client signs even with an empty token: Gitaly says "permission denied".
@pytest.mark.parametrize(("token", "printed"), [
    ("wrong", "7:permission denied"), ("", "7:permission denied")])
def test_server_info_errors_print_like_rails(address: str, token: str, printed: str) -> None:
    with pytest.raises(GitalyError) as info:
        server_info(address, token)
    assert str(info.value) == printed


def test_rpcs_we_do_not_serve_answer_unimplemented(address: str) -> None:
    # DiskStatistics is in Gitaly's ServerService, not in our subset: called by its path,
    # the server answers like a Gitaly that lacks it.
    with grpc.insecure_channel(address.removeprefix("tcp://")) as channel, \
            pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/gitaly.ServerService/DiskStatistics")(b"", timeout=5)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
