"""Nodes installed from source: Gitaly's config.toml per release and GitLab's gitlab.yml,
read back with tomllib / safe_load (lab/render/source.py); golden files: the source cases
of tests/unit/test_golden.py."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from conftest import fixed_secrets

from lab.errors import BadInput, SpecError
from lab.lifecycle.handle import up
from lab.render import source
from lab.spec.labspec import SpecRequest, resolve


def _lab(version: str, *sets: str):  # type: ignore[no-untyped-def]
    return resolve(SpecRequest(topology="scaled", version=version, flavor="omnibus",
                               sets=("nodes.gitaly1.install=source", *sets)))


def _toml(version: str, *sets: str) -> dict:  # type: ignore[type-arg]
    lab = _lab(version, *sets)
    files = source.source_files(lab, fixed_secrets(lab))
    return tomllib.loads(files[f"nodes/gitaly1{source.CONFIG_TOML}"])


@pytest.mark.parametrize(("version", "sections"), [
    ("11.11.8", {"gitaly-ruby", "gitlab-shell"}),
    ("13.0.14", {"gitaly-ruby", "gitlab-shell"}),
    ("13.12.15", {"gitaly-ruby", "gitlab-shell", "hooks", "gitlab"}),
    ("15.11.13", {"gitlab-shell", "hooks", "gitlab"}),
    ("17.11.7", {"hooks", "gitlab"}),
])
def test_config_toml_sections_follow_gitalys_example(version: str, sections: set[str]) -> None:
    cfg = _toml(version)
    tables = {k for k, v in cfg.items() if isinstance(v, dict)} - {"auth"}
    assert tables == sections


def test_api_url_and_secret_file_per_era() -> None:
    assert "gitlab_url" not in _toml("12.10.14")["gitlab-shell"]  # gitlab-shell's config.yml
    assert _toml("13.0.14")["gitlab-shell"]["gitlab_url"] == "http://gitlab"
    assert _toml("19.3.0")["gitlab"] == {"secret_file": source.SHELL_SECRET_FILE,
                                         "url": "http://gitlab"}


def test_shell_config_yml_only_before_13_0() -> None:
    old = _lab("12.10.14")
    files = source.source_files(old, fixed_secrets(old))
    assert yaml.safe_load(files[f"nodes/gitaly1{source.SHELL_CONFIG_YML}"])["gitlab_url"] == \
        "http://gitlab"
    new = _lab("13.0.14")
    assert f"nodes/gitaly1{source.SHELL_CONFIG_YML}" not in source.source_files(
        new, fixed_secrets(new))


def test_tls_and_storages() -> None:
    cfg = _toml("19.3.0", "tls=true")
    assert cfg["tls_listen_addr"] == "0.0.0.0:9999"
    assert cfg["tls"]["certificate_path"] == source.TLS_CERT
    assert [s["name"] for s in cfg["storage"]] == ["default", "storage1"]


def test_app_gitlab_yml_token_matches_the_gitaly_nodes() -> None:
    lab = _lab("19.3.0", "nodes.gitlab.install=source", "nodes.gitaly1.gitaly_token=t0k")
    files = source.source_files(lab, fixed_secrets(lab))
    yml = yaml.safe_load(files[f"nodes/gitlab{source.GITLAB_YML}"])["production"]
    toml = tomllib.loads(files[f"nodes/gitaly1{source.CONFIG_TOML}"])
    default = yml["repositories"]["storages"]["default"]
    assert default == {"gitaly_address": "tcp://gitaly1:8075", "gitaly_token": "t0k"}
    assert toml["auth"]["token"] == "t0k"
    assert files[f"nodes/gitlab{source.APP_SHELL_SECRET_FILE}"] == \
        files[f"nodes/gitaly1{source.SHELL_SECRET_FILE}"]


def test_own_secrets_give_a_different_shell_secret() -> None:
    lab = _lab("19.3.0", "nodes.gitaly1.secrets=own", "nodes.gitlab.install=source")
    files = source.source_files(lab, fixed_secrets(lab))
    assert files[f"nodes/gitlab{source.APP_SHELL_SECRET_FILE}"] != \
        files[f"nodes/gitaly1{source.SHELL_SECRET_FILE}"]


def test_omnibus_nodes_render_no_source_files() -> None:
    lab = resolve(SpecRequest(topology="scaled", version="19.3.0", flavor="omnibus"))
    assert source.source_files(lab, fixed_secrets(lab)) == {}


def test_install_is_checked() -> None:
    with pytest.raises(SpecError, match="install"):
        _lab("19.3.0", "nodes.gitaly1.install=tarball")


@pytest.mark.parametrize("flavor", ["sim", "omnibus"])
def test_lab_up_refuses_a_source_node_before_touching_docker(flavor: str) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor=flavor,
                              sets=("nodes.gitaly1.install=source",)))
    with pytest.raises(BadInput, match=r"gitaly1 is installed from source.*not yet runnable"):
        up(lab)
