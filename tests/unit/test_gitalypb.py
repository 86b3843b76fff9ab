"""The modules generated from Gitaly's protos (lab/gitalypb) and the host client using them."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

import lab.gitalypb
from lab.auth import check_gitaly_auth
from lab.client.gitaly import GitalyError, ServerInfo, StorageStatus, server_info
from lab.engine import images
from lab.gitalypb import server_pb2, server_pb2_grpc, smarthttp_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto" / "gitaly"
TOKEN = "secret-token"


def test_one_module_per_proto_from_the_recorded_release() -> None:
    protos = {p.stem for p in PROTO_DIR.glob("*.proto")}
    generated = {m.name.removesuffix("_pb2") for m in pkgutil.iter_modules(lab.gitalypb.__path__)
                 if m.name.endswith("_pb2")}
    assert protos == generated
    tag, commit = (PROTO_DIR / "RELEASE").read_text().split()
    assert (tag, commit) == (lab.gitalypb.GITALY_PROTO_RELEASE, lab.gitalypb.GITALY_PROTO_COMMIT)
    for module in pkgutil.iter_modules(lab.gitalypb.__path__):
        importlib.import_module(f"lab.gitalypb.{module.name}")


def test_names_and_field_numbers_are_gitalys() -> None:
    service = server_pb2.DESCRIPTOR.services_by_name["ServerService"]
    assert service.full_name == "gitaly.ServerService"
    assert service.methods_by_name["ServerInfo"].output_type.full_name == \
        "gitaly.ServerInfoResponse"
    status = server_pb2.ServerInfoResponse.StorageStatus.DESCRIPTOR
    assert {f.name: f.number for f in status.fields} == {
        "storage_name": 1, "readable": 2, "writeable": 3, "fs_type": 4, "filesystem_id": 5,
        "replication_factor": 6}
    push = smarthttp_pb2.PostReceivePackRequest.DESCRIPTOR
    assert [(f.name, f.number) for f in push.fields][:5] == [
        ("repository", 1), ("data", 2), ("gl_id", 3), ("gl_repository", 4), ("gl_username", 5)]


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


def test_generator_takes_a_release_from_a_gitaly_git_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "gitaly"
    (src / "proto" / "go").mkdir(parents=True)
    (src / "proto" / "server.proto").write_text('syntax = "proto3";\n')
    (src / "proto" / "go" / "server.pb.go").write_text("generated Go\n")
    (src / "LICENSE").write_text("MIT\n")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(src), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r")
    git("tag", "v99.0.0")
    generator = _generator()
    out = tmp_path / "protos"
    out.mkdir()
    (out / "stale.proto").write_text("from the previous release\n")
    monkeypatch.setattr(generator, "PROTO_DIR", out)
    monkeypatch.setattr(generator, "RELEASE_FILE", out / "RELEASE")
    generator.import_protos(src / ".git", "v99.0.0")
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE", "RELEASE", "server.proto"]
    assert (out / "RELEASE").read_text() == f"v99.0.0 {git('rev-parse', 'HEAD')}\n"


def test_sim_tag_follows_the_generated_modules(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    images.forget_image_refs()
    before = images.sim_image_ref()
    copy = tmp_path / "gitalypb"
    shutil.copytree(ROOT / "lab" / "gitalypb", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(images, "_gitalypb", lambda: copy)
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


@pytest.mark.parametrize(("token", "printed"), [
    ("wrong", "7:permission denied"), ("", "16:authentication required")])
def test_server_info_errors_print_like_rails(address: str, token: str, printed: str) -> None:
    with pytest.raises(GitalyError) as info:
        server_info(address, token)
    assert str(info.value) == printed


def test_unimplemented_rpcs_answer_unimplemented(address: str) -> None:
    with grpc.insecure_channel(address.removeprefix("tcp://")) as channel, \
            pytest.raises(grpc.RpcError) as info:
        server_pb2_grpc.ServerServiceStub(channel).DiskStatistics(
            server_pb2.DiskStatisticsRequest(), timeout=5)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED

