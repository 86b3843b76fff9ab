"""A customer who followed the 11.x/12.x Gitaly guide: their files import, boot on sim
in their release's dialect, and a push to `archive` lands where their gitlab.rb says.

tests/data/guide-era/ is a copy of ../shared/reference/customer-files/guide-era/.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_lifecycle import engine, lab_cli, sim_image  # noqa: F401  (fixtures)

from lab.client.gitlab import Git, GitLabClient
from lab.lifecycle.handle import attach

GUIDE_ERA = Path(__file__).resolve().parent.parent / "data" / "guide-era"
pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]


def test_guide_era_files_import_boot_and_push_to_archive(lab_home: Path, tmp_path: Path,
                                                         sim_image: str) -> None:  # noqa: F811
    spec = tmp_path / "lab.yaml"
    imported = lab_cli("import", str(GUIDE_ERA / "app.rb"), str(GUIDE_ERA / "gitaly-a.rb"),
                       "-o", str(spec))
    assert imported.returncode == 0, imported.stderr
    text = spec.read_text()
    assert "version: 12.10.14" in text
    assert "path: /srv/gitaly/archive" in text
    name = f"guide-{uuid.uuid4().hex[:6]}"
    up = lab_cli("up", "-f", str(spec), "--flavor", "sim", "--name", name, "--timeout", "240")
    assert up.returncode == 0, up.stderr
    try:
        running = attach(name)
        rb = (running.path / "nodes" / "gitaly-a" / "gitlab.rb").read_text()
        assert "gitaly['storage'] = [" in rb
        assert "unicorn['enable'] = false" in rb
        token = running.admin_token_file.read_text().strip()
        api = GitLabClient(running.http_url, token)
        project = api.create_project("archived", storage="archive")
        pushed = Git(running.http_url, token).push(project["path_with_namespace"],
                                                   {"README.md": "kept\n"})
        assert pushed.ok, pushed.output
        found = running.exec("gitaly-a", ["find", "/srv/gitaly/archive/repositories", "-name",
                                          "*.git", "-type", "d"], check=False)
        assert found.returncode == 0, found.stderr
        assert ".git" in found.stdout, found.stdout
    finally:
        lab_cli("down", name)


def test_git_data_dirs_on_18_fails_the_node_with_omnibus_message(
        lab_home: Path, sim_image: str) -> None:  # noqa: F811
    name = f"gdd-{uuid.uuid4().hex[:6]}"
    up = lab_cli("up", "scaled", "--flavor", "sim", "--name", name, "--version", "18.0.0",
                 "--timeout", "180", "--set",
                 'nodes.gitlab.omnibus_config=git_data_dirs({"default" => '
                 '{"gitaly_address" => "tcp://gitaly1:8075"}})')
    try:
        assert up.returncode == 4, up.stdout + up.stderr
        out = up.stdout + up.stderr
        assert "Removed configurations found in gitlab.rb. Aborting reconfigure." in out
        assert "git_data_dirs has been deprecated since 17.8 and was removed in 18.0" in out
    finally:
        lab_cli("down", name)
