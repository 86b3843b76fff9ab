"""The swarm engine against a real one-machine swarm (sim flavour).

The module's fixture makes the swarm only if the engine is in none, and then leaves
it as it found it: `docker swarm leave --force`, and the networks the swarm made
(``docker_gwbridge``; ``ingress`` goes with the leave) removed. Run under the Docker
lock: joining or leaving a swarm changes the engine for everyone on it. It refuses to
make one while labs are running (skip; a failure in CI), after taking down the
session's own: leaving a swarm broke a running lab's DNS.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import refuse_swarm_beside_labs, skip_or_fail

from lab.engine import docker as dk
from lab.engine import swarm as sw
from lab.errors import EngineUnusable, NotReady
from lab.lifecycle import gc as lab_gc
from lab.lifecycle import handle
from lab.lifecycle.swarm import SwarmLab
from lab.model.labels import DIR_LABEL, GATEWAY_LABEL, LAB_LABEL
from lab.spec.labspec import SpecRequest, resolve
from lab.store import state

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]


@pytest.fixture(scope="module")
def one_machine_swarm(request: pytest.FixtureRequest) -> Iterator[None]:
    try:
        dk.check_reachable()
    except EngineUnusable as exc:
        skip_or_fail(f"Docker is not usable: {exc}")
    if shutil.which("docker") is None:
        skip_or_fail("the docker CLI is not installed (docker stack deploy)")
    if sw.in_swarm() and not sw.is_manager():
        pytest.skip("this engine is a swarm worker; the swarm tests need a manager")
    if not sw.in_swarm():
        # The session's own labs (the plugin keeps them up for later scenarios) go first:
        # these tests run last (tests/conftest.py), so nothing needs them any more.
        request.getfixturevalue("lab_pool").close()
    # Then no lab may be running: leaving the swarm would break its networking.
    refuse_swarm_beside_labs(sw.in_swarm, running_labs)
    before = network_names()
    with sw.one_machine_swarm():
        yield
    assert network_names() == before, "the swarm left networks behind"


def running_labs() -> list[str]:
    return sorted({c.labels.get(LAB_LABEL, c.name) for c in dk.containers({LAB_LABEL: ""})
                   if c.status == "running"})


def network_names() -> set[str]:
    out = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.fixture
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def leftovers(path: Path) -> list[str]:
    labels = {DIR_LABEL: str(path)}
    return ([f"container {c.name}" for c in dk.containers(labels)]
            + [f"network {n.name}" for n in dk.networks(labels)]
            + [f"volume {v.name}" for v in dk.volumes(labels)]
            + [f"service {s.name}" for s in sw.services(labels)]
            + [f"{o.kind} {o.name}" for o in sw.objects(labels)])


def swarm_lab(*sets: str, name: str = "") -> handle.RunningLab:
    lab = resolve(SpecRequest(topology="scaled", engine="swarm", sets=sets,
                              name=name or f"sw-{uuid.uuid4().hex[:6]}"))
    return handle.up(lab)


@pytest.fixture
def running(one_machine_swarm: None, lab_home: Path) -> Iterator[handle.RunningLab]:
    lab = swarm_lab()
    try:
        yield lab
    finally:
        lab.down()


def test_up_is_ready_and_publishes_nothing_beyond_loopback(
        running: handle.RunningLab) -> None:
    assert isinstance(running, SwarmLab)
    st = running.status()
    assert [n.state for n in st.nodes] == ["running", "running"]
    assert running.http_url.startswith("http://127.0.0.1:")
    # Swarm publishes nothing (it would bind every interface)...
    assert all(not s.ports for s in sw.services(running.labels))
    # ...the gateway publishes the app's port on loopback only.
    (gateway,) = dk.containers({**running.labels, GATEWAY_LABEL: ""})
    assert gateway.ports
    assert all(a.startswith("127.0.0.1:") for a in gateway.ports.values())
    # The Gitaly port is reachable inside the lab only.
    gitaly = next(n for n in st.nodes if n.node == "gitaly1")
    assert gitaly.ports == {}


def test_node_files_arrive_from_secrets_with_their_modes(running: handle.RunningLab) -> None:
    kinds = {(o.kind, o.labels.get("io.gitlab-testlab.file", "")) for o in
             sw.objects(running.labels)}
    assert ("secret", "/etc/gitlab/gitlab-secrets.json") in kinds
    assert ("secret", "/etc/gitlab/gitlab.rb") in kinds
    res = running.exec("gitaly1", ["stat", "-c", "%a %U", "/etc/gitlab/gitlab-secrets.json"])
    assert res.stdout.split() == ["600", "root"]
    rendered = (running.path / "nodes/gitaly1/gitlab.rb").read_text()
    assert running.exec("gitaly1", ["cat", "/etc/gitlab/gitlab.rb"]).stdout == rendered
    # /etc/gitlab is the node's own volume, writable: the boot wrote its host keys there.
    listing = running.exec("gitaly1", ["ls", "/etc/gitlab"]).stdout.split()
    assert any(f.startswith("ssh_host_") for f in listing)
    assert "gitlab Reconfigured!" in running.logs("gitaly1", tail=2000)


def test_stop_scales_to_zero_and_start_brings_it_back(running: handle.RunningLab) -> None:
    running.act("gitaly1", "stop")
    (svc,) = [s for s in sw.services(running.labels)
              if s.labels.get("io.gitlab-testlab.node") == "gitaly1"]
    assert svc.replicas == 0
    assert all(t.ended for t in sw.tasks(svc))
    state_now = next(n.state for n in running.status().nodes if n.node == "gitaly1")
    assert state_now != "running"
    running.act("gitaly1", "start")
    running.wait_ready()
    assert [n.state for n in running.status().nodes] == ["running", "running"]


def test_down_leaves_nothing_of_the_lab(one_machine_swarm: None, lab_home: Path) -> None:
    lab = swarm_lab()
    assert leftovers(lab.path)
    lab.down()
    assert leftovers(lab.path) == []


def test_a_place_no_machine_fits_fails_at_once_with_swarms_reason(
        one_machine_swarm: None, lab_home: Path) -> None:
    name = f"sw-{uuid.uuid4().hex[:6]}"
    with pytest.raises(NotReady, match="no suitable node"):
        swarm_lab("nodes.gitaly1.place=no-such-machine", name=name)
    assert leftovers(state.lab_dir(name)) == []


def test_gc_finds_a_swarm_labs_leftovers_by_label(one_machine_swarm: None,
                                                   lab_home: Path) -> None:
    lab = swarm_lab()
    shutil.rmtree(lab.path)  # its folder gone: what it left is garbage
    removed = lab_gc.gc()
    assert any(r.startswith("service ") for r in removed)
    assert any(r.startswith("secret ") for r in removed)
    assert leftovers(lab.path) == []
