"""Output folders and evidence files: what a render may write and delete, and who can read it."""

from __future__ import annotations

import json
import stat
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from lab.engine.redaction import Redaction
from lab.errors import BadInput, LabError, SpecError
from lab.model.topology import Lab
from lab.scenario.report import write_junit
from lab.scenario.results import Outcome, ScenarioResult
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import RenderedLab, write_lab
from lab.store.layout import LAB_ID, MANIFEST, chmod_folder, write_file
from lab.store.ownership import lab_id
from lab.support.collect import Bundle


def scaled(*sets: str) -> Lab:
    return resolve(SpecRequest(topology="scaled", sets=sets))


def render(lab: Lab, out: Path, **kw: Any) -> RenderedLab:
    return write_lab(lab, out, image="img", **kw)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_force_writes_into_a_users_folder_and_keeps_other_files(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("mine\n")
    (tmp_path / "notes.txt").write_text("mine too\n")
    with pytest.raises(LabError, match="--force"):
        render(scaled(), tmp_path)
    assert (tmp_path / "docker-compose.yml").read_text() == "mine\n"
    render(scaled(), tmp_path, force=True)
    assert "services:" in (tmp_path / "docker-compose.yml").read_text()
    assert (tmp_path / "notes.txt").read_text() == "mine too\n"


@pytest.mark.parametrize("theirs", [{"manifest.json": '{"short_name": "My app"}\n'},
                                    {"manifest.json": "[1, 2]\n"}, {".lab/notes": "x\n"}])
def test_a_folder_with_its_own_manifest_or_lab_folder_is_not_a_lab(
        tmp_path: Path, theirs: dict[str, str]) -> None:
    """A project folder with a manifest.json (a web app's) or a .lab/ of its own, beside its
    docker-compose.yml and .env: a render without --force must not replace them."""
    mine = {"docker-compose.yml": "services: {web: {image: nginx}}\n", ".env": "KEY=mine\n",
            **theirs}
    for rel, text in mine.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    with pytest.raises(LabError, match=r"is not empty and is not a lab folder.*--force"):
        render(scaled(), tmp_path)
    assert {rel: (tmp_path / rel).read_text() for rel in mine} == mine
    # A folder a render made is still one, by its id or its manifest.
    render(scaled(), tmp_path / "lab")
    render(scaled(), tmp_path / "lab")
    (tmp_path / "lab" / LAB_ID).unlink()
    render(scaled(), tmp_path / "lab")


def test_a_removed_node_loses_only_the_files_a_render_wrote(tmp_path: Path) -> None:
    render(scaled(), tmp_path)
    node = tmp_path / "nodes" / "gitaly1"
    # What Omnibus writes into its own /etc/gitlab while it runs.
    (node / "ssh_host_rsa_key").write_text("the node's own\n")
    assert (node / "gitlab.rb").is_file()
    render(resolve(SpecRequest(topology="single")), tmp_path,
              regenerate=True)
    assert not (node / "gitlab.rb").exists()
    assert not (node / "gitlab-secrets.json").exists()
    assert (node / "ssh_host_rsa_key").read_text() == "the node's own\n"


def test_an_empty_folder_of_a_removed_node_goes(tmp_path: Path) -> None:
    render(scaled(), tmp_path)
    render(resolve(SpecRequest(topology="single")), tmp_path,
              regenerate=True)
    assert not (tmp_path / "nodes" / "gitaly1").exists()


def test_a_link_left_as_a_temporary_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / ".admin-token.tmp").symlink_to(victim)
    write_file(lab / "admin-token", "x\n", 0o600)
    assert victim.read_text() == "keep\n"
    assert (lab / "admin-token").read_text() == "x\n"


def test_lab_id_is_made_once_and_kept(tmp_path: Path) -> None:
    render(scaled(), tmp_path)
    first = lab_id(tmp_path)
    assert first
    assert (tmp_path / LAB_ID).is_file()
    render(scaled("tls=true"), tmp_path, regenerate=True)
    assert lab_id(tmp_path) == first
    assert first in (tmp_path / "docker-compose.yml").read_text()
    assert json.loads((tmp_path / MANIFEST).read_text())["name"] == "scaled"


def test_force_version_lets_a_newer_release_through() -> None:
    with pytest.raises(SpecError, match="--force-version"):
        resolve(SpecRequest(topology="scaled", version="99.0.0"))
    lab = resolve(SpecRequest(topology="scaled", version="99.0.0", force_version=True))
    assert str(lab.version) == "99.0.0"
    # A patch of the newest known minor release is not "newer".
    assert str(resolve(SpecRequest(topology="scaled", version="19.3.9")).version) == "19.3.9"


