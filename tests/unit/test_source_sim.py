"""The sim's source nodes (labsim.common.sourceconfig): Gitaly's config.toml and the secret
file it names, read where each release looks for them, the app's gitlab.yml and its
.gitlab_shell_secret as Rails reads them; and `lab` restarts such a node for any change
(no reconfigure)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import fixed_secrets

from lab.lifecycle.node_actions import Action, node_action
from lab.omnibus import source_layout
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


# -- the app node installed from source: gitlab.yml and its .gitlab_shell_secret ---------

def _app_yml(version: str, *sets: str) -> dict[str, object]:
    lab = resolve(SpecRequest(topology="scaled", version=version,
                              sets=("nodes.gitlab.install=source", *sets)))
    data: dict[str, object] = yaml.safe_load(source.gitlab_yml(lab, fixed_secrets(lab)))
    return data


def test_source_app_reads_storages_tokens_url_and_secret_from_gitlab_yml(
        tmp_path: Path) -> None:
    data = _app_yml("19.3.0")
    secret = tmp_path / ".gitlab_shell_secret"
    secret.write_text("app-secret\n")
    data["production"]["gitlab_shell"]["secret_file"] = str(secret)  # type: ignore[index]
    app = sourceconfig.app_from_yml(data)
    token = data["production"]["repositories"]["storages"]["default"]["gitaly_token"]  # type: ignore[index]
    assert app["storages"] == {"default": {"address": "tcp://gitaly1:8075", "token": token},
                               "storage1": {"address": "tcp://gitaly1:8075", "token": token}}
    assert app["external_url"] == "http://gitlab"
    assert app["port"] == 80
    assert app["shell_secret"] == "app-secret"  # chomped, as Gitlab::Shell.secret_token
    assert app["monitoring_whitelist"] == ["127.0.0.0/8", "::1/128"]
    assert app["trusted_certs"] == source_layout.SYSTEM_CA_DIR


def test_source_app_token_falls_back_to_the_global_gitaly_token(tmp_path: Path) -> None:
    # Rails' GitalyClient.token: the storage's gitaly_token.presence || gitaly.token.
    data = {"production": {
        "gitaly": {"token": "global"},
        "gitlab": {"host": "git.example", "port": 8080, "https": False},
        "repositories": {"storages": {"default": {"gitaly_address": "tcp://g:8075"},
                                      "s1": {"gitaly_address": "tcp://g:8075",
                                             "gitaly_token": ""},
                                      "s2": {"gitaly_address": "tcp://g:8075",
                                             "gitaly_token": "own"}}},
        "gitlab_shell": {"secret_file": str(tmp_path / "s")}}}
    (tmp_path / "s").write_text("x")
    app = sourceconfig.app_from_yml(data)
    assert {n: s["token"] for n, s in app["storages"].items()} == {
        "default": "global", "s1": "global", "s2": "own"}
    assert app["external_url"] == "http://git.example:8080"


def test_source_app_makes_a_missing_shell_secret_as_rails_does(tmp_path: Path) -> None:
    data = _app_yml("13.12.15")
    secret = tmp_path / ".gitlab_shell_secret"
    data["production"]["gitlab_shell"]["secret_file"] = str(secret)  # type: ignore[index]
    app = sourceconfig.app_from_yml(data)
    # Gitlab::Shell.ensure_secret_token!: SecureRandom.hex(16) written to the file.
    assert len(app["shell_secret"]) == 32
    assert secret.read_text() == app["shell_secret"]
    assert sourceconfig.app_from_yml(data)["shell_secret"] == app["shell_secret"]


@pytest.mark.skipif(shutil.which("ruby") is None, reason="needs ruby (the image has it)")
def test_gitlab_yml_is_read_with_rubys_yaml_and_its_anchors(tmp_path: Path) -> None:
    yml = tmp_path / "gitlab.yml"
    yml.write_text("production: &base\n  gitaly:\n    token: t\n"
                   "development:\n  <<: *base\n")
    data = sourceconfig.read_shell_config(str(yml), aliases=True)
    assert data["development"] == {"gitaly": {"token": "t"}}
    with pytest.raises(sourceconfig.SourceConfigError, match=re.escape(
            "No such file or directory @ rb_sysopen - /nowhere/gitlab.yml")):
        sourceconfig.load_app(Version(19, 3, 0), "/nowhere/gitlab.yml")


def test_a_change_to_a_source_app_node_restarts_it() -> None:
    service = {"image": "x"}
    act = node_action("gitlab", service, service, {"home/git/gitlab/config/gitlab.yml": "a"},
                      {"home/git/gitlab/config/gitlab.yml": "b"}, version=Version(19, 3, 0),
                      runs_gitaly=False, runs_app=True, from_source=True)
    assert act.action is Action.RESTART
    assert act.why == ("installed from source (no reconfigure): "
                       "home/git/gitlab/config/gitlab.yml")


def test_the_source_node_probe_waits_in_the_node_until_the_port_opens() -> None:
    """sim_listening_cmd with ``within`` (readiness) connects again until the port listens,
    and fails once its time is up; without it (the compose healthcheck) it asks once."""
    with socket.socket() as probe:  # a port nothing listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(cmd: list[str]) -> tuple[int, float]:
        began = time.monotonic()
        res = subprocess.run([sys.executable, *cmd[1:]], capture_output=True, check=False)
        return res.returncode, time.monotonic() - began

    assert run(source_layout.sim_listening_cmd(port))[0] != 0
    code, took = run(source_layout.sim_listening_cmd(port, within=0.3))
    assert code != 0
    assert took >= 0.3
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen_later() -> None:
        time.sleep(0.4)
        server.bind(("127.0.0.1", port))
        server.listen()

    later = threading.Thread(target=listen_later)
    later.start()
    try:
        code, took = run(source_layout.sim_listening_cmd(port, within=5))
        assert code == 0
        assert 0.4 <= took < 3
        assert run(source_layout.sim_listening_cmd(port))[0] == 0
    finally:
        later.join()
        server.close()
