"""A Gitaly node installed from source on the sim: `lab up scaled --set
nodes.gitaly1.install=source` is ready, pushes go through its config.toml, a change is
applied by restarting its services (it has no gitlab-ctl: `service gitlab restart`), a
config.toml Gitaly cannot read leaves them stopped with the reason, and a token in
config.toml that is not the app's makes a push fail with the text Workhorse answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sim_helpers

from lab.lifecycle import handle
from lab.omnibus.source_layout import CONFIG_TOML
from lab.spec.labspec import SpecRequest, resolve
from lab.support.doctor import doctor
from lab.support.doctor.checks import Level

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
SOURCE = "nodes.gitaly1.install=source"


sim_image = pytest.fixture(sim_helpers.sim_image)


def test_source_gitaly_lab_is_ready_pushes_and_applies_changes_by_restart(
        lab_home: Path, sim_image: str) -> None:
    spec = resolve(SpecRequest(topology="scaled", flavor="sim", sets=(SOURCE,)))
    with handle.up(spec, name=f"src-{uuid.uuid4().hex[:6]}", timeout=180) as running:
        toml = running.path / "nodes" / "gitaly1" / CONFIG_TOML.lstrip("/")
        assert "[auth]" in toml.read_text()
        # No Omnibus on the node: nothing to reconfigure with.
        assert running.exec("gitaly1", ["gitlab-ctl", "reconfigure"],
                            check=False).returncode == 127
        # doctor on the live lab: the node's own secret file signs the internal API probe.
        report, _ = doctor(running)
        assert not report.failed, [c for c in report.checks if c.level is Level.FAIL]
        assert any(c.scope == "gitaly1" and c.name == "internal API" and c.level is Level.OK
                   for c in report.checks)
        gl = running.client
        gl.api.create_project("p1")
        assert gl.git.push("root/p1", {"README.md": "hi\n"}).ok

        started = running.container("gitaly1").state.started_at
        wrong = resolve(SpecRequest(topology="scaled", flavor="sim", sets=(
            SOURCE, "nodes.gitaly1.gitaly_token=not-the-token-the-app-uses-0123456789")))
        assert running.apply(wrong, wait_gitaly=False, timeout=180) == ["gitaly1"]
        assert running.last_actions is not None
        [action] = running.last_actions.describe()
        assert action.startswith("gitaly1: restart (installed from source (no reconfigure): ")
        assert CONFIG_TOML.lstrip("/") in action
        # Its services restarted in the running container (`service gitlab restart`),
        # which read config.toml again.
        assert running.container("gitaly1").state.started_at == started
        assert "restarting gitaly (config.toml read again)" in running.logs("gitaly1")
        assert "not-the-token-the-app-uses" in toml.read_text()

        # doctor names both sides of the mismatch: gitlab.rb and config.toml with its key.
        mismatch = [c for c in doctor(running)[0].checks
                    if c.level is Level.FAIL and c.name == "gitaly token (files)"]
        assert mismatch, "doctor did not see the token mismatch"
        assert "gitlab.rb" in mismatch[0].detail
        assert "config.toml" in mismatch[0].detail
        assert "auth.token" in mismatch[0].detail

        pushed = gl.git.push("root/p1", {"README.md": "again\n"})
        assert not pushed.ok
        # Workhorse's info/refs gets Gitaly's PermissionDenied (docs/fidelity.md).
        assert "The requested URL returned error: 500" in pushed.output, pushed.output

        # A config.toml Gitaly cannot read: the restart leaves its services stopped and
        # says why; readable again, the next restart brings them back.
        good = toml.read_text()
        toml.write_text("listen_addr = \n")
        failed = running.exec("gitaly1", ["service", "gitlab", "restart"], check=False)
        assert failed.returncode == 1
        assert failed.stderr.startswith("GitLab did not start: load config: config_path"), \
            failed.stderr
        assert running.exec("gitaly1", ["service", "gitlab", "status"],
                            check=False).returncode == 3
        toml.write_text(good)
        assert running.exec("gitaly1", ["service", "gitlab", "restart"]).returncode == 0
        # Not on an Omnibus node.
        assert running.exec("gitlab", ["service", "gitlab", "restart"],
                            check=False).stderr == "gitlab: unrecognized service\n"


def _etc_gitlab_mount(container: str) -> tuple[str, str]:
    """How /etc/gitlab is mounted in ``container``: (type, volume name or source)."""
    shown = sim_helpers.docker("inspect", "--format", "{{range .Mounts}}{{if eq .Destination "
                               "\"/etc/gitlab\"}}{{.Type}} {{.Name}}{{.Source}}{{end}}{{end}}|"
                               "{{json .HostConfig.Tmpfs}}", container).stdout.strip()
    mount, _, tmpfs = shown.partition("|")
    if not mount and "/etc/gitlab" in tmpfs:
        return "tmpfs", ""
    kind, _, where = mount.partition(" ")
    return kind, where


def test_a_node_changed_from_source_and_back_keeps_its_files_and_leaves_no_volume(
        lab_home: Path, sim_image: str) -> None:
    """The pool changes the plain lab into one with a source node and back (one lab
    family): the source node's /etc/gitlab is a tmpfs, not the image's anonymous volume,
    which Compose v1 carried over the returning node's bind mount (it came back without
    its gitlab.rb) and which outlived the lab."""
    plain = resolve(SpecRequest(topology="scaled", flavor="sim"))
    source = resolve(SpecRequest(topology="scaled", flavor="sim", sets=(SOURCE,)))
    seen: set[str] = set()
    with handle.up(plain, name=sim_helpers.lab_name("morph"), timeout=180) as running:
        def mounts() -> tuple[str, str]:
            name = running.container("gitaly1").name
            seen.update(sim_helpers.docker(
                "inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", name
            ).stdout.split())
            return _etc_gitlab_mount(name)

        folder = str(running.path / "nodes" / "gitaly1")
        assert mounts() == ("bind", folder)
        assert running.apply(source, timeout=180) == ["gitaly1"]
        assert mounts() == ("tmpfs", "")
        assert running.apply(plain, timeout=180) == ["gitaly1"]
        assert mounts() == ("bind", folder)
        assert running.exec("gitaly1", ["test", "-s", "/etc/gitlab/gitlab.rb"]).returncode == 0
    left = set(sim_helpers.docker("volume", "ls", "-q").stdout.split())
    assert seen
    assert not seen & left, f"volumes left behind: {sorted(seen & left)}"