@pytest.mark.parametrize("path", ["/var/opt/gitlab/git-data-x", "/mnt/repos/", "/srv/git"])
def test_ordinary_storage_paths_pass(path: str) -> None:
    lab = resolve(SpecRequest(topology="scaled",
                              sets=(f"nodes.gitaly1.storages=[{{name: default, path: {path}}}]",)))
    assert lab.storages["default"].storages[0].path == path.rstrip("/")


def test_evidence_files_are_private(tmp_path: Path) -> None:
    results = [ScenarioResult("a", "a.yaml", Outcome.PASSED, 1.0)]
    write_junit(results, tmp_path / "junit.xml")
    assert mode(tmp_path / "junit.xml") == 0o600
    bundle = Bundle(Redaction(set()))
    bundle.add_raw("x.txt", "evidence")
    bundle.write(tmp_path / "b.tar.gz", "top")
    assert mode(tmp_path / "b.tar.gz") == 0o600
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert tar.getnames() == ["top/x.txt"]


def test_a_forced_newer_version_is_rendered_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli.main import main

    monkeypatch.setattr(sys, "argv", ["lab", "render", "scaled", "--version", "99.0.0",
                                      "--force-version", "-o", str(tmp_path / "o")])
    main()
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: GitLab 99.0.0 is newer than the newest release" in err
    assert json.loads((tmp_path / "o" / MANIFEST).read_text())["version"] == "99.0.0"


def test_last_run_files_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.cli.scenario import save_last_run
    from lab.store.layout import LAST_RUN_JSON, LAST_RUN_XML

    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    (tmp_path / "labs" / "sc-a" / ".lab").mkdir(parents=True)
    save_last_run([ScenarioResult("a", "a.yaml", Outcome.PASSED, 1.0, lab="sc-a")])
    for rel in (LAST_RUN_JSON, LAST_RUN_XML):
        assert mode(tmp_path / "labs" / "sc-a" / rel) == 0o600


def test_a_bundle_never_follows_a_link_a_container_left(tmp_path: Path) -> None:
    from lab.support.collect import _lab_files

    lab_dir = tmp_path / "lab"
    render(scaled(), lab_dir)
    host_file = tmp_path / "host-secret"
    host_file.write_text("the host's private file\n")
    (lab_dir / "nodes" / "gitaly1" / "notes.txt").symlink_to(host_file)
    bundle = Bundle(Redaction(set()))
    _lab_files(bundle, lab_dir)
    assert "host's private file" not in "".join(bundle.files.values())
    assert "symbolic link left out" in bundle.files["lab/nodes/gitaly1/notes.txt"]


def test_a_bundle_that_cannot_be_written_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    bundle = Bundle(Redaction(set()))
    bundle.add_raw("x.txt", "evidence")
    with pytest.raises(LabError, match=r"cannot write the bundle .*file/b\.tar\.gz.*choose"):
        bundle.write(blocker / "b.tar.gz", "top")
    (tmp_path / "dir").mkdir()
    with pytest.raises(LabError, match="cannot write the bundle"):
        bundle.write(tmp_path / "dir", "top")
    assert not (tmp_path / ".dir.tmp").exists()  # no half bundle left beside it


def test_render_prints_an_output_path_with_brackets_as_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rich read "[/x]" in a path as a closing tag: a traceback after the render.
    from lab.cli.main import main

    out = tmp_path / "lab[/bold]"
    monkeypatch.setattr(sys, "argv", ["lab", "render", "scaled", "-o", str(out)])
    main()  # returns: no SystemExit, no traceback
    assert "".join(capsys.readouterr().out.split()).count("".join(str(out).split())) == 2


def test_chmod_folder_never_follows_a_link(tmp_path: Path) -> None:
    # A node's folder is mounted into its container: a link put in its place after the
    # check must not hand the chmod to a folder outside the lab.
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    link = tmp_path / "trusted-certs"
    link.symlink_to(outside)
    with pytest.raises(BadInput, match="no longer a folder"):
        chmod_folder(link, 0o755)
    assert outside.stat().st_mode & 0o777 == 0o700
    real = tmp_path / "ssl"
    real.mkdir(mode=0o700)
    chmod_folder(real, 0o755)
    assert real.stat().st_mode & 0o777 == 0o755
