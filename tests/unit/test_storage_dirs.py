"""Real Omnibus creates every storage folder of a rendered Gitaly node (issue 25 item 1).

Up to 17.7 reconfigure makes storage folders only from git_data_dirs; a Gitaly node
whose storages are listed only in gitaly['storage'] (11.x/12.x) or
gitaly['configuration'] (15.10-17.7) would name a folder that never exists, and
Gitaly refuses to start. Each rendered node is read back with Ruby's parser and
checked with the release's rule (lab.omnibus.directories).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fixed_secrets

from lab.omnibus.dialect import dialect_for, getter, read_gitaly
from lab.omnibus.directories import created_storage_dirs, missing_storages
from lab.omnibus.eras import gitaly_storage_missing
from lab.omnibus.praefect import cluster_unsupported
from lab.omnibus.release import REFERENCE_RELEASES, Version
from lab.render.gitlab_rb import render_gitlab_rb
from lab.spec.labspec import SpecRequest, resolve
from lab.spec.rb_reader import read_rb
from lab.spec.topologies import TOPOLOGIES

ERA_RELEASES = sorted({*REFERENCE_RELEASES, "12.0.0", "15.10.0", "17.7.0", "17.8.0", "18.0.0"},
                      key=Version.parse)
CASES = [(t, v) for t in TOPOLOGIES for v in ERA_RELEASES
         if not (t == "cluster" and cluster_unsupported(Version.parse(v)))]


def gitaly_nodes(topology: str, version: str, tmp_path: Path) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    lab = resolve(SpecRequest(topology=topology, version=version, flavor="omnibus"))
    sec = fixed_secrets(lab)
    out = []
    for node in lab.nodes:
        if not node.gitaly_only:
            continue
        path = tmp_path / f"{node.name}.rb"
        path.write_text(render_gitlab_rb(lab, node, sec.gitaly_token, sec))
        out.append((node.name, read_rb(path).settings))
    return out


@pytest.mark.parametrize(("topology", "version"), CASES, ids=[f"{t}-{v}" for t, v in CASES])
def test_reconfigure_creates_every_storage_of_a_rendered_gitaly_node(
        topology: str, version: str, tmp_path: Path) -> None:
    v = Version.parse(version)
    for name, settings in gitaly_nodes(topology, version, tmp_path):
        storages = read_gitaly(getter(settings), dialect_for(v)).storages
        assert storages, name
        assert missing_storages(storages, settings, v) == [], f"{name} on {version}"


@pytest.mark.parametrize("version", ["12.10.14", "16.11.10"])
def test_without_git_data_dirs_the_second_storage_is_never_made(version: str,
                                                                tmp_path: Path) -> None:
    """The render before the fix: Gitaly's own list alone."""
    v = Version.parse(version)
    [(_, settings)] = gitaly_nodes("scaled", version, tmp_path)
    storages = read_gitaly(getter(settings), dialect_for(v)).storages
    settings.pop("git_data_dirs")
    assert missing_storages(storages, settings, v) == [
        ("storage1", "/var/opt/gitlab/git-data-storage1/repositories")]
    assert created_storage_dirs(settings, v) == ("/var/opt/gitlab/git-data",
                                                 "/var/opt/gitlab/git-data/repositories")


def test_from_17_8_gitaly_storages_make_their_folders() -> None:
    settings = {"gitaly": {"configuration": {"storage": [
        {"name": "default", "path": "/var/opt/gitlab/git-data/repositories"},
        {"name": "s1", "path": "/mnt/s1/repositories"}]}}}
    assert created_storage_dirs(settings, Version(17, 8, 0)) == (
        "/var/opt/gitlab/git-data/repositories", "/mnt/s1/repositories")
    assert created_storage_dirs(settings, Version(17, 7, 0)) == (
        "/var/opt/gitlab/git-data", "/var/opt/gitlab/git-data/repositories")
    assert created_storage_dirs({"git_data_dirs": {"x": {"path": "/mnt/x"}}},
                                Version(18, 0, 0)) == ("/mnt/x/repositories",)
    off = {**settings, "manage_storage_directories": {"enable": False}}
    assert created_storage_dirs(off, Version(17, 8, 0)) == ()


def test_gitaly_refuses_a_missing_storage_in_its_release_words() -> None:
    path = "/var/opt/gitlab/git-data-storage1/repositories"
    assert gitaly_storage_missing(Version(12, 10, 14), "storage1", path) == (
        'level=fatal msg="load config" config_path=/var/opt/gitlab/gitaly/config.toml '
        f'error="storage paths have to exist {{storage1 {path}}}"')
    assert gitaly_storage_missing(Version(13, 12, 15), "storage1", path) == (
        'level=fatal msg="load config: config_path \\"/var/opt/gitlab/gitaly/config.toml\\": '
        f'storage {{Name:storage1 Path:{path}}} path must exist: stat {path}: '
        'no such file or directory"')
    assert gitaly_storage_missing(Version(15, 9, 8), "storage1", path).endswith(
        f'invalid config: storage path \\"{path}\\" for storage \\"storage1\\" doesn\'t exist"')
    assert gitaly_storage_missing(Version(16, 11, 10), "storage1", path) == (
        'load config: config_path "/var/opt/gitlab/gitaly/config.toml": invalid config: '
        f'storage path "{path}" for storage "storage1" doesn\'t exist')


def test_the_sims_gitaly_makes_no_storage_folder(tmp_path: Path) -> None:
    from labsim.gitaly import gitaly_server

    (tmp_path / "s0").mkdir()
    conf = {"token": "", "storages": {"default": str(tmp_path / "s0"),
                                      "storage1": str(tmp_path / "s1")}}
    with pytest.raises(gitaly_server.MissingStorage) as err:
        gitaly_server.Gitaly(conf)
    assert (err.value.name, err.value.path) == ("storage1", str(tmp_path / "s1"))
    assert not (tmp_path / "s1").exists()
