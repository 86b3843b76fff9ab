"""An app node installed from source on the sim: `lab up scaled --set
nodes.gitlab.install=source` (here beside a source Gitaly node) is ready, pushes and clones
go through its gitlab.yml, GitLab's tasks run the source install's way (`bundle exec` in
/home/git/gitlab, no gitlab-rails), a change is applied by restarting its services, and a
gitlab.yml gitaly_token that is not the Gitaly node's makes the push fail as on Omnibus,
with doctor naming gitlab.yml's key and config.toml's."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sim_helpers

from lab.lifecycle import handle
from lab.omnibus.node import gitaly_check_cmd, parse_gitaly_check
from lab.omnibus.source_layout import GITLAB_YML
from lab.spec.labspec import SpecRequest, resolve
from lab.support.doctor import doctor
from lab.support.doctor.checks import Level

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
SOURCE = ("nodes.gitlab.install=source", "nodes.gitaly1.install=source")
WRONG = "nodes.gitlab.gitaly_token=not-the-token-gitaly-holds-0123456789"


sim_image = pytest.fixture(sim_helpers.sim_image)


def test_source_app_lab_is_ready_pushes_and_a_token_mismatch_fails(
        lab_home: Path, sim_image: str) -> None:
    spec = resolve(SpecRequest(topology="scaled", flavor="sim", sets=SOURCE))
    with handle.up(spec, name=f"srcapp-{uuid.uuid4().hex[:6]}", timeout=180) as running:
        yml = running.path / "nodes" / "gitlab" / GITLAB_YML.lstrip("/")
        assert "gitaly_token:" in yml.read_text()
        # No Omnibus tools on the node; GitLab's tasks run as the install guide runs them.
        assert running.exec("gitlab", ["gitlab-rails", "runner", "puts 1"],
                            check=False).returncode == 127
        check = running.exec("gitlab", gitaly_check_cmd(source=True), check=False)
        assert parse_gitaly_check(check.stdout) == {"default": "", "storage1": ""}, check
        outside = running.exec("gitlab", ["bundle", "exec", "rake", "gitlab:gitaly:check"],
                               check=False)
        assert outside.returncode == 10  # not in the Rails root: bundler's own refusal
        assert "Could not locate Gemfile or .bundle/ directory" in outside.stderr

        report, _ = doctor(running)
        assert not report.failed, [c for c in report.checks if c.level is Level.FAIL]
        gl = running.client
        gl.api.create_project("p1")
        assert gl.git.push("root/p1", {"README.md": "hi\n"}).ok
        assert gl.git.clone_and_compare("root/p1", {"README.md": "hi\n"}).ok

        started = running.container("gitlab").state.started_at
        wrong = resolve(SpecRequest(topology="scaled", flavor="sim", sets=(*SOURCE, WRONG)))
        assert running.apply(wrong, wait_gitaly=False, timeout=180) == ["gitlab"]
        assert running.last_actions is not None
        [action] = running.last_actions.describe()
        assert action.startswith("gitlab: restart (installed from source (no reconfigure): ")
        assert GITLAB_YML.lstrip("/") in action
        # Its services restarted in the running container (`service gitlab restart`).
        assert running.container("gitlab").state.started_at == started
        assert "restarting app (gitlab.yml read again)" in running.logs("gitlab")
        assert "not-the-token-gitaly-holds" in yml.read_text()

        # doctor names both sides: gitlab.yml's storage key and config.toml's auth.token.
        mismatch = [c for c in doctor(running)[0].checks
                    if c.level is Level.FAIL and c.name == "gitaly token (files)"]
        assert mismatch, "doctor did not see the token mismatch"
        assert "gitlab.yml" in mismatch[0].detail
        assert "production.repositories.storages.default.gitaly_token" in mismatch[0].detail
        assert "config.toml" in mismatch[0].detail
        assert "auth.token" in mismatch[0].detail

        # A restarted container publishes its HTTP port anew: ask for the client again.
        pushed = running.client.git.push("root/p1", {"README.md": "again\n"})
        assert not pushed.ok
        # Workhorse's info/refs gets Gitaly's PermissionDenied (docs/fidelity.md).
        assert "The requested URL returned error: 500" in pushed.output, pushed.output
