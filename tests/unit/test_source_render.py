"""Nodes installed from source: Gitaly's config.toml per release and GitLab's gitlab.yml,
read back with tomllib / safe_load (lab/render/source.py); golden files: the source cases
of tests/unit/test_golden.py."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from conftest import fixed_secrets

from lab.errors import BadInput, SpecError
from lab.lifecycle.handle import source_not_runnable, up
from lab.omnibus import source_layout
from lab.omnibus.node import admin_token_cmd, gitaly_check_cmd
from lab.omnibus.source_layout import INSTALL_ENV
from lab.render import source
from lab.render.compose_file import compose_dict
from lab.render.gitlab_rb import render_gitlab_rb
from lab.spec.labspec import SpecRequest, resolve


def _lab(version: str, *sets: str):  # type: ignore[no-untyped-def]
    return resolve(SpecRequest(topology="scaled", version=version, flavor="omnibus",
                               sets=("nodes.gitaly1.install=source", *sets)))


def _toml(version: str, *sets: str) -> dict:  # type: ignore[type-arg]
    lab = _lab(version, *sets)
    files = source.source_files(lab, fixed_secrets(lab))
    return tomllib.loads(files[f"nodes/gitaly1{source_layout.CONFIG_TOML}"])


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
    assert _toml("19.3.0")["gitlab"] == {"secret_file": source_layout.SHELL_SECRET_FILE,
                                         "url": "http://gitlab"}


def test_shell_config_yml_only_before_13_0() -> None:
    old = _lab("12.10.14")
    files = source.source_files(old, fixed_secrets(old))
    shell_yml = yaml.safe_load(files[f"nodes/gitaly1{source_layout.SHELL_CONFIG_YML}"])
    assert shell_yml["gitlab_url"] == "http://gitlab"
    new = _lab("13.0.14")
    assert f"nodes/gitaly1{source_layout.SHELL_CONFIG_YML}" not in source.source_files(
        new, fixed_secrets(new))


def test_tls_and_storages() -> None:
    cfg = _toml("19.3.0", "tls=true")
    assert cfg["tls_listen_addr"] == "0.0.0.0:9999"
    assert cfg["tls"]["certificate_path"] == source_layout.TLS_CERT
    assert [s["name"] for s in cfg["storage"]] == ["default", "storage1"]


def test_app_gitlab_yml_sends_the_apps_own_token_as_its_gitlab_rb_does() -> None:
    # A token set on the Gitaly node is that node's only: the app keeps sending its own
    # (gitlab_rails['gitaly_token'] on Omnibus, gitaly_token in gitlab.yml), which is the
    # token mismatch the auth-token-mismatch scenarios make.
    lab = _lab("19.3.0", "nodes.gitlab.install=source", "nodes.gitaly1.install=source",
               "nodes.gitaly1.gitaly_token=t0k")
    sec = fixed_secrets(lab)
    files = source.source_files(lab, sec)
    yml = yaml.safe_load(files[f"nodes/gitlab{source_layout.GITLAB_YML}"])["production"]
    toml = tomllib.loads(files[f"nodes/gitaly1{source_layout.CONFIG_TOML}"])
    default = yml["repositories"]["storages"]["default"]
    assert default == {"gitaly_address": "tcp://gitaly1:8075", "gitaly_token": sec.gitaly_token}
    assert toml["auth"]["token"] == "t0k"
    # The same lab with an Omnibus app: its gitlab.rb sends the same token.
    assert f"gitlab_rails['gitaly_token'] = '{sec.gitaly_token}'" in render_gitlab_rb(
        lab, lab.app, sec.gitaly_token, sec)
    assert files[f"nodes/gitlab{source_layout.APP_SHELL_SECRET_FILE}"] == \
        files[f"nodes/gitaly1{source_layout.SHELL_SECRET_FILE}"]

    both = _lab("19.3.0", "nodes.gitlab.install=source", "nodes.gitlab.gitaly_token=t0k")
    yml = yaml.safe_load(source.source_files(both, fixed_secrets(both))[
        f"nodes/gitlab{source_layout.GITLAB_YML}"])["production"]
    assert {s["gitaly_token"] for s in yml["repositories"]["storages"].values()} == {"t0k"}


@pytest.mark.parametrize(("version", "with_path"), [
    ("12.10.14", True), ("17.7.0", True), ("17.8.0", False), ("19.3.0", False)])
def test_gitlab_yml_storages_carry_a_path_until_omnibus_drops_it(version: str,
                                                                 with_path: bool) -> None:
    lab = _lab(version, "nodes.gitlab.install=source")
    yml = yaml.safe_load(source.gitlab_yml(lab, fixed_secrets(lab)))["production"]
    storages = yml["repositories"]["storages"]
    assert list(storages) == ["default", "storage1"]
    if with_path:
        assert storages["default"]["path"] == "/var/opt/gitlab/git-data/repositories"
    else:
        assert all("path" not in s for s in storages.values())
    assert yml["gitlab"] == {"host": "gitlab", "port": 80, "https": False}
    assert yml["gitlab_shell"] == {"secret_file": source_layout.APP_SHELL_SECRET_FILE}


def test_own_secrets_give_a_different_shell_secret() -> None:
    lab = _lab("19.3.0", "nodes.gitaly1.secrets=own", "nodes.gitlab.install=source")
    files = source.source_files(lab, fixed_secrets(lab))
    assert files[f"nodes/gitlab{source_layout.APP_SHELL_SECRET_FILE}"] != \
        files[f"nodes/gitaly1{source_layout.SHELL_SECRET_FILE}"]


def test_omnibus_nodes_render_no_source_files() -> None:
    lab = resolve(SpecRequest(topology="scaled", version="19.3.0", flavor="omnibus"))
    assert source.source_files(lab, fixed_secrets(lab)) == {}


def test_install_is_checked() -> None:
    with pytest.raises(SpecError, match="install"):
        _lab("19.3.0", "nodes.gitaly1.install=tarball")


def test_lab_up_refuses_a_source_app_node_on_omnibus_before_touching_docker() -> None:
    # No official image runs a source app node: the omnibus flavour keeps refusing it.
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus",
                              sets=("nodes.gitlab.install=source",)))
    with pytest.raises(BadInput, match=r"gitlab is an app node installed from source.*"
                                       r"no official image runs a source app node"):
        up(lab)


def test_a_source_app_node_is_runnable_on_the_sim_beside_gitaly_nodes_only() -> None:
    for sets in (("nodes.gitlab.install=source",),
                 ("nodes.gitlab.install=source", "nodes.gitaly1.install=source")):
        lab = resolve(SpecRequest(topology="scaled", flavor="sim", sets=sets))
        assert source_not_runnable(lab) == ""
    # An all-in-one source node would need its own config.toml too: still refused.
    aio = resolve(SpecRequest(topology="single", flavor="sim",
                              sets=("nodes.gitlab.install=source",)))
    assert "also serves Gitaly storages" in source_not_runnable(aio)


def test_a_source_app_node_on_the_sim_mounts_its_home_and_asks_health() -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="sim",
                              sets=("nodes.gitlab.install=source",)))
    svc = compose_dict(lab, "img", "/x")["services"]["gitlab"]
    assert svc["volumes"][0] == "./nodes/gitlab/home/git:/home/git"
    assert svc["volumes"][-1] == {"type": "tmpfs", "target": "/etc/gitlab"}
    assert not any(str(v).endswith(":/etc/gitlab") for v in svc["volumes"])
    assert svc["environment"][INSTALL_ENV] == "source"
    assert svc["healthcheck"]["test"] == ["CMD", "curl", "-fsS", "--max-time", "10",
                                          "http://localhost/-/health"]


def test_lab_up_leaves_the_cng_gitaly_service_to_the_user() -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus",
                              sets=("nodes.gitaly1.install=source",)))
    with pytest.raises(BadInput, match=r"gitaly1 is a Gitaly node installed from source.*"
                                       r"Cloud Native GitLab's Gitaly image"):
        up(lab)


def test_a_source_gitaly_node_is_runnable_on_the_sim() -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="sim",
                              sets=("nodes.gitaly1.install=source",)))
    assert source_not_runnable(lab) == ""


@pytest.mark.parametrize("flavor", ["sim", "omnibus"])
def test_source_gitaly_service_mounts_its_home_not_etc_gitlab(flavor: str) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor=flavor,
                              sets=("nodes.gitaly1.install=source",)))
    services = compose_dict(lab, "img", "/lab")["services"]
    svc = services["gitaly1"]
    assert svc["volumes"][0] == "./nodes/gitaly1/home/git:/home/git"
    assert not any(str(v).endswith(":/etc/gitlab") for v in svc["volumes"])
    assert services["gitlab"]["volumes"][0] == "./nodes/gitlab:/etc/gitlab"
    tmpfs = {"type": "tmpfs", "target": "/etc/gitlab"}
    assert tmpfs not in services["gitlab"]["volumes"]
    if flavor == "sim":
        assert svc["environment"][INSTALL_ENV] == "source"
        # A mount of its own where the image declares a volume: nothing carried over from
        # the Omnibus node's container when Compose recreates it (integration test).
        assert tmpfs in svc["volumes"]
        assert svc["healthcheck"]["test"][:3] == ["CMD", "python3", "-c"]
        assert "gitlab-ctl" not in " ".join(svc["healthcheck"]["test"])
    else:
        # CNG's image runs its own Gitaly binary on the rendered file; no registry host.
        assert svc["image"] == "gitlab-org/build/cng/gitaly:v19.3.0"
        assert svc["command"] == ["/usr/local/bin/gitaly", source_layout.CONFIG_TOML]
        assert "healthcheck" not in svc
        assert INSTALL_ENV not in svc["environment"]
        assert tmpfs not in svc["volumes"]


def test_tls_source_gitaly_gets_its_certificate_beside_config_toml() -> None:
    lab = _lab("19.3.0", "nodes.gitaly1.tls=true")
    files = source.source_files(lab, fixed_secrets(lab))
    assert f"nodes/gitaly1{source_layout.TLS_CERT}" in files
    assert "PRIVATE KEY" in files[f"nodes/gitaly1{source_layout.TLS_KEY}"]


def test_a_source_app_nodes_tasks_run_the_install_guides_way() -> None:
    # No gitlab-rake / gitlab-rails on a source node: bundle exec in the Rails root.
    assert gitaly_check_cmd() == ["gitlab-rake", "gitlab:gitaly:check"]
    assert gitaly_check_cmd(source=True) == [
        "env", "-C", "/home/git/gitlab", "bundle", "exec", "rake", "gitlab:gitaly:check",
        "RAILS_ENV=production"]
    cmd = admin_token_cmd("tok", source=True)
    assert cmd[:9] == ["env", "-C", "/home/git/gitlab", "bundle", "exec", "rails", "runner",
                       "-e", "production"]
    assert "find_by_token('tok')" in cmd[9]
    assert admin_token_cmd("tok")[:2] == ["gitlab-rails", "runner"]
