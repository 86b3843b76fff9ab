"""lab doctor's file checks across Omnibus and source nodes (lab/support/doctor/wiring.py):
tokens, the shell secret, storage names and the API URL by hash, each side named by its
file and key, from a rendered lab folder (no Docker)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab.model.topology import Lab
from lab.render.secrets import fingerprint
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import write_lab
from lab.support.doctor.checks import Level
from lab.support.doctor.wiring import wiring_report

TOML = "nodes/gitaly1/home/git/gitaly/config.toml"


def _lab(tmp: Path, version: str = "19.3.0", *sets: str) -> tuple[Lab, Path]:
    lab = resolve(SpecRequest(topology="scaled", version=version, flavor="omnibus",
                              sets=("nodes.gitaly1.install=source", *sets)))
    write_lab(lab, tmp / "lab", image="unused")
    return lab, tmp / "lab"


def _levels(checks: list) -> dict[str, Level]:  # type: ignore[type-arg]
    return {c.name: c.level for c in checks}


def test_a_rendered_lab_is_wired_right(tmp_path: Path) -> None:
    lab, folder = _lab(tmp_path)
    assert set(_levels(wiring_report(folder, lab)).values()) == {Level.OK}


def test_token_mismatch_between_gitlab_rb_and_config_toml(tmp_path: Path) -> None:
    lab, folder = _lab(tmp_path)
    toml = folder / TOML
    text = toml.read_text()
    token = text.split('token = "', 1)[1].split('"', 1)[0]
    toml.write_text(text.replace(token, "a-different-token"))
    rows = [c for c in wiring_report(folder, lab) if c.name == "gitaly token (files)"]
    assert [r.level for r in rows] == [Level.FAIL, Level.FAIL]  # default, storage1
    row = rows[0]
    assert "nodes/gitlab/gitlab.rb gitlab_rails['gitaly_token']" in row.detail
    assert f"{TOML}:" in row.detail
    assert "auth.token" in row.detail
    assert fingerprint("a-different-token") in row.detail
    assert "a-different-token" not in row.detail
    assert token not in row.detail


def test_own_secrets_fail_the_shell_secret_row(tmp_path: Path) -> None:
    lab, folder = _lab(tmp_path, "19.3.0", "nodes.gitaly1.secrets=own")
    (row,) = [c for c in wiring_report(folder, lab) if c.name == "shell secret (files)"]
    assert row.level is Level.FAIL
    assert "gitlab-secrets.json gitlab_shell.secret_token" in row.detail


@pytest.mark.parametrize(("version", "old", "new", "check", "level", "named"), [
    # A storage the app sends to gitaly1 that its config.toml does not serve.
    ("19.3.0", '"storage1"', '"storage9"', "storage names (files)", Level.FAIL, "storage1"),
    # 13.0's spelling of the API URL, pointing elsewhere.
    ("13.0.14", '"http://gitlab"', '"http://nowhere"', "internal API URL (files)", Level.WARN,
     "gitlab-shell.gitlab_url"),
])
def test_one_config_toml_value_changed(tmp_path: Path, version: str, old: str, new: str,
                                       check: str, level: Level, named: str) -> None:
    lab, folder = _lab(tmp_path, version)
    toml = folder / TOML
    toml.write_text(toml.read_text().replace(old, new))
    (row,) = [c for c in wiring_report(folder, lab) if c.name == check]
    assert row.level is level
    assert named in row.detail + row.hint


def test_labs_without_source_nodes_are_not_read(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", version="19.3.0", flavor="omnibus"))
    assert wiring_report(tmp_path / "missing", lab) == []


def test_a_secrets_file_a_container_made_a_link_is_not_followed(tmp_path: Path) -> None:
    lab, folder = _lab(tmp_path)
    secrets = folder / "nodes" / "gitlab" / "gitlab-secrets.json"
    copy = tmp_path / "elsewhere.json"
    copy.write_text(secrets.read_text())
    secrets.unlink()
    secrets.symlink_to(copy)  # the same content, but through a link: not read
    (row,) = [c for c in wiring_report(folder, lab) if c.name == "shell secret (files)"]
    assert row.level is Level.FAIL
    assert "gitlab-secrets.json gitlab_shell.secret_token: unset" in row.detail


HOST_TOKEN = "host-token-not-for-doctor-eyes"
HOST_TOML = f'[auth]\ntoken = "{HOST_TOKEN}"\n[[storage]]\nname = "default"\npath = "/x"\n'
HOST_SECRET = "host-secret-not-for-doctor-eyes"
HOST_YML = ("production:\n  repositories:\n    storages:\n      default:\n"
            f"        gitaly_address: tcp://gitaly1:8075\n        gitaly_token: {HOST_TOKEN}\n")
APP_YML = "nodes/gitlab/home/git/gitlab/config/gitlab.yml"
SECRET = "nodes/gitaly1/home/git/gitlab-shell/.gitlab_shell_secret"
APP_SECRET = "nodes/gitlab/home/git/gitlab/.gitlab_shell_secret"


@pytest.mark.parametrize(("rel", "content", "linked"), [
    (TOML, HOST_TOML, "file"),
    (TOML, HOST_TOML, "folder"),
    (APP_YML, HOST_YML, "file"),
    (SECRET, HOST_SECRET, "file"),
    (SECRET, HOST_SECRET, "folder"),
    (APP_SECRET, HOST_SECRET, "file"),
], ids=["config.toml", "gitaly folder", "gitlab.yml", "shell secret", "gitlab-shell folder",
        "app shell secret"])
def test_a_source_node_file_a_container_made_a_link_is_refused(
        tmp_path: Path, rel: str, content: str, linked: str) -> None:
    # A source node's home/git is mounted into its container, which can swap a file (or a
    # folder on the way to it) for a link to any host file: doctor refuses it, naming the
    # file and what to do, and nothing of the host file reaches its output.
    lab, folder = _lab(tmp_path, "19.3.0", "nodes.gitlab.install=source")
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True)
    (host / "sub" / Path(rel).name).write_text(content)
    inside = folder / rel
    if linked == "file":
        inside.unlink()
        inside.symlink_to(host / "sub" / inside.name)
    else:
        shutil.rmtree(inside.parent)
        inside.parent.symlink_to(host / "sub")
    checks = wiring_report(folder, lab)
    (row,) = checks  # the one refusal: the lab's wiring can't be judged from its files
    assert row.level is Level.FAIL
    assert row.name == "wiring (files)"
    assert row.detail.startswith(f"{folder / rel}: cannot be read (")
    assert "never through a link" in row.detail
    assert "Put the real file in its place" in row.detail
    shown = " ".join(f"{c.detail} {c.hint}" for c in checks)
    for secret in (HOST_TOKEN, HOST_SECRET):
        assert secret not in shown
        assert fingerprint(secret) not in shown


def test_a_missing_shell_secret_file_is_unset(tmp_path: Path) -> None:
    lab, folder = _lab(tmp_path)
    (folder / SECRET).unlink()
    (row,) = [c for c in wiring_report(folder, lab) if c.name == "shell secret (files)"]
    assert row.level is Level.FAIL
    assert "gitlab.secret_file: unset" in row.detail


def test_a_secret_file_named_outside_the_node_is_not_read(tmp_path: Path) -> None:
    lab, folder = _lab(tmp_path)
    toml = folder / TOML
    (tmp_path / "outside").write_text(HOST_SECRET)
    toml.write_text(toml.read_text().replace(
        '/home/git/gitlab-shell/.gitlab_shell_secret', "/../../../outside"))
    (row,) = [c for c in wiring_report(folder, lab) if c.name == "shell secret (files)"]
    assert row.level is Level.FAIL
    assert fingerprint(HOST_SECRET) not in row.detail


YML = "nodes/gitlab/home/git/gitlab/config/gitlab.yml"


def test_token_mismatch_between_gitlab_yml_and_an_omnibus_gitalys_gitlab_rb(
        tmp_path: Path) -> None:
    # The Gitaly node's own token: the source app keeps sending the lab's (gitlab.yml).
    lab = resolve(SpecRequest(topology="scaled", version="19.3.0", flavor="sim", sets=(
        "nodes.gitlab.install=source", "nodes.gitaly1.gitaly_token=held-by-gitaly-only")))
    write_lab(lab, tmp_path / "lab", image="unused")
    rows = [c for c in wiring_report(tmp_path / "lab", lab) if c.name == "gitaly token (files)"]
    assert [r.level for r in rows] == [Level.FAIL, Level.FAIL]
    assert f"{YML}:" in rows[0].detail
    assert "production.repositories.storages.default.gitaly_token" in rows[0].detail
    assert "nodes/gitaly1/gitlab.rb gitaly['configuration'][:auth][:token]" in rows[0].detail
    assert fingerprint("held-by-gitaly-only") in rows[0].detail


def test_gitlab_yml_global_gitaly_token_is_the_fallback_doctor_names(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", version="19.3.0", flavor="sim", sets=(
        "nodes.gitlab.install=source", "nodes.gitaly1.install=source")))
    folder = tmp_path / "lab"
    write_lab(lab, folder, image="unused")
    assert set(_levels(wiring_report(folder, lab)).values()) == {Level.OK}
    yml = folder / YML
    text = yml.read_text()
    token = text.split("gitaly_token: ", 1)[1].split("\n", 1)[0]
    # Rails: a storage without gitaly_token sends gitaly.token (GitalyClient.token).
    yml.write_text(text.replace(f"gitaly_token: {token}", "gitaly_token: ''")
                   .replace("production:\n", "production:\n  gitaly:\n    token: other\n", 1))
    rows = [c for c in wiring_report(folder, lab) if c.name == "gitaly token (files)"]
    assert [r.level for r in rows] == [Level.FAIL, Level.FAIL]
    assert "production.gitaly.token" in rows[0].detail
    assert fingerprint("other") in rows[0].detail
    assert "auth.token" in rows[0].detail
