"""A rendered `scaled` sim lab under plain Docker Compose: project, push, clone; and
the guide's failure case (Gitaly node with its own secrets) rejects the push with 401."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from conftest import skip_or_fail
from sim_helpers import docker, lab_name, sim_image, sweep, wait_for

from lab.cli.main import cli
from lab.engine.compose import Compose, detect
from lab.engine.run import Result
from lab.errors import DockerUnavailable
from lab.omnibus import eras
from lab.omnibus.node import admin_token_cmd, ran_ok
from lab.omnibus.release import VERSION_ENV, Version

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _need_compose() -> None:
    try:
        detect()
    except DockerUnavailable as exc:
        skip_or_fail(str(exc))


class SimLab:
    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.name = name
        self.project = Compose(detect(), name, directory)
        self.token = (directory / "admin-token").read_text().strip()
        self.url = ""

    def compose(self, *args: str, check: bool = True) -> Result:
        return self.project.run([*self.project.base(), *args], timeout=300, check=check)

    def healthy(self, service: str) -> bool:
        """The service's health check passes, asked as Docker asks it (its command, in the
        container): Docker itself first asks 60 s after the start, the image's pace."""
        cid = self.compose("ps", "-q", service).stdout.strip()
        if not cid:
            return False
        check = docker("inspect", "--format", "{{json .Config.Healthcheck}}", cid,
                       check=False).stdout
        test = json.loads(check)["Test"] if check.strip() else []
        assert test[:1] == ["CMD"], test
        return docker("exec", cid, *test[1:], check=False).returncode == 0

    def up(self) -> None:
        self.compose("up", "-d")
        wait_for(lambda: self.healthy("gitaly1") and self.healthy("gitlab"), 90, "healthy lab")
        port = self.compose("port", "gitlab", "80").stdout.strip().rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"
        made = self.compose("exec", "-T", "gitlab", *admin_token_cmd(self.token),
                            check=False)
        assert ran_ok(made), made.stderr or made.stdout

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, f"{self.url}/api/v4/{path}", timeout=30,
                                headers={"PRIVATE-TOKEN": self.token}, **kwargs)  # type: ignore[arg-type]

    def git_url(self, project: str) -> str:
        return self.url.replace("http://", f"http://root:{self.token}@") + f"/root/{project}.git"


def render_and_up(tmp_path: Path, *sets: str) -> Iterator[SimLab]:
    image = sim_image()
    name = lab_name("simlab")
    directory = tmp_path / name
    args = ["render", "scaled", "--flavor", "sim", "--set", f"name={name}", "-o", str(directory)]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert image in (directory / "docker-compose.yml").read_text()
    lab = SimLab(directory, name)
    try:
        lab.up()
        yield lab
    finally:
        lab.compose("down", "-v", "--remove-orphans", check=False)
        sweep(name)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "user.name=lab", "-c", "user.email=lab@example.com",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120)


def make_repo(path: Path) -> None:
    path.mkdir()
    git("init", "-q", cwd=path)
    (path / "README.md").write_text("hello from gitlab-testlab\n")
    (path / "data.bin").write_bytes(bytes(range(256)) * 400)
    git("add", ".", cwd=path)
    assert git("commit", "-qm", "first", cwd=path).returncode == 0


@pytest.fixture
def shared_lab(tmp_path: Path) -> Iterator[SimLab]:
    yield from render_and_up(tmp_path)


@pytest.fixture
def own_secrets_lab(tmp_path: Path) -> Iterator[SimLab]:
    yield from render_and_up(tmp_path, "nodes.gitaly1.secrets=own")


