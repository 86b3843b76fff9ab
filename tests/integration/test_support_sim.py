"""doctor, collect and import against real sim labs.

Each lab lives under a temporary LAB_HOME with a unique name; teardown sweeps
by the lab's directory label, so a user's labs are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from conftest import skip_or_fail

from lab.engine import docker as dk
from lab.lifecycle.handle import RunningLab, up
from lab.render.secrets import secret_values
from lab.spec.importer import check_importable, import_files, node_inputs
from lab.spec.labspec import SpecRequest, build_lab, resolve
from lab.spec.yamlfile import Origins
from lab.support.collect import collect
from lab.support.doctor import Level, doctor

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
LAB_CMD = [sys.executable, "-c", "from lab.cli.main import main; main()"]
COPY_HINT = ("copy /etc/gitlab/gitlab-secrets.json from the app node (gitlab) to gitaly1, "
             "then reconfigure gitaly1")


@pytest.fixture
def sim_image(lab_home: Path) -> str:
    try:
        dk.check_reachable()
    except Exception as exc:
        skip_or_fail(f"no reachable Docker Engine ({exc})")
    from lab.engine.images import build_images

    return build_images()


def start(*sets: str, topology: str = "scaled", wait_gitaly: bool = True) -> RunningLab:
    lab = resolve(SpecRequest(topology=topology, sets=sets,
                              name=f"sup-{uuid.uuid4().hex[:6]}"))
    return up(lab, keep_on_failure=True, timeout=180, wait_gitaly=wait_gitaly)


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAB_CMD, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})


def test_healthy_lab_all_ok_and_bundle_is_clean(sim_image: str, tmp_path: Path) -> None:
    running = start("tls=true")
    report, _ = doctor(running)
    bad = [c for c in report.checks if c.level is not Level.OK]
    assert not bad, bad
    names = {(c.scope, c.name) for c in report.checks}
    for expected in [("gitaly1", "shell secret"), ("gitaly1", "gitaly reachable"),
                     ("gitaly1", "tls certificate"), ("gitaly1", "internal API"),
                     ("gitlab", "gitlab.rb"), ("host", "docker")]:
        assert expected in names

    res = lab_cli("doctor", running.name, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["ok"] is True

    out = tmp_path / "bundle.tar.gz"
    res = lab_cli("collect", running.name, "-o", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    files = assert_no_leaks(out, running.path)
    # Certificates are public: support reads their SAN and issuer in the bundle.
    tls = json.loads((running.path / ".lab" / "secrets.json").read_text())["tls"]
    assert files["lab/nodes/gitaly1/ssl/gitaly1.crt"] == tls["gitaly1.crt"]
    assert files["lab/nodes/gitlab/trusted-certs/lab-ca.crt"] == tls["ca.crt"]


def assert_no_leaks(bundle: Path, lab_dir: Path) -> dict[str, str]:
    """Search every file of the bundle for every secret in the lab directory: tokens,
    gitlab-secrets.json values and private keys (certificates are public)."""
    known = json.loads((lab_dir / ".lab" / "secrets.json").read_text())
    values = [known["gitaly_token"], known["admin_token"], *secret_values(known["shared"]),
              *secret_values(known.get("own", {})),
              *(v for k, v in known.get("tls", {}).items() if k.endswith(".key"))]
    values = [v for v in values if len(v) >= 8]
    values += [(lab_dir / "admin-token").read_text().strip()]
    for secrets_file in lab_dir.glob("nodes/*/gitlab-secrets.json"):
        values += [v for v in secret_values(json.loads(secrets_file.read_text())) if len(v) >= 8]
    with tarfile.open(bundle) as tar:
        files = {m.name: tar.extractfile(m).read().decode(errors="replace")  # type: ignore[union-attr]
                 for m in tar.getmembers() if m.isfile()}
    assert files
    for name, text in files.items():
        for value in values:
            assert value not in text, f"{name} leaks a secret"
            # PEM armour ("-----BEGIN CERTIFICATE-----") is in every PEM, secret or not.
            for line in value.splitlines():
                if len(line) >= 16 and not line.startswith("-----"):
                    assert line not in text, f"{name} leaks part of a key"
    top = next(iter(files)).split("/")[0]
    assert next(iter(files)) == f"{top}/SUMMARY.md"
    for node in ("gitlab", "gitaly1"):
        assert files[f"{top}/nodes/{node}/container.log"].strip()
        assert f"{top}/nodes/{node}/gitlab-ctl-status.txt" in files
    assert "| gitlab_shell.secret_token |" in files[f"{top}/secret-hashes.md"]
    return {k.removeprefix(f"{top}/"): v for k, v in files.items()}


def test_own_secrets_fail_with_hint_and_show_in_bundle(sim_image: str, tmp_path: Path) -> None:
    running = start("nodes.gitaly1.secrets=own")
    report, _ = doctor(running)
    failed = {(c.scope, c.name): c for c in report.checks if c.level is Level.FAIL}
    assert ("gitaly1", "shell secret") in failed
    assert failed[("gitaly1", "shell secret")].hint == COPY_HINT
    assert failed[("gitaly1", "internal API")].hint == COPY_HINT
    assert "401" in failed[("gitaly1", "internal API")].detail

    res = lab_cli("doctor", running.name)
    assert res.returncode == 1
    assert "copy /etc/gitlab/gitlab-secrets.json" in res.stdout

    files = assert_no_leaks(collect(running, tmp_path / "b.tar.gz"), running.path)
    assert "**NO**" in files["secret-hashes.md"]


def test_node_that_made_its_own_secrets_is_caught(sim_image: str) -> None:
    # `secrets: none`: nothing mounted, so the node writes a fresh file at boot.
    running = start("nodes.gitaly1.secrets=none")
    report, _ = doctor(running)
    failed = {(c.scope, c.name) for c in report.checks if c.level is Level.FAIL}
    assert ("gitaly1", "shell secret") in failed


def test_wrong_gitaly_token_is_permission_denied(sim_image: str) -> None:
    # The app never sees Gitaly as ready with a wrong token: do not wait for it.
    running = start("nodes.gitaly1.gitaly_token=wrong-token-0123456789", wait_gitaly=False)
    report, _ = doctor(running)
    reach = next(c for c in report.checks if c.name == "gitaly reachable")
    assert reach.level is Level.FAIL
    assert "permission denied" in reach.detail
    assert "gitaly_token" in reach.hint


def test_import_reproduces_the_layout(sim_image: str, tmp_path: Path) -> None:
    running = start("tls=true", topology="sharded")
    files = sorted(running.path.glob("nodes/*/gitlab.rb"))
    result = import_files(node_inputs(files, []), name=f"imp-{uuid.uuid4().hex[:6]}")
    check_importable(result)
    spec = tmp_path / "spec.yaml"
    spec.write_text(result.to_yaml())
    again = up(resolve(SpecRequest(file=spec)), keep_on_failure=True, timeout=180)
    assert {n.name: (n.roles, n.storages, n.tls) for n in again.lab.nodes} == \
        {n.name: (n.roles, n.storages, n.tls) for n in running.lab.nodes}
    report, _ = doctor(again)
    assert not report.failed, [c for c in report.checks if c.level is Level.FAIL]
    assert build_lab(result.spec, Origins()).dialect == running.lab.dialect
