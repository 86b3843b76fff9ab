"""Rendered lab directories: secrets policies, file modes, TLS material (golden files:
test_golden.py)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import fixed_secrets
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.model.topology import Lab
from lab.render.secrets import ensure_tls, shell_secret
from lab.render.tls import cert_sans
from lab.spec.labspec import SpecRequest, resolve
from lab.store.lab_folder import LabFolder
from lab.store.labdir import render_files, write_lab
from lab.store.layout import LAB_ID, SECRETS_STORE, WRITTEN


def scaled(version: str, *sets: str, flavor: str = "omnibus") -> Lab:
    return resolve(SpecRequest(topology="scaled", version=version, flavor=flavor, sets=sets))


def test_render_writes_a_complete_directory(tmp_path: Path) -> None:
    out = tmp_path / "lab1"
    rendered = write_lab(scaled("17.11.7"), out, image="sim:test")
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    # What render_files produced, plus the lab's kept secrets: nothing missing, nothing stray.
    assert on_disk == {*rendered.files, SECRETS_STORE, LAB_ID, WRITTEN}
    assert {"docker-compose.yml", ".env", "manifest.json", "admin-token",
            "nodes/gitlab/gitlab.rb", "nodes/gitaly1/gitlab.rb"} <= on_disk
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for node in ("gitlab", "gitaly1"):
        for name in ("gitlab.rb", "gitlab-secrets.json"):
            assert stat.S_IMODE((out / "nodes" / node / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "admin-token").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / ".lab" / "secrets.json").stat().st_mode) == 0o600
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "17.11.7"
    assert manifest["nodes"]["gitaly1"]["secrets_policy"] == "shared"
    secrets = (out / "nodes/gitlab/gitlab-secrets.json").read_text()
    # The manifest holds hashes, never values.
    assert shell_secret(json.loads(secrets)) not in (out / "manifest.json").read_text()


def test_shared_secrets_are_byte_identical(tmp_path: Path) -> None:
    write_lab(scaled("19.3.0"), tmp_path, image="sim:test")
    app = (tmp_path / "nodes/gitlab/gitlab-secrets.json").read_bytes()
    gitaly = (tmp_path / "nodes/gitaly1/gitlab-secrets.json").read_bytes()
    assert app == gitaly
    data = json.loads(app)
    assert len(shell_secret(data)) == 128
    int(shell_secret(data), 16)
    # From 17.5 the Gitaly section defaults to the shell secret.
    assert data["gitaly"]["gitlab_secret"] == shell_secret(data)


def test_own_secrets_differ(tmp_path: Path) -> None:
    write_lab(scaled("19.3.0", "nodes.gitaly1.secrets=own"), tmp_path, image="sim:test")
    app = json.loads((tmp_path / "nodes/gitlab/gitlab-secrets.json").read_text())
    gitaly = json.loads((tmp_path / "nodes/gitaly1/gitlab-secrets.json").read_text())
    assert shell_secret(app) != shell_secret(gitaly)
    assert stat.S_IMODE((tmp_path / "nodes/gitaly1/gitlab-secrets.json").stat().st_mode) == 0o600


def test_none_mounts_no_file_and_legacy_has_no_gitaly_section(tmp_path: Path) -> None:
    write_lab(scaled("15.9.8", "nodes.gitaly1.secrets=none"), tmp_path, image="sim:test")
    assert not (tmp_path / "nodes/gitaly1/gitlab-secrets.json").exists()
    app = json.loads((tmp_path / "nodes/gitlab/gitlab-secrets.json").read_text())
    assert "gitaly" not in app


def test_rerender_keeps_secrets_unless_regenerate(tmp_path: Path) -> None:
    first = write_lab(scaled("19.3.0"), tmp_path, image="sim:test")
    again = write_lab(scaled("19.3.0", "nodes.gitaly1.secrets=own"), tmp_path, image="sim:test")
    assert again.secrets.shared == first.secrets.shared
    assert again.secrets.gitaly_token == first.secrets.gitaly_token
    fresh = write_lab(scaled("19.3.0"), tmp_path, regenerate=True, image="sim:test")
    assert fresh.secrets.gitaly_token != first.secrets.gitaly_token
    assert shell_secret(fresh.secrets.shared) != shell_secret(first.secrets.shared)


def test_random_per_lab_and_never_the_guides_token(tmp_path: Path) -> None:
    a = write_lab(scaled("19.3.0"), tmp_path / "a", image="sim:test")
    b = write_lab(scaled("19.3.0"), tmp_path / "b", image="sim:test")
    assert a.secrets.gitaly_token != b.secrets.gitaly_token
    for rendered in (a, b):
        token = rendered.secrets.gitaly_token
        assert len(token) == 64
        int(token, 16)
        rb_files = sorted(rendered.path.glob("nodes/*/gitlab.rb"))
        assert [p.parent.name for p in rb_files] == ["gitaly1", "gitlab"]
        # Both sides of the Gitaly connection carry the lab's own random token.
        app_rb = (rendered.path / "nodes/gitlab/gitlab.rb").read_text()
        gitaly_rb = (rendered.path / "nodes/gitaly1/gitlab.rb").read_text()
        assert f"gitlab_rails['gitaly_token'] = '{token}'" in app_rb
        assert f"    token: '{token}'," in gitaly_rb
        for rb_file in rb_files:
            assert "abc123secret" not in rb_file.read_text()


def test_tls_certificates_verify_and_match_the_address(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="sharded", version="15.9.8", flavor="omnibus",
                              sets=("tls=true",)))
    write_lab(lab, tmp_path, image="sim:test")
    ca = x509.load_pem_x509_certificate(
        (tmp_path / "nodes/gitlab/trusted-certs/lab-ca.crt").read_bytes())
    app_rb = (tmp_path / "nodes/gitlab/gitlab.rb").read_text()
    for node in ("gitaly1", "gitaly2"):
        # The CA is trusted on Gitaly nodes too: Gitaly calls itself.
        assert (tmp_path / f"nodes/{node}/trusted-certs/lab-ca.crt").read_bytes() == \
            ca.public_bytes(serialization.Encoding.PEM)
        pem = (tmp_path / f"nodes/{node}/ssl/{node}.crt").read_text()
        cert = x509.load_pem_x509_certificate(pem.encode())
        cert.verify_directly_issued_by(ca)
        assert f"'tls://{node}:9999'" in app_rb
        assert node in cert_sans(pem)
        assert (tmp_path / f"nodes/{node}/ssl/{node}.key").exists()
        gitaly_rb = (tmp_path / f"nodes/{node}/gitlab.rb").read_text()
        assert f"gitaly['certificate_path'] = '/etc/gitlab/ssl/{node}.crt'" in gitaly_rb


def test_san_override_and_untrusted_ca(tmp_path: Path) -> None:
    lab = scaled("19.3.0", "tls=true", "nodes.gitaly1.tls_san=[elsewhere]",
                 "nodes.gitlab.trust_ca=false")
    write_lab(lab, tmp_path, image="sim:test")
    assert cert_sans((tmp_path / "nodes/gitaly1/ssl/gitaly1.crt").read_text()) == ["elsewhere"]
    assert not (tmp_path / "nodes/gitlab/trusted-certs").exists()
    assert (tmp_path / "nodes/gitaly1/trusted-certs/lab-ca.crt").exists()


def test_turning_tls_off_removes_stale_files(tmp_path: Path) -> None:
    write_lab(scaled("19.3.0", "tls=true"), tmp_path, image="sim:test")
    assert (tmp_path / "nodes/gitaly1/ssl/gitaly1.key").exists()
    write_lab(scaled("19.3.0"), tmp_path, image="sim:test")
    assert not (tmp_path / "nodes/gitaly1/ssl/gitaly1.key").exists()
    assert "tcp://gitaly1:8075" in (tmp_path / "nodes/gitlab/gitlab.rb").read_text()


def test_ensure_tls_regenerates_on_san_change() -> None:
    lab = scaled("19.3.0", "tls=true")
    sec = fixed_secrets(lab)
    ensure_tls(lab, sec)
    first = sec.tls["gitaly1.crt"]
    ensure_tls(lab, sec)
    assert sec.tls["gitaly1.crt"] == first
    assert cert_sans(first) == ["gitaly1"]
    ensure_tls(scaled("19.3.0", "tls=true", "nodes.gitaly1.tls_san=[other]"), sec)
    assert sec.tls["gitaly1.crt"] != first
    assert cert_sans(sec.tls["gitaly1.crt"]) == ["other"]
    assert not [k for k in sec.tls if k.endswith(".san")]


def test_secrets_from_an_older_render_with_san_entries_still_load(tmp_path: Path) -> None:
    first = write_lab(scaled("19.3.0", "tls=true"), tmp_path, image="sim:test")
    store = tmp_path / SECRETS_STORE
    data = json.loads(store.read_text())
    data["tls"]["gitaly1.san"] = "gitaly1"  # what earlier versions stored
    store.write_text(json.dumps(data))
    loaded = LabFolder(tmp_path).secrets()
    assert loaded is not None
    assert "gitaly1.san" not in loaded.tls
    again = write_lab(scaled("19.3.0", "tls=true"), tmp_path, image="sim:test")
    assert again.secrets.tls["gitaly1.crt"] == first.secrets.tls["gitaly1.crt"]
    assert "gitaly1.san" not in json.loads(store.read_text())["tls"]


def test_gitaly_port_published_only_when_asked() -> None:
    lab = scaled("19.3.0")
    text = render_files(lab, fixed_secrets(lab), "img", "/labs/x")[0].content
    assert "8075" not in text
    assert "127.0.0.1::80" in text
    lab = scaled("19.3.0", "nodes.gitaly1.publish={gitaly: 0}")
    text = render_files(lab, fixed_secrets(lab), "img", "/labs/x")[0].content
    assert "127.0.0.1::8075" in text


def compose_tool() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("topology", ["single", "scaled", "sharded"])
def test_compose_file_is_accepted_by_compose(tmp_path: Path, topology: str) -> None:
    tool = compose_tool()
    if tool is None:
        from conftest import skip_or_fail
        skip_or_fail("no Compose tool (docker compose or docker-compose) on this machine")
        return
    lab = resolve(SpecRequest(topology=topology, flavor="omnibus", sets=("tls=true",)))
    write_lab(lab, tmp_path, image="sim:test")
    result = subprocess.run([*tool, "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
