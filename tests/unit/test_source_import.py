"""lab import of files of nodes installed from source: Gitaly's config.toml (with
gitlab-shell's config.yml before 13.0) and GitLab's gitlab.yml, read as data beside
Omnibus gitlab.rb files (lab/spec/source_reader.py, lab/spec/importer.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.lifecycle.handle import source_not_runnable
from lab.spec.importer import check_importable, import_files, node_inputs
from lab.spec.labspec import SpecRequest, resolve

# The guide's own era: an Omnibus app node whose Gitaly lives elsewhere (11.11).
GUIDE_APP = """\
external_url 'http://gitlab.example.com'
gitaly['enable'] = false
gitlab_rails['gitaly_token'] = 'the-customer-token'
git_data_dirs({
  'default' => { 'gitaly_address' => 'tcp://gitaly1.internal:8075' },
})
"""

CONFIG_TOML = """\
listen_addr = "0.0.0.0:8075"
bin_dir = "/home/git/gitaly"

[auth]
token = "{token}"

[[storage]]
name = "default"
path = "/var/opt/gitlab/git-data/repositories"

[gitaly-ruby]
dir = "/home/git/gitaly/ruby"

[gitlab-shell]
dir = "/home/git/gitlab-shell"
"""

SHELL_YML = "gitlab_url: http://10.0.0.9:8080\nsecret_file: /home/git/gitlab-shell/.s\n"


def _write(folder: Path, token: str = "the-customer-token") -> list[Path]:
    (folder / "gitaly1").mkdir()
    (folder / "gitlab.rb").write_text(GUIDE_APP)
    (folder / "gitaly1" / "config.toml").write_text(CONFIG_TOML.format(token=token))
    return [folder / "gitlab.rb", folder / "gitaly1" / "config.toml"]


def test_guide_era_app_and_config_toml_make_one_lab(tmp_path: Path) -> None:
    result = import_files(node_inputs(_write(tmp_path), []), version="11.11.8")
    check_importable(result)
    gitaly = result.spec["nodes"]["gitaly1"]
    assert gitaly["install"] == "source"
    assert gitaly["storages"] == [{"name": "default"}]
    assert "gitaly_token" not in gitaly  # the same token on both sides
    assert "install" not in result.spec["nodes"]["gitlab"]


def test_a_token_mismatch_is_kept_without_copying_either(tmp_path: Path) -> None:
    result = import_files(node_inputs(_write(tmp_path, "another-token"), []), version="11.11.8")
    token = result.spec["nodes"]["gitaly1"]["gitaly_token"]
    assert len(token) == 64
    assert "another-token" not in result.to_yaml()


def test_gitlab_shell_config_yml_gives_the_api_url_before_13_0(tmp_path: Path) -> None:
    files = _write(tmp_path)
    (tmp_path / "gitaly1" / "config.yml").write_text(SHELL_YML)
    result = import_files(node_inputs([*files, tmp_path / "gitaly1" / "config.yml"], []),
                          version="11.11.8")
    assert result.spec["nodes"]["gitaly1"]["internal_api_url"] == "http://10.0.0.9:8080"


def test_without_it_the_note_names_the_file_to_give(tmp_path: Path) -> None:
    result = import_files(node_inputs(_write(tmp_path), []), version="11.11.8")
    assert any("gitlab-shell's config.yml under /home/git/gitlab-shell" in n
               for n in result.notes)


def test_a_source_app_gitlab_yml(tmp_path: Path) -> None:
    files = _write(tmp_path)
    (tmp_path / "gitlab.yml").write_text(
        "production:\n  repositories:\n    storages:\n      default:\n"
        "        gitaly_address: tcp://gitaly1:8075\n        gitaly_token: t\n")
    result = import_files(node_inputs([tmp_path / "gitlab.yml", files[1]], []),
                          version="13.12.15")
    assert result.spec["nodes"]["gitlab"]["install"] == "source"
    assert len(result.spec["nodes"]["gitaly1"]["gitaly_token"]) == 64  # "t" vs the toml's


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "g.toml").write_text('listen_addr = "x"\n[auth]\ntoken = \n')
    with pytest.raises(SpecError, match=r"g\.toml:3: not valid TOML"):
        import_files(node_inputs([], [f"gitaly1={tmp_path / 'g.toml'}"]))


def test_a_token_of_the_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    (tmp_path / "g.toml").write_text('listen_addr = "x"\n\n[auth]\ntoken = 12\n')
    with pytest.raises(SpecError, match=r"g\.toml:4: auth\.token: must be a string"):
        import_files(node_inputs([], [f"gitaly1={tmp_path / 'g.toml'}"]))


def test_a_shell_config_yml_alone_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(SHELL_YML)
    with pytest.raises(SpecError, match=r"comes with that node's Gitaly config\.toml"):
        import_files(node_inputs([], [f"gitaly1={tmp_path / 'config.yml'}"]))


def test_a_huge_config_toml_is_refused_before_parsing(tmp_path: Path) -> None:
    (tmp_path / "g.toml").write_text("# x\n" * 100_000)
    with pytest.raises(SpecError, match="larger than"):
        import_files(node_inputs([], [f"gitaly1={tmp_path / 'g.toml'}"]))


def test_a_customers_gitlab_yml_and_config_toml_boot_as_one_sim_lab(tmp_path: Path) -> None:
    # The global gitaly.token is what Rails sends for a storage without its own token.
    files = _write(tmp_path)
    (tmp_path / "gitlab.yml").write_text(
        "production: &base\n  gitaly:\n    token: the-customer-token\n"
        "  repositories:\n    storages:\n      default:\n"
        "        path: /home/git/repositories/\n"
        "        gitaly_address: tcp://gitaly1:8075\n"
        "  gitlab_shell:\n    secret_file: /home/git/gitlab/.gitlab_shell_secret\n")
    result = import_files(node_inputs([tmp_path / "gitlab.yml", files[1]], []),
                          version="13.12.15")
    check_importable(result)
    assert result.spec["nodes"]["gitlab"]["install"] == "source"
    assert "gitaly_token" not in result.spec["nodes"]["gitaly1"]  # the same token
    assert any("gitlab: installed from source" in n and "the sim flavour runs it" in n
               for n in result.notes)
    spec = tmp_path / "lab.yaml"
    spec.write_text(result.to_yaml())
    lab = resolve(SpecRequest(file=spec, flavor="sim"))
    assert lab.app.from_source
    assert source_not_runnable(lab) == ""
    assert "no official image" in source_not_runnable(
        resolve(SpecRequest(file=spec, flavor="omnibus")))
