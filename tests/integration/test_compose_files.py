"""The lab folder's Compose files on the real engine: the user's override is honoured."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest
import sim_helpers

from lab.engine import docker as dk
from lab.errors import NotReady
from lab.lifecycle import handle
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import RenderedLab

OVERRIDE = """\
services:
  gitaly1:
    environment:
      LAB_OVERRIDE_PROBE: "from the override"
    labels:
      org.example.owner: support
"""


sim_image = pytest.fixture(sim_helpers.sim_image)


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_up_merges_the_override_and_status_draws_the_lab(lab_home: Path, sim_image: str) -> None:
    def add_override(rendered: RenderedLab) -> None:
        (rendered.path / "docker-compose.override.yml").write_text(OVERRIDE)

    name = f"ovr-{uuid.uuid4().hex[:6]}"
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    with handle.up(lab, name=name, timeout=180, prepare=add_override) as running:
        gitaly = running.container("gitaly1")
        # The environment is no part of the toolkit's snapshot: ask docker-py itself.
        env = docker.from_env().api.inspect_container(gitaly.id)["Config"]["Env"]
        assert "LAB_OVERRIDE_PROBE=from the override" in env
        assert gitaly.labels["org.example.owner"] == "support"
        # The rendered labels are still there: down and gc still find the container.
        assert gitaly.labels["io.gitlab-testlab.lab"] == name
        out = subprocess.run([sys.executable, "-c", "from lab.cli.main import main; main()",
                              "status", name, "--diagram"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert "```mermaid\nflowchart LR\n" in out.stdout
        assert "gRPC tcp://gitaly1:8075 (default, storage1)" in out.stdout
        assert "MISMATCH" not in out.stdout


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_lab_compose_the_testcontainers_way(lab_home: Path, sim_image: str) -> None:
    import requests

    from lab.client.gitaly import server_info
    from lab.testcontainers import LabCompose

    with LabCompose("scaled", sets=["nodes.gitaly1.publish.gitaly=0"]) as lab:
        host = lab.get_service_host("gitaly1", 8075)
        port = lab.get_service_port("gitaly1", 8075)
        info = server_info(f"tcp://{host}:{port}", lab.running.rendered.secrets.gitaly_token)
        assert [s.storage_name for s in info.storage_statuses] == ["default", "storage1"]
        url = f"http://{lab.get_service_host('gitlab', 80)}:{lab.get_service_port('gitlab', 80)}"
        assert url == lab.http_url
        r = requests.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": lab.admin_token},
                         timeout=10)
        assert r.status_code == 200
        out, _, code = lab.exec_in_container(["gitlab-ctl", "status", "gitaly"], "gitaly1")
        assert code == 0
        assert "run: gitaly" in out
        # The rest of DockerCompose's interface a testcontainers user reaches for.
        assert lab.get_service_host_and_port("gitaly1", 8075) == (host, port)
        assert sorted(c.name for c in lab.get_containers()) == sorted(
            lab.get_container(n).name for n in ("gitlab", "gitaly1"))
        token = {"PRIVATE-TOKEN": lab.admin_token}
        assert lab.wait_for(f"{url}/api/v4/user", headers=token) is lab
        with pytest.raises(NotReady, match="HTTP 401"):
            lab.wait_for(f"{url}/api/v4/user", timeout=0.1)
        logs, _ = lab.get_logs("gitaly1")
        assert logs
        assert all(line.startswith("gitaly1 | ") for line in logs.splitlines())
        assert lab.admin_token not in lab.get_logs()[0]
        assert lab.client.api.current_user()["username"] == "root"
        path = lab.running.path
    assert not path.exists()  # stop() removed the lab and its folder
    assert dk.containers({"io.gitlab-testlab.lab": lab.name}) == []


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_reclaiming_a_folder_leaves_no_container_or_volume(tmp_path: Path,
                                                            sim_image: str) -> None:
    import os

    marker = {"io.gitlab-testlab.test": uuid.uuid4().hex}
    before = {v.id for v in docker.from_env().volumes.list()}
    (tmp_path / "f").write_text("x")
    dk.chown_tree(sim_image, str(tmp_path), 4321, 4321, marker)
    assert os.stat(tmp_path / "f").st_uid == 4321
    assert dk.containers(marker) == []
    # The image declares volumes: the throwaway container must take its own with it.
    assert {v.id for v in docker.from_env().volumes.list()} - before == set()
