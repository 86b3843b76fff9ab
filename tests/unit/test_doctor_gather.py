"""`lab doctor` gathering: facts from a lab folder, a fake handle's execs and Ruby's parser."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.engine.run import Result
from lab.errors import BadInput
from lab.omnibus.auth import decode_shell_jwt
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import RenderedLab, write_lab
from lab.support.doctor import gather as gather_mod
from lab.support.doctor.checks import tls_checks
from lab.support.doctor.facts import ApiProbe
from lab.support.doctor.gather import (
    curl_check_cmd,
    probe_gitaly,
    probe_internal_api,
    read_config,
    tls_facts,
)


def test_tls_facts_from_a_lab_directory(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", sets=("tls=true",
                                                       "nodes.gitlab.trust_ca=false")))
    write_lab(lab, tmp_path / "lab", image="unused")
    facts = tls_facts(tmp_path / "lab", lab)
    assert [f.node for f in facts] == ["gitaly1"]
    checks = tls_checks("gitlab", facts)
    assert any("not signed by a CA that gitlab trusts" in c.detail for c in checks)


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_certificates_a_container_made_links_are_not_read(tmp_path: Path, linked: str) -> None:
    # A node's ssl/ and trusted-certs/ are its container's: a link there (to the file or a
    # folder on its path) may name any host file, which doctor must not read.
    lab = resolve(SpecRequest(topology="scaled", sets=("tls=true",)))
    folder = tmp_path / "lab"
    write_lab(lab, folder, image="unused")
    host = tmp_path / "host"
    host.mkdir()
    for rel in ("nodes/gitaly1/ssl/gitaly1.crt", "nodes/gitlab/trusted-certs/lab-ca.crt"):
        inside = folder / rel
        (host / inside.name).write_text("host file")
        if linked == "file":
            inside.unlink()
            inside.symlink_to(host / inside.name)
        else:
            shutil.rmtree(inside.parent)
            inside.parent.symlink_to(host)
    (facts,) = tls_facts(folder, lab)
    assert facts.cert_pem is None
    assert facts.app_ca_pems == ()
    assert facts.node_ca_pems  # the untouched folder is still read


@pytest.mark.skipif(shutil.which("ruby") is None, reason="needs ruby")
def test_read_config_uses_the_importers_reader(tmp_path: Path) -> None:
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://gitlab'\n")
    assert read_config(tmp_path, "gitlab.rb", "")[0] is None
    err = read_config(tmp_path, "gitlab.rb", "gitaly['configuration'] = {\n")[0]
    assert err is not None
    assert err.startswith("GITLAB_OMNIBUS_CONFIG:")
    assert "syntax error" in err
    rb.write_text("external_url 'http://gitlab'\ngitaly['x'] = {\n")
    err = read_config(tmp_path, "gitlab.rb", "")[0]
    assert err is not None
    assert err.startswith(f"{rb}:2: not valid Ruby: syntax error")


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_a_gitlab_rb_a_container_made_a_link_is_not_followed(tmp_path: Path,
                                                             linked: str) -> None:
    # A node's folder is its container's /etc/gitlab: a link there may name any host file,
    # whose lines a syntax error would quote. Read as a refusal, never through the link.
    host = tmp_path / "host"
    host.mkdir()
    (host / "gitlab.rb").write_text("root:$6$not-for-doctor-eyes:19000:0:99999:7:::\n")
    lab_dir = tmp_path / "lab"
    node = lab_dir / "nodes" / "gitaly1"
    if linked == "file":
        node.mkdir(parents=True)
        (node / "gitlab.rb").symlink_to(host / "gitlab.rb")
    else:
        node.parent.mkdir(parents=True)
        node.symlink_to(host)
    err, _, _ = read_config(lab_dir, "nodes/gitaly1/gitlab.rb", "")
    assert err is not None
    assert "never through a link" in err
    assert "not-for-doctor-eyes" not in err


class FakeHandle:
    """Just enough of RunningLab for the probes: records every exec."""

    def __init__(self, rendered: RenderedLab, answers: dict[str, Result]) -> None:
        self.rendered = rendered
        self.lab = rendered.lab
        self.name = rendered.lab.name
        self.path = rendered.path
        self.answers = answers
        self.calls: list[tuple[str, list[str]]] = []

    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result:
        self.calls.append((node, cmd))
        return self.answers.get(cmd[0], Result(cmd, 0, "", ""))

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        return f"log of {node}\n"

    def container(self, node: str) -> Any:
        return None

    def status(self) -> Any:
        raise NotImplementedError


def test_internal_api_probe_signs_with_the_nodes_own_secret(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled"))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    handle = FakeHandle(rendered, {"curl": Result([], 0, "401", "")})
    own = {"gitlab_shell": {"secret_token": "the-gitaly-nodes-own-secret"}}
    probe = probe_internal_api(handle, lab.node("gitaly1"), own)
    assert probe == ApiProbe("gitaly1", "http://gitlab", 401, "")
    node, cmd = handle.calls[0]
    assert node == "gitaly1"
    assert cmd[-1] == "http://gitlab/api/v4/internal/check"
    header = next(a for a in cmd if a.startswith("Gitlab-Shell-Api-Request: "))
    claims = decode_shell_jwt(header.split(": ", 1)[1], "the-gitaly-nodes-own-secret")
    assert claims["iss"] == "gitlab-shell"
    assert not any(a.startswith("Gitlab-Shared-Secret") for a in cmd)
    assert cmd == curl_check_cmd("http://gitlab",
                                 {"Gitlab-Shell-Api-Request": header.split(": ", 1)[1]})


@pytest.mark.parametrize(("version", "shared", "jwt"), [
    ("13.12.15", True, False), ("15.1.6", True, False), ("15.4.6", True, True),
    ("15.5.0", True, True), ("15.6.0", False, True), ("19.3.0", False, True),
])
def test_internal_api_probe_speaks_the_labs_release(tmp_path: Path, version: str, shared: bool,
                                                    jwt: bool) -> None:
    """A healthy 13.12-15.4 lab must not get a false 401: its Rails checks the shared secret."""
    lab = resolve(SpecRequest(topology="scaled", version=version))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    handle = FakeHandle(rendered, {"curl": Result([], 0, "200", "")})
    probe_internal_api(handle, lab.node("gitaly1"), {"gitlab_shell": {"secret_token": "s3"}})
    _, cmd = handle.calls[0]
    assert ("Gitlab-Shared-Secret: " + base64.b64encode(b"s3").decode() in cmd) is shared
    assert any(a.startswith("Gitlab-Shell-Api-Request: ") for a in cmd) is jwt


def test_rake_check_runs_once_for_all_gitaly_nodes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A remote engine: container addresses are not routable, so the app's rake task probes.
    monkeypatch.setattr(gather_mod, "containers_routable", lambda: False)
    lab = resolve(SpecRequest(topology="sharded"))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    storages = {n.name: [s.name for s in n.storages] for n in lab.external_gitaly_nodes}
    # Exit 0, as the real task does whatever it prints: the verdict is per storage.
    out = ("Checking Gitaly ...\n\nGitaly: ... " + "".join(
        f"{s} ... OK\n" for s in storages["gitaly1"]) + "".join(
        f"{s} ... FAIL: 14:connection refused\n" for s in storages["gitaly2"]))
    handle = FakeHandle(rendered, {"gitlab-rake": Result([], 0, out, "")})
    probes = probe_gitaly(handle)
    assert [p.node for p in probes] == ["gitaly1", "gitaly2"]
    assert probes[0].error == ""
    assert "14:connection refused" in probes[1].error
    assert all(p.via == "gitlab-rake gitlab:gitaly:check" for p in probes)
    assert handle.calls == [("gitlab", ["gitlab-rake", "gitlab:gitaly:check"])]


def test_a_swarm_labs_gitaly_nodes_are_probed_from_the_app_not_the_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a local engine the host dials container addresses, but a swarm lab's are on an
    overlay network the host cannot reach: ServerInfo from the host FAILed every node of a
    healthy lab. The app's own check answers instead."""
    monkeypatch.setattr(gather_mod, "containers_routable", lambda: True)
    lab = resolve(SpecRequest(topology="scaled", engine="swarm"))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    out = "Checking Gitaly ...\n\nGitaly: ... default ... OK\nstorage1 ... OK\n"

    class Unroutable(FakeHandle):
        def container(self, node: str) -> Any:
            raise AssertionError("a swarm lab's address is no use from the host")

    handle = Unroutable(rendered, {"gitlab-rake": Result([], 0, out, "")})
    probes = probe_gitaly(handle)
    assert [(p.node, p.error, p.via) for p in probes] == [
        ("gitaly1", "", "gitlab-rake gitlab:gitaly:check")]
    assert handle.calls == [("gitlab", ["gitlab-rake", "gitlab:gitaly:check"])]


def test_gitaly_probe_of_a_node_whose_container_was_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`docker rm` of a Gitaly node's container: a FAIL row, not an error that ends
    `lab doctor` (exit 2, no JSON) and `lab collect` (no bundle)."""
    monkeypatch.setattr(gather_mod, "containers_routable", lambda: True)
    lab = resolve(SpecRequest(topology="scaled"))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")

    class Removed(FakeHandle):
        def container(self, node: str) -> Any:
            raise BadInput(f"node {node!r} of lab {self.name!r} has no container")

    probes = probe_gitaly(Removed(rendered, {}))
    assert [p.node for p in probes] == ["gitaly1"]
    assert "is the node up?" in probes[0].error