def test_push_and_clone_round_trip(shared_lab: SimLab, tmp_path: Path) -> None:
    lab = shared_lab
    assert lab.api("GET", "user").json()["username"] == "root"
    created = {}
    for storage in ("default", "storage1"):
        resp = lab.api("POST", "projects", data={"name": f"p-{storage}",
                                                 "repository_storage": storage})
        assert resp.status_code == 201, resp.text
        created[storage] = resp.json()
    project = lab.api("GET", "projects/root%2Fp-storage1").json()
    assert project["repository_storage"] == "storage1"
    assert project["path_with_namespace"] == "root/p-storage1"
    # The API has no disk_path: the path is the release's layout (legacy or hashed).
    release = re.search(rf"{VERSION_ENV}: '?([0-9.]+)",
                        (lab.dir / "docker-compose.yml").read_text())
    assert release, "the rendered lab names no release"
    disk = eras.repository_disk_path(Version.parse(release[1]), int(project["id"]),
                                     project["path_with_namespace"])
    on_disk = docker("exec", f"{lab.compose('ps', '-q', 'gitaly1').stdout.strip()}", "test",
                     "-f", f"/var/opt/gitlab/git-data-storage1/repositories/{disk}/HEAD",
                     check=False)
    assert on_disk.returncode == 0

    src = tmp_path / "src"
    make_repo(src)
    for storage in created:
        push = git("push", lab.git_url(f"p-{storage}"), "main", cwd=src)
        assert push.returncode == 0, push.stderr
        clone = tmp_path / f"clone-{storage}"
        cloned = git("clone", "-q", lab.git_url(f"p-{storage}"), str(clone), cwd=tmp_path)
        assert cloned.returncode == 0, cloned.stderr
        assert (clone / "README.md").read_bytes() == (src / "README.md").read_bytes()
        assert (clone / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
        head = git("rev-parse", "HEAD", cwd=clone).stdout
        assert head == git("rev-parse", "HEAD", cwd=src).stdout

    health = lab.compose("exec", "-T", "gitlab", "curl", "-s",
                         "http://localhost/-/readiness?all=1").stdout
    assert json.loads(health)["status"] == "ok"
    rake = lab.compose("exec", "-T", "gitlab", "gitlab-rake", "gitlab:gitaly:check").stdout
    assert "default ... OK" in rake
    assert "storage1 ... OK" in rake
    shell = lab.compose("exec", "-T", "gitaly1", "gitlab-rake", "gitlab:gitlab_shell:check")
    assert "Internal API available: OK" in shell.stdout, shell.stdout + shell.stderr
    # Probes answer only the monitoring whitelist (loopback by default).
    assert requests.get(f"{lab.url}/-/health", timeout=10).status_code == 404


def test_gitaly_with_own_secrets_rejects_push(own_secrets_lab: SimLab, tmp_path: Path) -> None:
    lab = own_secrets_lab
    resp = lab.api("POST", "projects", data={"name": "rejected"})
    assert resp.status_code == 201, resp.text
    src = tmp_path / "src"
    make_repo(src)
    push = git("push", lab.git_url("rejected"), "main", cwd=src)
    assert push.returncode != 0
    assert "remote: GitLab: 401 Unauthorized" in push.stderr
    assert "[remote rejected] main -> main (pre-receive hook declined)" in push.stderr


@pytest.fixture
def tls_lab(tmp_path: Path) -> Iterator[SimLab]:
    yield from render_and_up(tmp_path, "tls=true")


def test_push_and_clone_over_tls(tls_lab: SimLab, tmp_path: Path) -> None:
    lab = tls_lab
    assert "tls://gitaly1:9999" in (lab.dir / "nodes/gitlab/gitlab.rb").read_text()
    assert lab.api("POST", "projects", data={"name": "over-tls"}).status_code == 201
    src = tmp_path / "src"
    make_repo(src)
    push = git("push", lab.git_url("over-tls"), "main", cwd=src)
    assert push.returncode == 0, push.stderr
    clone = tmp_path / "clone"
    assert git("clone", "-q", lab.git_url("over-tls"), str(clone), cwd=tmp_path).returncode == 0
    assert (clone / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
