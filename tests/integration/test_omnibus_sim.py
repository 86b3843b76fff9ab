"""The Omnibus branch on the sim image tagged as an Omnibus release.

The sim copies what the real image does that the toolkit must cope with: the
wrapper starts `sshd` before reconfigure and omnibus-ctl prints
`gitlab Reconfigured!` after; reconfigure chowns /etc/gitlab to root unless
`manage_etc` is off, leaves root-owned ssh host keys and initial_root_password
there and rewrites gitlab-secrets.json with sections of its own; a failed
reconfigure ends the container; `gitlab:gitaly:check` exits 0 when it prints
FAIL. Each test here fails if the toolkit's answer to one of those goes away.
CI runs this file a second time as a non-root user (.ci/run), where ownership bites.

The tag is made here (``sim_as_omnibus``) and labelled as the sim: it is never
a GitLab image, and an image with that tag that is not the sim is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import conftest
import docker
import pytest
from conftest import skip_or_fail

from lab.engine import docker as dk
from lab.errors import NotReady
from lab.lifecycle import handle, layers, probes
from lab.model.topology import Lab, SecretsPolicy
from lab.omnibus.node import GITLAB_CTL, admin_token_cmd, gitaly_check_cmd, ran_ok, status_cmd
from lab.omnibus.sim_node import services_said
from lab.render.compose_file import omnibus_image
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import node_paths, write_lab

VERSION = "19.3.0"
SIM_AS = "io.gitlab-testlab.sim-as-omnibus"
pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]


def _omnibus_lab(name: str, topology: str = "scaled") -> Lab:
    lab = resolve(SpecRequest(topology=topology, flavor="omnibus", version=VERSION))
    return replace(lab, name=name)


@pytest.fixture(scope="module")
def sim_as_omnibus(pytestconfig: pytest.Config) -> Iterator[str]:
    """The sim image, tagged gitlab/gitlab-ce:<VERSION>-ce.0 and told its release (/RELEASE);
    the tag is removed afterwards (tests/conftest.py fails the session if it is left:
    `lab up --flavor omnibus` would later boot it, and a real pull would be skipped)."""
    try:
        dk.check_reachable()
    except Exception as exc:
        skip_or_fail(f"no reachable Docker Engine ({exc})")
    from lab.engine.images import build_images

    sim = build_images()
    tag = omnibus_image(_omnibus_lab("x"))
    if dk.image_present(tag):
        found = dk.image(tag)
        labels = found.labels if found is not None else {}
        if labels.get("io.gitlab-testlab.flavor") != "sim":
            skip_or_fail(f"{tag} here is not the sim (a real GitLab image?); not re-tagging it")
    with tempfile.TemporaryDirectory() as ctx:
        # RELEASE as the real image has it; the package name says what it really is.
        Path(ctx, "RELEASE").write_text(
            f"RELEASE_PACKAGE=gitlab-testlab-sim\nRELEASE_VERSION={VERSION}-ce.0\n")
        Path(ctx, "Dockerfile").write_text(
            f"FROM {sim}\nCOPY RELEASE /RELEASE\nLABEL {SIM_AS}={VERSION}\n")
        subprocess.run(["docker", "build", "-q", "-t", tag, ctx], check=True,
                       capture_output=True, timeout=300)
    pytestconfig.stash.setdefault(conftest.SIM_TAGS, []).append(tag)
    try:
        yield tag
    finally:
        found = dk.image(tag)
        if found is not None and found.labels.get(SIM_AS) == VERSION:
            subprocess.run(["docker", "rmi", tag], check=False, capture_output=True,
                           timeout=120)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("labhome")
    old = os.environ.get("LAB_HOME")
    os.environ["LAB_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LAB_HOME", None)
    else:
        os.environ["LAB_HOME"] = old


@pytest.fixture(scope="module")
def booted(sim_as_omnibus: str, lab_home: Path) -> Iterator[handle.RunningLab]:
    lab = _omnibus_lab(f"omsim-{uuid.uuid4().hex[:6]}")
    running = handle.up(lab)
    try:
        yield running
    finally:
        running.down(purge=True)


def _secrets(running: handle.RunningLab, node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((running.path / node_paths(node).secrets).read_text())
    return data


def test_rerender_after_boot_keeps_what_omnibus_wrote(booted: handle.RunningLab) -> None:
    app, gitaly = booted.path / "nodes" / "gitlab", booted.path / "nodes" / "gitaly1"
    # What the image wrote into /etc/gitlab: host keys on every node, the root password
    # file on the app (14.0+), and gitlab-secrets.json with sections of its own.
    keys = {p.name for p in gitaly.glob("ssh_host_*")}
    assert {"ssh_host_rsa_key", "ssh_host_ed25519_key.pub"} <= set(keys)
    assert (app / "initial_root_password").exists()
    before = _secrets(booted, "gitlab")
    written_back = before["gitlab_rails"]["active_record_encryption_primary_key"]
    assert before["gitlab_kas"]["api_secret_key"]
    # A scenario change re-renders the lab folder in place (the Gitaly node gets its
    # own secrets and comes back): as a non-root user that fails on a root-owned folder.
    changed = booted.apply(replace(booted.lab, nodes=tuple(
        replace(n, secrets=SecretsPolicy.OWN) if n.name == "gitaly1" else n
        for n in booted.lab.nodes)))
    assert changed == ["gitaly1"]
    booted.apply(_omnibus_lab(booted.name))
    after = _secrets(booted, "gitlab")
    # Merged, not overwritten: the next reconfigure must find its own keys again.
    assert after["gitlab_rails"]["active_record_encryption_primary_key"] == written_back
    assert after["gitlab_shell"] == before["gitlab_shell"]
    assert {p.name for p in gitaly.glob("ssh_host_*")} == keys
    # Nodes that share the file agree on the settings that must agree; the rest is theirs.
    shared = _secrets(booted, "gitaly1")
    assert shared["gitlab_shell"]["secret_token"] == after["gitlab_shell"]["secret_token"]
    assert shared["gitaly"]["gitlab_secret"] == after["gitaly"]["gitlab_secret"]


def test_the_sim_as_omnibus_is_said_in_every_report(booted: handle.RunningLab,
                                                    tmp_path: Path) -> None:
    # CI runs the sim under a GitLab tag on purpose; nothing may present it as GitLab.
    from lab.cli.lifecycle import format_ready
    from lab.cli.scenario import image_warnings
    from lab.scenario.load import parse_scenario
    from lab.scenario.plan import plan

    said = "is gitlab-testlab's sim image"
    assert said in format_ready(booted)  # lab up
    cli = [sys.executable, "-c", "from lab.cli.main import main; main()"]

    def lab(*args: str) -> str:
        proc = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=300,
                              check=False)
        return proc.stdout + proc.stderr

    assert said in lab("status", booted.name)
    assert json.loads(lab("status", booted.name, "--json"))["image_warning"].startswith(
        booted.rendered.image)
    doctor_out = lab("doctor", booted.name)
    assert said in doctor_out, doctor_out
    bundle = tmp_path / "b.tar.gz"
    lab("collect", booted.name, "-o", str(bundle))
    with tarfile.open(bundle) as tar:
        summary = next(m for m in tar.getmembers() if m.name.endswith("SUMMARY.md"))
        extracted = tar.extractfile(summary)
        assert extracted is not None
        assert "**Not GitLab:**" in extracted.read().decode()
    sc = parse_scenario("lab: {topology: scaled}\nsteps:\n  - api: /api/v4/user\n", "x.yaml")
    warnings = image_warnings(plan([sc], flavor="omnibus", versions=(VERSION,)))
    assert len(warnings) == 1
    assert said in warnings[0]


def test_stop_timeout_lets_postgresql_stop(booted: handle.RunningLab) -> None:
    # The stop timeout is no part of the toolkit's snapshot: ask docker-py itself.
    app = docker.from_env().api.inspect_container(booted.container("gitlab").id)
    assert app["Config"]["StopTimeout"] == 120


def test_gitaly_check_fail_with_exit_0_is_not_ready(booted: handle.RunningLab) -> None:
    booted.act("gitaly1", "stop")
    try:
        res = booted.exec("gitlab", gitaly_check_cmd(), check=False, timeout=120)
        assert res.returncode == 0  # as the real task: FAIL printed, exit 0
        assert "FAIL" in res.stdout
        verdict = layers.LabProbes(booted).gitaly_from_app()
        assert not verdict.ok
        assert "default:" in verdict.detail
    finally:
        booted.act("gitaly1", "start")
        booted.wait_ready(docker_health=False)


def test_token_creation_runs_twice(booted: handle.RunningLab) -> None:
    # A failed token check followed by a second runner call must not insert the token
    # again (the digest's unique index: PG::UniqueViolation).
    for _ in range(2):
        res = booted.exec("gitlab", admin_token_cmd(booted.admin_token), check=False,
                          timeout=120)
        assert ran_ok(res), res.stderr or res.stdout


def test_purge_removes_a_booted_lab_folder(sim_as_omnibus: str, lab_home: Path) -> None:
    running = handle.up(_omnibus_lab(f"omsim-{uuid.uuid4().hex[:6]}", "single"))
    assert (running.path / "nodes" / "gitlab" / "ssh_host_rsa_key").exists()
    running.down(purge=True)
    assert not running.path.exists()


def test_failed_reconfigure_ends_the_container(sim_as_omnibus: str, lab_home: Path) -> None:
    def broken(rendered: Any) -> None:
        rb = rendered.path / node_paths("gitlab").gitlab_rb
        rb.write_text(rb.read_text() + "\ngitlab_rails['x'] = \n")

    with pytest.raises(NotReady) as err:
        handle.up(_omnibus_lab(f"omsim-{uuid.uuid4().hex[:6]}", "single"), prepare=broken,
                     timeout=120)
    assert err.value.last_status.startswith(
        "container exited during `gitlab-ctl reconfigure` with code 1")
    assert "gitlab Reconfigure failed" in err.value.log_tail


def test_a_sim_node_logs_its_services_up_for_readiness_to_read_without_an_exec(
        sim_as_omnibus: str, tmp_path: Path) -> None:
    lab = _omnibus_lab(f"omsim-{uuid.uuid4().hex[:6]}", "scaled")
    rendered = write_lab(lab, tmp_path / "lab", image=sim_as_omnibus)
    c = docker.from_env().containers.run(
        sim_as_omnibus, detach=True, labels={"io.gitlab-testlab.lab": lab.name},
        volumes={str(rendered.path / "nodes" / "gitaly1"): {"bind": "/etc/gitlab",
                                                            "mode": "rw"}})
    try:
        calls: list[list[str]] = []

        def exec_fn(cmd: list[str], timeout: float | None) -> Any:
            calls.append(cmd)
            return dk.exec_in(c.id, cmd, check=False, timeout=timeout)

        def read_log(since: str | None) -> str:
            return dk.logs(c.id, tail=None, timestamps=True)

        def said() -> frozenset[str] | None:
            return services_said(read_log(None))

        def probe() -> probes.ServicesProbe:
            return probes.ServicesProbe("gitaly1", exec_fn, read_log, ("gitaly",),
                                        up_lines=True)

        waiting = probe()
        deadline = time.monotonic() + 60
        while not (st := waiting()).ok and time.monotonic() < deadline:
            time.sleep(0.1)
        assert st.ok, st.detail
        assert said() == {"gitaly", "sshd"}
        calls.clear()
        assert probe()() == probes.Verdict(True, "services up")  # first look: no exec
        assert calls == []
        # `gitlab-ctl stop gitaly`: PID 1 says the services changed, then what still runs.
        dk.exec_in(c.id, [GITLAB_CTL, "stop", "gitaly"])
        assert "gitaly" not in (said() or set())
        assert not probe()().ok
        dk.exec_in(c.id, [GITLAB_CTL, "start", "gitaly"])  # returns once it is up again
        deadline = time.monotonic() + 10
        while "gitaly" not in (said() or set()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert said() == {"gitaly", "sshd"}
        assert "wrapper: services changing" in read_log(None)
    finally:
        c.remove(force=True, v=True)


def test_services_probe_waits_for_reconfigure(sim_as_omnibus: str, tmp_path: Path) -> None:
    lab = _omnibus_lab(f"omsim-{uuid.uuid4().hex[:6]}", "scaled")
    rendered = write_lab(lab, tmp_path / "lab", image=sim_as_omnibus)
    c = docker.from_env().containers.run(
        sim_as_omnibus, detach=True, labels={"io.gitlab-testlab.lab": lab.name},
        environment={"GITLAB_SIM_RECONFIGURE_SECONDS": "6"},
        volumes={str(rendered.path / "nodes" / "gitaly1"): {"bind": "/etc/gitlab",
                                                            "mode": "rw"}})
    try:
        def exec_fn(cmd: list[str], timeout: float | None) -> Any:
            return dk.exec_in(c.id, cmd, check=False, timeout=timeout)

        def read_log(since: str | None) -> str:
            return dk.logs(c.id, tail=None, timestamps=True)

        probe = probes.ServicesProbe("gitaly1", exec_fn, read_log, ("gitaly",))
        deadline = time.monotonic() + 5
        status = exec_fn(status_cmd(), 30)
        while "run: sshd" not in status.stdout and time.monotonic() < deadline:
            status = exec_fn(status_cmd(), 30)
        # The window the old probe called "up": status exits 0 listing sshd, and
        # `status gitaly` exits 0 saying nothing.
        assert status.returncode == 0
        assert "run: sshd" in status.stdout
        assert exec_fn(status_cmd("gitaly"), 30).returncode == 0
        assert probe().detail == "reconfigure running"
        deadline = time.monotonic() + 60
        while not (st := probe()).ok and time.monotonic() < deadline:
            time.sleep(0.5)
        assert st.ok, st.detail
        assert "gitlab Reconfigured!" in dk.logs(c.id, tail=None)
    finally:
        c.remove(force=True, v=True)  # v: its anonymous /var/opt/gitlab and /var/log/gitlab too
