"""The sim's source Gitaly (labsim.common.sourceconfig): config.toml and the secret file
it names, read where each release looks for them; and `lab` restarts such a node for any
change (no reconfigure)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import fixed_secrets

from lab.lifecycle.node_actions import Action, node_action
from lab.omnibus.release import Version
from lab.render import source
from lab.spec.labspec import SpecRequest, resolve
from labsim.common import sourceconfig


def _rendered(version: str, tmp_path: Path) -> tuple[dict[str, object], Path]:
    lab = resolve(SpecRequest(topology="scaled", version=version,
                              sets=("nodes.gitaly1.install=source",)))
    sec = fixed_secrets(lab)
    data = tomllib.loads(source.gitaly_config_toml(lab, sec, lab.node("gitaly1")))
    secret = tmp_path / "secret"
    secret.write_text("  the-shell-secret\n")
    return data, secret


def test_13_1_and_later_read_the_gitlab_section(tmp_path: Path) -> None:
    data, secret = _rendered("19.3.0", tmp_path)
    data["gitlab"] = {**data["gitlab"], "secret_file": str(secret)}  # type: ignore[dict-item]
    conf = sourceconfig.gitaly_from_toml(data, Version(19, 3, 0), "/c.toml")
    assert conf["internal_api_url"] == "http://gitlab"
    assert conf["hook_secret"] == "the-shell-secret"  # trimmed, as gitlabnet signs
    assert conf["storages"] == {"default": "/var/opt/gitlab/git-data/repositories",
                                "storage1": "/var/opt/gitlab/git-data-storage1/repositories"}
    assert conf["token"]
    assert conf["start_error"] == ""
    assert conf["socket_path"] == ""
    assert conf["config_path"] == "/c.toml"


def test_13_0_reads_the_gitlab_shell_section(tmp_path: Path) -> None:
    data, secret = _rendered("13.0.14", tmp_path)
    data["gitlab-shell"]["secret_file"] = str(secret)  # type: ignore[index]
    conf = sourceconfig.gitaly_from_toml(data, Version(13, 0, 14), "/c.toml")
    assert conf["internal_api_url"] == "http://gitlab"
    assert conf["hook_secret"] == "the-shell-secret"


def test_before_13_0_gitlab_shells_config_yml_says(tmp_path: Path) -> None:
    data, secret = _rendered("12.10.14", tmp_path)
    yml = {"gitlab_url": "http://elsewhere", "secret_file": str(secret)}
    conf = sourceconfig.gitaly_from_toml(data, Version(12, 10, 14), "/c.toml", yml)
    assert conf["internal_api_url"] == "http://elsewhere"
    assert conf["hook_secret"] == "the-shell-secret"


@pytest.mark.parametrize(("version", "stops"), [("13.1.0", True), ("19.3.0", True),
                                                 ("13.0.14", False)])
def test_a_missing_secret_file_stops_gitaly_from_13_1(version: str, stops: bool,
                                                      tmp_path: Path) -> None:
    data, _ = _rendered(version, tmp_path)
    for table in ("gitlab", "gitlab-shell"):
        if table in data:
            data[table]["secret_file"] = str(tmp_path / "nope")  # type: ignore[index]
    conf = sourceconfig.gitaly_from_toml(data, Version.parse(version), "/c.toml")
    expected = (f"could not create GitLab API client: reading secret file: open "
                f"{tmp_path / 'nope'}: no such file or directory") if stops else ""
    assert conf["start_error"] == expected


@pytest.mark.parametrize(("version", "expected"), [
    ("13.0.14", ""),
    ("13.5.0", "could not create GitLab API client:  is not a valid url"),
    ("13.6.0", "could not create GitLab API client: building new HTTP client for GitLab "
               "API: unknown GitLab URL prefix"),
    ("19.3.0", "could not create GitLab API client: building new HTTP client for GitLab "
               "API: unknown GitLab URL prefix"),
])
def test_an_unset_api_url_stops_gitaly_from_13_1(version: str, expected: str,
                                                  tmp_path: Path) -> None:
    data, secret = _rendered(version, tmp_path)
    for table in ("gitlab", "gitlab-shell"):
        if table in data:
            data[table].pop("url", None)  # type: ignore[attr-defined]
            data[table].pop("gitlab_url", None)  # type: ignore[attr-defined]
            data[table]["secret_file"] = str(secret)  # type: ignore[index]
    conf = sourceconfig.gitaly_from_toml(data, Version.parse(version), "/c.toml")
    assert conf["internal_api_url"] == ""
    assert conf["start_error"] == expected


def test_unreadable_config_toml_is_a_load_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("listen_addr = \n")
    with pytest.raises(sourceconfig.SourceConfigError, match="load config: config_path"):
        sourceconfig.load(Version(19, 3, 0), str(bad))


def test_a_source_node_restarts_for_any_change() -> None:
    svc = {"image": "x"}
    act = node_action("gitaly1", svc, svc, {"home/git/gitaly/config.toml": "a"},
                      {"home/git/gitaly/config.toml": "b"}, version=Version(19, 3, 0),
                      runs_gitaly=True, runs_app=False, from_source=True)
    assert act.action is Action.RESTART
    assert "no reconfigure" in act.why
    same = node_action("gitaly1", svc, svc, {"f": "a"}, {"f": "a"},
                       version=Version(19, 3, 0), runs_gitaly=True, runs_app=False,
                       from_source=True)
    assert same.action is Action.NOTHING
