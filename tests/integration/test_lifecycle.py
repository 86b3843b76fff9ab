"""Lab lifecycle against the real engine (sim flavour) and the bad-input messages.

Every lab lives under a temporary LAB_HOME and gets a unique name, so these
tests never touch a user's labs; teardown sweeps by the lab's directory label.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import skip_or_fail

from lab.engine import docker as dk
from lab.errors import NotReady
from lab.lifecycle import gc as lab_gc
from lab.lifecycle import handle
from lab.lifecycle.folder import reclaim
from lab.render.compose_file import DIR_LABEL, LAB_LABEL, omnibus_image
from lab.spec.labspec import SpecRequest, resolve
from lab.store import layout, state
from lab.store.labdir import RenderedLab

LAB_CMD = [sys.executable, "-c", "from lab.cli.main import main; main()"]
sim_lab = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]


def lab_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAB_CMD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def leftovers(path: Path) -> list[str]:
    labels = {DIR_LABEL: str(path)}
    return ([f"container {c.name}" for c in dk.containers(labels)]
            + [f"network {n.name}" for n in dk.networks(labels)]
            + [f"volume {v.name}" for v in dk.volumes(labels)])


def resource_labels(path: Path) -> dict[str, list[dict[str, str]]]:
    """The labels of each container, network and volume labelled with lab directory ``path``."""
    labels = {DIR_LABEL: str(path)}
    return {"container": [dict(c.labels) for c in dk.containers(labels)],
            "network": [dict(n.labels) for n in dk.networks(labels)],
            "volume": [dict(v.labels) for v in dk.volumes(labels)]}


def started_at(running: handle.RunningLab, node: str) -> str:
    return running.container(node).state.started_at


@pytest.fixture
def engine() -> None:
    try:
        dk.check_reachable()
    except Exception as exc:
        skip_or_fail(f"no reachable Docker Engine ({exc})")


@pytest.fixture
def sim_image(engine: None) -> str:
    from lab.engine.images import build_images

    return build_images()


# --- the happy path ----------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_up_status_exec_logs_down(lab_home: Path, sim_image: str) -> None:
    name = unique("life")
    up = lab_cli("up", "scaled", "--flavor", "sim", "--name", name, "--timeout", "180")
    assert up.returncode == 0, up.stderr
    assert "http://127.0.0.1:" in up.stdout
    assert str(lab_home / "labs" / name / "admin-token") in up.stdout
    for layer in ("containers running", "services up", "app ready", "gitaly storages",
                  "admin token"):
        assert layer in up.stderr

    # Ready is the toolkit's probes' verdict. Docker's own check (kept in the compose
    # file for by-hand use) first runs 60 s after the start, the image's pace: until then
    # a node is "starting", which `lab status` counts healthy. The check passes when run
    # as Docker runs it (its command, in the container).
    st = lab_cli("status", name, "--json")
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    health = {n["node"]: n["health"] for n in data["nodes"]}
    assert set(health) == {"gitlab", "gitaly1"}
    assert set(health.values()) <= {"starting", "healthy"}, health
    assert all(n["healthy"] for n in data["nodes"])
    for node in data["nodes"]:
        check = json.loads(subprocess.run(
            ["docker", "inspect", "--format", "{{json .Config.Healthcheck}}",
             node["container"]], capture_output=True, text=True, check=True).stdout)
        assert check["Interval"] == 60 * 10**9, check
        assert check["Test"][0] == "CMD", check
        ran = subprocess.run(["docker", "exec", node["container"], *check["Test"][1:]],
                             capture_output=True, text=True, timeout=60, check=False)
        assert ran.returncode == 0, (node["node"], check["Test"], ran.stdout, ran.stderr)
    gitaly = next(n for n in data["nodes"] if n["node"] == "gitaly1")
    assert gitaly["ports"] == {}  # Gitaly is not published by default
    assert gitaly["storages"] == ["default", "storage1"]

    ex = lab_cli("exec", "gitaly1", "--lab", name, "--", "/opt/gitlab/bin/gitlab-ctl", "status",
                 "gitaly")
    assert ex.returncode == 0
    assert "run: gitaly" in ex.stdout
    assert lab_cli("exec", "gitlab", "--lab", name, "--", "sh", "-c", "exit 7").returncode == 7

    lg = lab_cli("logs", "gitaly1", "--lab", name, "--tail", "50")
    assert lg.returncode == 0
    assert lg.stdout.strip()

    running = handle.attach(name)
    token = running.admin_token
    assert token not in lg.stdout + up.stdout + up.stderr + st.stdout  # never printed
    import requests

    r = requests.get(f"{running.http_url}/api/v4/user", headers={"PRIVATE-TOKEN": token},
                     timeout=10)
    assert r.status_code == 200

    listed = json.loads(lab_cli("list", "--json").stdout)["labs"]
    assert [(s["name"], s["state"]) for s in listed] == [(name, "up")]

    # So that "nothing left after down" below means something: the lab had all
    # three kinds, each labelled with its name and directory. (The sim image's
    # VOLUME paths are all mounted by Compose, so it has no unlabelled volumes.)
    path = lab_home / "labs" / name
    before = resource_labels(path)
    assert len(before["container"]) == 2
    assert len(before["network"]) == 1
    assert len(before["volume"]) == 4  # data and logs per node
    assert all(lbl[LAB_LABEL] == name and lbl[DIR_LABEL] == str(path)
               for kind in before.values() for lbl in kind)

    down = lab_cli("down", name)
    assert down.returncode == 0, down.stderr
    assert leftovers(lab_home / "labs" / name) == []
    assert lab_cli("down", name, "--purge").returncode == 0
    assert not (lab_home / "labs" / name).exists()


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_lab_run_on_the_lab_that_is_up(lab_home: Path, sim_image: str) -> None:
    # The quick start's lab, then a built-in scenario on it: no second lab appears, the
    # scenario's change is undone, and a scenario made for a TLS lab is refused by name.
    name = unique("own")
    assert lab_cli("up", "scaled", "--name", name, "--timeout", "180").returncode == 0
    try:
        before = handle.attach(name)
        secrets = (before.path / "nodes" / "gitaly1" / "gitlab-secrets.json").read_text()
        run = lab_cli("run", "--lab", name, "gitaly-own-secrets", "--json")
        assert run.returncode == 0, run.stdout + run.stderr
        results = json.loads(run.stdout)
        assert [(s["name"], s["status"], s["lab"]) for s in results["scenarios"]] == [
            ("gitaly-own-secrets", "passed", name)]
        assert state.lab_names() == [name]  # nothing else booted
        after = handle.attach(name)
        assert after.lab == before.lab
        assert (after.path / "nodes" / "gitaly1" / "gitlab-secrets.json").read_text() == secrets
        assert all(n.healthy or n.health == "starting" for n in after.status().nodes)

        tls = lab_cli("run", "--lab", name, "tls-push")
        assert tls.returncode == 2, tls.stdout + tls.stderr
        assert f"needs another lab than lab {name!r}" in tls.stderr
        assert "nodes.gitaly1.tls: false -> true" in tls.stderr
    finally:
        lab_cli("down", name, "--purge")


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_two_labs_at_once(lab_home: Path, sim_image: str) -> None:
    spec = resolve(SpecRequest(topology="scaled", flavor="sim"))
    a = handle.up(spec, name=unique("twin-a"), timeout=180)
    try:
        b = handle.up(spec, name=unique("twin-b"), timeout=180)
        try:
            sa, sb = a.status(), b.status()
            # Ready by the toolkit's probes; Docker's health may still say "starting".
            assert all(n.state == "running" for n in sa.nodes + sb.nodes)
            assert sa.http_url != sb.http_url
            assert {n.container for n in sa.nodes}.isdisjoint({n.container for n in sb.nodes})
            assert a.exec("gitlab", ["true"]).returncode == 0
        finally:
            b.down(purge=True)
        # Taking b down left a alone.
        assert all(n.state == "running" for n in a.status().nodes)
        assert a.exec("gitlab", ["true"]).returncode == 0
    finally:
        a.down(purge=True)
    assert leftovers(a.path) == []
    assert leftovers(b.path) == []


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_apply_restarts_only_changed_nodes(lab_home: Path, sim_image: str) -> None:
    spec = resolve(SpecRequest(topology="scaled", flavor="sim"))
    with handle.up(spec, name=unique("apply"), timeout=180) as running:
        app_id = running.container("gitlab").id
        app_started = started_at(running, "gitlab")
        gitaly_started = started_at(running, "gitaly1")
        gitaly_pid = service_pid(running, "gitaly1", "gitaly")
        changed = resolve(SpecRequest(topology="scaled", flavor="sim", sets=(
            "nodes.gitaly1.internal_api_url=http://gitlab:80",)))
        assert running.apply(changed, timeout=180) == ["gitaly1"]
        assert running.last_actions is not None
        assert running.last_actions.describe() == ["gitaly1: reconfigure (changed: gitlab.rb)"]
        app = running.container("gitlab")
        assert app.id == app_id
        assert app.state.started_at == app_started
        # Reconfigured in place, as an admin would: the container kept running, and
        # Omnibus' reconfigure restarted the service whose config changed.
        assert started_at(running, "gitaly1") == gitaly_started
        assert service_pid(running, "gitaly1", "gitaly") != gitaly_pid
        assert "http://gitlab:80" in (running.path / "nodes/gitaly1/gitlab.rb").read_text()
        assert all(n.state == "running" for n in running.status().nodes)
        assert running.apply(changed) == []  # nothing changed: nothing restarted


def service_pid(running: handle.RunningLab, node: str, service: str) -> str:
    out = running.exec(node, ["gitlab-ctl", "status", service]).stdout
    match = re.search(r"\(pid (\d+)\)", out)
    assert match, out
    return match[1]


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_failed_reconfigure_in_place_keeps_the_services_running(lab_home: Path,
                                                                sim_image: str) -> None:
    spec = resolve(SpecRequest(topology="scaled", flavor="sim"))
    with handle.up(spec, name=unique("reconf-broken"), timeout=180) as running:
        pid = service_pid(running, "gitaly1", "gitaly")
        rb = running.path / "nodes" / "gitaly1" / "gitlab.rb"
        reclaim(running.path, running.rendered.image, running.labels)
        rb.write_text(rb.read_text() + "\ngitaly['configuration'] = {\n")
        res = running.exec("gitaly1", ["gitlab-ctl", "reconfigure"], check=False)
        assert res.returncode == 1
        assert "gitlab Reconfigure failed" in res.stdout
        # As Omnibus: a failed Chef run changes nothing that runs.
        assert service_pid(running, "gitaly1", "gitaly") == pid
    assert leftovers(running.path) == []


# --- failures -----------------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_broken_gitlab_rb_fails_fast_with_log_tail(lab_home: Path, sim_image: str) -> None:
    def corrupt(rendered: RenderedLab) -> None:
        rb = rendered.path / "nodes" / "gitaly1" / "gitlab.rb"
        rb.write_text(rb.read_text() + "\ngitaly['configuration'] = {\n")

    spec = resolve(SpecRequest(topology="scaled", flavor="sim"))
    name = unique("broken")
    started = time.monotonic()
    with pytest.raises(NotReady) as err:
        handle.up(spec, name=name, timeout=300, prepare=corrupt)
    assert time.monotonic() - started < 120  # not the 300 s timeout
    assert err.value.node == "gitaly1"
    assert "exited" in err.value.last_status
    assert "gitlab.rb" in err.value.log_tail
    assert leftovers(lab_home / "labs" / name) == []


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_killed_up_then_gc_leaves_nothing(lab_home: Path, sim_image: str) -> None:
    name = unique("killed")
    path = lab_home / "labs" / name
    proc = subprocess.Popen([*LAB_CMD, "up", "scaled", "--flavor", "sim", "--name", name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # A container, not just any resource: Compose makes the network first.
            if (path / layout.UP_MARKER).exists() and dk.containers({DIR_LABEL: str(path)}):
                break
            assert proc.poll() is None, "lab up ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("lab up never started any container")
    finally:
        # Kill the whole session we started (lab up and its Compose child), as a CI
        # runner killing the job would.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1)
    assert state.interrupted_up(path)
    assert [s.state for s in lab_gc.list_labs() if s.name == name] == ["interrupted"]
    dry = lab_cli("gc", "--dry-run")
    assert dry.returncode == 0
    assert name in dry.stdout
    assert leftovers(path)  # a dry run removes nothing
    assert state.interrupted_up(path)
    gc = lab_cli("gc")
    assert gc.returncode == 0, gc.stderr
    assert f"lab {name}: its `lab up` was killed" in gc.stdout
    assert leftovers(path) == []
    assert not state.interrupted_up(path)
    assert not path.exists()  # a new lab's folder: the start's own, gone with it


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_gc_sweeps_labs_whose_folder_is_gone(lab_home: Path, sim_image: str) -> None:
    spec = resolve(SpecRequest(topology="single", flavor="sim"))
    running = handle.up(spec, name=unique("orphan"), timeout=180)
    import shutil

    shutil.rmtree(running.path)
    removed = lab_gc.gc()
    # Other labs on this engine may be swept too; this one's lines must be there.
    mine = [r for r in removed if r.endswith(f" (lab {running.name}: lab directory gone)")]
    assert sorted({r.split()[0] for r in mine}) == ["container", "network", "volume"]
    assert leftovers(running.path) == []


# --- bad input ----------------------------------------------------------------------------

def test_docker_unreachable_is_a_clear_message(tmp_path: Path) -> None:
    res = lab_cli("up", "scaled", "--flavor", "sim",
                  env={"DOCKER_HOST": "unix:///nonexistent", "LAB_HOME": str(tmp_path)})
    assert res.returncode == 3
    assert "Docker is not reachable at unix:///nonexistent" in res.stderr
    assert "systemctl start docker" in res.stderr
    assert "DOCKER_HOST" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_lab_name(tmp_path: Path) -> None:
    env = {"LAB_HOME": str(tmp_path)}
    res = lab_cli("status", "nosuch", env=env)
    assert res.returncode == 2
    assert "no lab named 'nosuch'; labs: none — see `lab list`" in res.stderr
    assert lab_cli("down", env=env).returncode == 2
    assert "no labs; start one with `lab up scaled`" in lab_cli("down", env=env).stderr


@pytest.mark.docker
def test_port_in_use_fails_before_starting(lab_home: Path, engine: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        name = unique("port")
        res = lab_cli("up", "scaled", "--flavor", "sim", "--name", name,
                      "--set", f"nodes.gitlab.publish.http={port}")
    assert res.returncode == 2
    assert f"host port {port} on 127.0.0.1, published by node 'gitlab' (http)" in res.stderr
    assert "already in use" in res.stderr
    assert leftovers(lab_home / "labs" / name) == []


@pytest.mark.docker
def test_missing_omnibus_image_message(lab_home: Path, engine: None) -> None:
    # Not the newest release: test_omnibus_sim.py tags the sim as that one.
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="18.11.1"))
    image = omnibus_image(lab)
    if dk.image_present(image):
        pytest.skip(f"{image} is present here, so it is not missing")
    res = lab_cli("up", "scaled", "--flavor", "omnibus", "--version", "18.11.1",
                  "--name", unique("noimg"))
    assert res.returncode == 3
    assert f"docker pull {image}" in res.stderr
    assert "lab images load FILE.tar" in res.stderr
    assert "--flavor sim" in res.stderr


# --- omnibus ----------------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.omnibus
@pytest.mark.slow
def test_omnibus_scaled_up_and_down(lab_home: Path, engine: None) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus"))
    image = omnibus_image(lab)
    if not dk.image_present(image):
        pytest.skip(f"needs image {image} (not present locally)")
    with handle.up(lab, name=unique("omni"), timeout=1200) as running:
        # Ready by the toolkit's probes; Docker's own check may still be "starting".
        assert all(n.state == "running" for n in running.status().nodes)
        assert running.exec("gitlab", ["gitlab-rake", "gitlab:gitaly:check"]).returncode == 0
    assert leftovers(running.path) == []
