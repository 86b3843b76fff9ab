"""A Gitaly sim container enforces Gitaly's v2 token auth over tcp:// and tls://.

The containers are ``lab.GitalyContainer``s: a Gitaly-only node
configured by the toolkit's renderer, ready once ServerInfo answers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sim_helpers import require_docker

from lab.client.gitaly import GitalyError, server_info
from lab.engine import docker as dk
from lab.errors import NotReady
from lab.lifecycle import gc as lab_gc
from lab.omnibus import eras
from lab.omnibus.auth import gitaly_v1_token
from lab.omnibus.release import Version
from lab.render import tls
from lab.render.compose_file import DIR_LABEL, LAB_LABEL
from lab.store import state
from lab.testcontainers import GitalyContainer

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]

def start(**kwargs: Any) -> GitalyContainer:
    require_docker()
    return GitalyContainer(**kwargs).start()


@pytest.fixture(scope="module")
def tcp() -> Iterator[GitalyContainer]:
    gitaly = start(storages=("default", "storage1"))
    try:
        yield gitaly
    finally:
        gitaly.stop()


@pytest.fixture(scope="module")
def tls_node() -> Iterator[GitalyContainer]:
    gitaly = start(tls=True)
    try:
        yield gitaly
    finally:
        gitaly.stop()


def test_server_info_tcp(tcp: GitalyContainer) -> None:
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", tcp.address)
    info = server_info(tcp.address, tcp.token)
    assert info.server_version == "gitlab-testlab-sim"
    assert info.git_version
    assert [s.storage_name for s in info.storage_statuses] == ["default", "storage1"]
    assert info.storage_statuses[0].readable
    assert info.storage_statuses[0].writeable
    assert tcp.info == info  # what the readiness wait saw


def test_standard_testcontainers_address_works(tcp: GitalyContainer) -> None:
    # What a testcontainers user writes: host ip and exposed port, as for any container.
    host, port = tcp.get_container_host_ip(), tcp.get_exposed_port(8075)
    assert host == "127.0.0.1"  # where the port is bound (not the bridge gateway)
    info = server_info(f"tcp://{host}:{port}", tcp.token)
    assert [s.storage_name for s in info.storage_statuses] == ["default", "storage1"]
    assert tcp.address == f"tcp://{host}:{port}"


def test_server_info_tls(tls_node: GitalyContainer) -> None:
    assert tls_node.address.startswith("tls://127.0.0.1:")
    assert tls_node.ca_pem is not None
    info = server_info(tls_node.address, tls_node.token, ca_pem=tls_node.ca_pem,
                       server_name_override="gitaly1")
    assert info.server_version == "gitlab-testlab-sim"


def test_labelled_for_lab_gc(tcp: GitalyContainer) -> None:
    found = dk.containers({LAB_LABEL: tcp.lab.name})
    assert [c.id for c in found] == [tcp.get_wrapped_container().id]
    # The folder label names a lab folder with this process's up-marker: `lab gc`
    # leaves the node alone now and sweeps it after a killed run.
    assert state.up_marker_pid(Path(found[0].labels[DIR_LABEL])) == os.getpid()
    assert found[0].ports
    assert {addr.rsplit(":", 1)[0] for addr in found[0].ports.values()} == {"127.0.0.1"}


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_wrong_token_is_permission_denied(tcp: GitalyContainer,
                                          tls_node: GitalyContainer,
                                          scheme: str) -> None:
    node = tcp if scheme == "tcp" else tls_node
    with pytest.raises(GitalyError) as info:
        server_info(node.address, "wrong-token", ca_pem=node.ca_pem,
                    server_name_override="gitaly1")
    assert info.value.code_name == "PERMISSION_DENIED"
    assert str(info.value) == "7:permission denied"


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_empty_client_token_is_permission_denied(tcp: GitalyContainer,
                                                 tls_node: GitalyContainer,
                                                 scheme: str) -> None:
    """Rails (and the host client) sign with an empty key when the token is forgotten."""
    node = tcp if scheme == "tcp" else tls_node
    with pytest.raises(GitalyError) as info:
        server_info(node.address, "", ca_pem=node.ca_pem, server_name_override="gitaly1")
    assert str(info.value) == "7:permission denied"


@pytest.mark.parametrize(("metadata", "expected"), [
    ([], "16:authentication required"),
    ([("authorization", "Bearer v2.xyz.1")], "16:authentication required"),   # not hex
    ([("authorization", "bearer v3.00.1")], "7:permission denied"),           # unknown version
])
def test_gitaly_judges_raw_metadata(tcp: GitalyContainer, metadata: list[tuple[str, str]],
                                    expected: str) -> None:
    target = tcp.address.removeprefix("tcp://")
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/gitaly.ServerService/ServerInfo")
        with pytest.raises(grpc.RpcError) as info:
            call(b"", metadata=metadata, timeout=10)
    assert f"{info.value.code().value[0]}:{info.value.details()}" == expected


def test_untrusted_ca_fails(tls_node: GitalyContainer) -> None:
    _, other_ca = tls.make_ca("another lab")
    with pytest.raises(GitalyError) as info:
        server_info(tls_node.address, tls_node.token, ca_pem=other_ca.encode(),
                    server_name_override="gitaly1", timeout=3)
    assert info.value.code_name == "UNAVAILABLE"
    # gRPC reports the TLS handshake failure, not just an unreachable server.
    assert re.search(r"(?i)CERTIFICATE_VERIFY_FAILED|certificate verify failed",
                     info.value.details), info.value.details


def test_gitlab_ctl_and_logs(tcp: GitalyContainer) -> None:
    status = tcp.exec(["gitlab-ctl", "status"])
    assert status.output.decode().startswith("run: gitaly: (pid ")
    log = tcp.exec(["cat", "/var/log/gitlab/gitaly/current"]).output.decode()
    assert "listening on" in log


def test_syntax_error_fails_the_node() -> None:
    def break_it(etc: Path) -> None:
        (etc / "gitlab.rb").write_text("external_url 'http://gitlab'\ngitaly['x'] = {\n")

    gitaly = GitalyContainer(prepare=break_it, timeout=60)
    require_docker()
    with pytest.raises(NotReady) as err:
        gitaly.start()
    assert "/etc/gitlab/gitlab.rb:2: syntax error" in str(err.value)
    # start() cleaned up after itself.
    assert dk.containers({LAB_LABEL: gitaly.lab.name}) == []


def test_lab_gc_sweeps_a_killed_runs_node(tmp_path: Path) -> None:
    require_docker()
    ready = tmp_path / "ready"
    script = (
        "import sys, time\n"
        "from lab.testcontainers import GitalyContainer\n"
        "g = GitalyContainer().start()\n"
        f"open({str(ready)!r}, 'w').write(g.lab.name)\n"
        "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        name = ready.read_text()
        [container] = dk.containers({LAB_LABEL: name})
        folder = Path(container.labels[DIR_LABEL])
        assert not [r for r in lab_gc.gc(dry_run=True) if name in r]  # alive: left alone
    finally:
        proc.kill()
        proc.wait()
    swept = lab_gc.gc()
    assert any(f"lab {name}: its `lab up` was killed" in r for r in swept), swept
    assert dk.containers({LAB_LABEL: name}) == []
    shutil.rmtree(folder)  # a killed process leaves its temporary lab folder behind


@pytest.mark.parametrize("version", ["12.10.14", "16.11.10"])
def test_gitaly_refuses_a_storage_folder_reconfigure_never_made(version: str) -> None:
    """Before 17.8 Omnibus makes storage folders only from git_data_dirs: the render before
    issue 25 (Gitaly's own storage list alone) leaves storage1's folder unmade, and Gitaly
    refuses to start in its release's words; the render with git_data_dirs boots."""
    def old_render(etc: Path) -> None:
        text = (etc / "gitlab.rb").read_text()
        text = re.sub(r"\n# Makes reconfigure create[^\n]*\ngit_data_dirs\(\{\n.*?\n\}\)\n", "\n",
                      text, flags=re.DOTALL)
        assert "git_data_dirs({" not in text
        (etc / "gitlab.rb").write_text(text)

    require_docker()
    storages = ("default", "storage1")
    broken = GitalyContainer(version=version, storages=storages, prepare=old_render, timeout=45)
    with pytest.raises(NotReady) as err:
        broken.start()
    assert eras.gitaly_storage_missing(Version.parse(version), "storage1",
                                       "/var/opt/gitlab/git-data-storage1/repositories") \
        in str(err.value)
    with GitalyContainer(version=version, storages=storages) as fixed:
        assert fixed.info is not None
        assert {s.storage_name for s in fixed.info.storage_statuses} == set(storages)


@pytest.mark.parametrize(("version", "expected"), [
    ("12.9.10", "0:"), ("12.10.14", "16:authentication required")])
def test_a_v1_token_is_taken_until_gitaly_12_10(version: str, expected: str) -> None:
    """Gitaly 1.x/12.9 still takes ``Bearer <base64 of the secret>``; 12.10 dropped it
    (lab.omnibus.eras GITALY_V1_TOKEN)."""
    require_docker()
    with GitalyContainer(version=version) as node, \
            grpc.insecure_channel(node.address.removeprefix("tcp://")) as channel:
        call = channel.unary_unary("/gitaly.ServerService/ServerInfo")
        metadata = [("authorization", "Bearer " + gitaly_v1_token(node.token))]
        try:
            call(b"", metadata=metadata, timeout=10)
            got = "0:"
        except grpc.RpcError as exc:
            got = f"{exc.code().value[0]}:{exc.details()}"
    assert got == expected
