"""A Gitaly sim container enforces Gitaly's v2 token auth over tcp:// and tls://."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_helpers import docker, lab_name, sim_image, sweep, wait_for

from lab.client.gitaly import GitalyError, server_info
from lab.render import tls
from lab.render.compose import LAB_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]

TOKEN = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def gitaly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    image = sim_image()
    name = lab_name("simgitaly")
    etc = tmp_path_factory.mktemp("gitaly1")
    ca_key, ca = tls.make_ca(name)
    key, cert = tls.make_server_cert(ca_key, ca, ("gitaly1",))
    (etc / "ssl").mkdir()
    (etc / "ssl" / "gitaly1.crt").write_text(cert)
    (etc / "ssl" / "gitaly1.key").write_text(key)
    (etc / "trusted-certs").mkdir()
    (etc / "trusted-certs" / "lab-ca.crt").write_text(ca)
    (etc / "gitlab-secrets.json").write_text(json.dumps(
        {"gitlab_shell": {"secret_token": "ab" * 64}}))
    (etc / "gitlab.rb").write_text(f"""
roles(['gitaly_role'])
puma['enable'] = false
gitlab_rails['internal_api_url'] = 'http://gitlab'
gitaly['configuration'] = {{
  listen_addr: '0.0.0.0:8075',
  tls_listen_addr: '0.0.0.0:9999',
  tls: {{ certificate_path: '/etc/gitlab/ssl/gitaly1.crt',
          key_path: '/etc/gitlab/ssl/gitaly1.key' }},
  auth: {{ token: '{TOKEN}' }},
  storage: [{{ name: 'default', path: '/var/opt/gitlab/git-data/repositories' }}],
}}
""")
    try:
        cid = docker("run", "-d", "--name", name, "--label", f"{LAB_LABEL}={name}",
                     "-p", "127.0.0.1::8075", "-p", "127.0.0.1::9999",
                     "-v", f"{etc}:/etc/gitlab", image).stdout.strip()

        def port(inner: int) -> int:
            out = docker("port", cid, f"{inner}/tcp").stdout.splitlines()[0]
            return int(out.rsplit(":", 1)[1])

        tcp_port, tls_port = port(8075), port(9999)
        wait_for(lambda: docker("exec", cid, "gitlab-ctl", "status", "gitaly",
                                check=False).returncode == 0, 30, "gitaly status")
        yield {"tcp": f"tcp://127.0.0.1:{tcp_port}", "tls": f"tls://127.0.0.1:{tls_port}",
               "ca": ca.encode(), "cid": cid, "etc": etc}
    finally:
        sweep(name)


def test_server_info_tcp(gitaly: dict[str, object]) -> None:
    info = server_info(str(gitaly["tcp"]), TOKEN)
    assert info.server_version == "gitlab-testlab-sim"
    assert info.git_version
    assert [s.storage_name for s in info.storage_statuses] == ["default"]
    assert info.storage_statuses[0].readable
    assert info.storage_statuses[0].writeable


def test_server_info_tls(gitaly: dict[str, object]) -> None:
    info = server_info(str(gitaly["tls"]), TOKEN, ca_pem=gitaly["ca"],  # type: ignore[arg-type]
                       server_name_override="gitaly1")
    assert info.server_version == "gitlab-testlab-sim"


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_wrong_token_is_permission_denied(gitaly: dict[str, object], scheme: str) -> None:
    with pytest.raises(GitalyError) as info:
        server_info(str(gitaly[scheme]), "wrong-token", ca_pem=gitaly["ca"],  # type: ignore[arg-type]
                    server_name_override="gitaly1")
    assert info.value.code_name == "PERMISSION_DENIED"
    assert str(info.value) == "7:permission denied"


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_missing_token_is_unauthenticated(gitaly: dict[str, object], scheme: str) -> None:
    with pytest.raises(GitalyError) as info:
        server_info(str(gitaly[scheme]), "", ca_pem=gitaly["ca"],  # type: ignore[arg-type]
                    server_name_override="gitaly1")
    assert info.value.code_name == "UNAUTHENTICATED"
    assert str(info.value) == "16:authentication required"


def test_untrusted_ca_fails(gitaly: dict[str, object]) -> None:
    _, other_ca = tls.make_ca("another lab")
    with pytest.raises(GitalyError) as info:
        server_info(str(gitaly["tls"]), TOKEN, ca_pem=other_ca.encode(),
                    server_name_override="gitaly1", timeout=3)
    assert info.value.code_name == "UNAVAILABLE"
    # gRPC reports the TLS handshake failure, not just an unreachable server.
    assert re.search(r"(?i)CERTIFICATE_VERIFY_FAILED|certificate verify failed",
                     info.value.details), info.value.details


def test_gitlab_ctl_and_logs(gitaly: dict[str, object]) -> None:
    status = docker("exec", str(gitaly["cid"]), "gitlab-ctl", "status")
    assert status.stdout.startswith("run: gitaly: (pid ")
    log = docker("exec", str(gitaly["cid"]), "cat", "/var/log/gitlab/gitaly/current").stdout
    assert "listening on" in log


def test_syntax_error_fails_the_node(tmp_path: Path) -> None:
    image = sim_image()
    name = lab_name("simbadrb")
    (tmp_path / "gitlab.rb").write_text("external_url 'http://gitlab'\ngitaly['x'] = {\n")
    try:
        run = docker("run", "--name", name, "--label", f"{LAB_LABEL}={name}",
                     "-v", f"{tmp_path}:/etc/gitlab", image, check=False, timeout=60)
        assert run.returncode != 0
        assert "/etc/gitlab/gitlab.rb:2: syntax error" in run.stdout + run.stderr
    finally:
        sweep(name)
