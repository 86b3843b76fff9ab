"""The swarm engine's pure parts: the stack file, the files as secrets and configs, the spec."""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

import click
import pytest
import yaml
from conftest import fixed_secrets

from lab.cli.common import engine_sets
from lab.errors import SpecError
from lab.lifecycle.swarm import stack_files
from lab.model.labels import FILE_LABEL, LAB_LABEL, NODE_LABEL
from lab.model.topology import Engine, Lab, SwarmOptions
from lab.render.compose_file import ETC_GITLAB
from lab.render.stack import (
    INSTALL_ETC,
    MAX_OBJECT_NAME,
    STAGE,
    object_name,
    placement,
    render_stack,
    stack_dict,
)
from lab.spec.labspec import SpecRequest, resolve, resolved_spec
from lab.store.labdir import render_files

IMAGE = "gitlab-testlab/sim:test"
CMD = ["/assets/wrapper"]


def swarm_lab(*sets: str, topology: str = "scaled") -> Lab:
    return resolve(SpecRequest(topology=topology, engine="swarm", sets=sets))


def stack(lab: Lab, lab_dir: str = "/labs/x") -> dict[str, Any]:
    files = stack_files(render_files(lab, fixed_secrets(lab), IMAGE, lab_dir))
    return stack_dict(lab, IMAGE, lab_dir, files, CMD)


def test_node_files_travel_as_secrets_and_configs_not_bind_mounts() -> None:
    data = stack(swarm_lab("tls=true"))
    gitaly = data["services"]["gitaly1"]
    mounts = [v for v in gitaly["volumes"] if isinstance(v, str)]
    assert not any(v.startswith(("./", "/")) for v in mounts)  # no bind mount at all
    assert "gitaly1-config:/etc/gitlab" in mounts
    secrets = {r["target"]: r for r in gitaly["secrets"]}
    configs = {r["target"]: r for r in gitaly["configs"]}
    assert set(secrets) == {f"{STAGE}/gitlab.rb", f"{STAGE}/gitlab-secrets.json",
                            f"{STAGE}/ssl/gitaly1.key"}
    assert set(configs) == {f"{STAGE}/trusted-certs/lab-ca.crt", f"{STAGE}/ssl/gitaly1.crt"}
    assert secrets[f"{STAGE}/gitlab-secrets.json"]["mode"] == 0o600
    assert secrets[f"{STAGE}/gitlab.rb"]["mode"] == 0o600
    # The top-level objects read the lab folder's files and name their target.
    obj = data["secrets"][secrets[f"{STAGE}/gitlab-secrets.json"]["source"]]
    assert obj["file"] == "./nodes/gitaly1/gitlab-secrets.json"
    assert obj["labels"][FILE_LABEL] == f"{ETC_GITLAB}/gitlab-secrets.json"
    assert obj["labels"][LAB_LABEL] == "scaled"
    assert obj["labels"][NODE_LABEL] == "gitaly1"


def test_the_entry_point_installs_the_files_then_runs_the_image_command() -> None:
    svc = stack(swarm_lab())["services"]["gitlab"]
    assert svc["entrypoint"][:3] == ["/bin/sh", "-c", INSTALL_ETC]
    assert svc["command"] == CMD
    assert 'exec "$@"' in INSTALL_ETC


def test_install_script_copies_changes_and_deletes_what_is_no_longer_handed_over(
        tmp_path: Any) -> None:
    stage, etc = tmp_path / "stage", tmp_path / "etc"
    script = INSTALL_ETC.replace(STAGE, str(stage)).replace(f"etc={ETC_GITLAB}", f"etc={etc}")
    stage.mkdir()
    (stage / "ssl").mkdir()
    (stage / "gitlab-secrets.json").write_text("v1")
    (stage / "gitlab-secrets.json").chmod(0o600)
    (stage / "ssl" / "k.key").write_text("key")

    def boot() -> None:
        subprocess.run(["sh", "-c", script, "install", "true"], check=True)

    boot()
    assert (etc / "gitlab-secrets.json").read_text() == "v1"
    assert (etc / "gitlab-secrets.json").stat().st_mode & 0o777 == 0o600
    assert (etc / "ssl" / "k.key").read_text() == "key"
    # What the node wrote itself stays while the lab hands over the same file...
    (etc / "gitlab-secrets.json").write_text("v1 + what reconfigure added")
    boot()
    assert (etc / "gitlab-secrets.json").read_text() == "v1 + what reconfigure added"
    # ...a new version replaces it, and a file no longer handed over goes.
    (stage / "gitlab-secrets.json").write_text("v2")
    (stage / "ssl" / "k.key").unlink()
    boot()
    assert (etc / "gitlab-secrets.json").read_text() == "v2"
    assert not (etc / "ssl" / "k.key").exists()


def test_nothing_is_published_by_swarm_unless_asked() -> None:
    assert "ports" not in stack(swarm_lab())["services"]["gitlab"]
    published = stack(swarm_lab("swarm.publish=true", "nodes.gitlab.publish.http=8080"))
    assert published["services"]["gitlab"]["ports"] == [
        {"target": 80, "protocol": "tcp", "mode": "host", "published": 8080}]
    assert "ports" not in published["services"]["gitaly1"]


def test_network_is_an_attachable_overlay_encrypted_on_request() -> None:
    net = stack(swarm_lab())["networks"]["lab"]
    assert net["driver"] == "overlay"
    assert net["attachable"] is True
    assert "driver_opts" not in net
    enc = stack(swarm_lab("swarm.encrypt=true"))["networks"]["lab"]
    assert enc["driver_opts"] == {"encrypted": ""}


def test_placement_pins_a_node_by_host_name_or_node_label() -> None:
    assert placement("worker2") == "node.hostname==worker2"
    assert placement("gitaly=yes") == "node.labels.gitaly==yes"
    data = stack(swarm_lab("nodes.gitaly1.place=worker2"))
    assert data["services"]["gitaly1"]["deploy"]["placement"] == {
        "constraints": ["node.hostname==worker2"]}
    assert "placement" not in data["services"]["gitlab"]["deploy"]


def test_services_never_restart_by_themselves_and_carry_the_lab_labels() -> None:
    data = stack(swarm_lab())
    for name, svc in data["services"].items():
        assert svc["deploy"]["restart_policy"] == {"condition": "none"}
        assert svc["deploy"]["labels"][NODE_LABEL] == name
        assert svc["labels"][LAB_LABEL] == "scaled"
        assert "restart" not in svc
    for vol in ("gitlab-config", "gitaly1-config", "gitaly1-data"):
        assert data["volumes"][vol]["labels"][LAB_LABEL] == "scaled"


def test_object_names_fit_swarm_and_change_with_the_content() -> None:
    a = object_name("glt-" + "x" * 40, "n" * 40, "trusted-certs/lab-ca.crt", "one")
    b = object_name("glt-" + "x" * 40, "n" * 40, "trusted-certs/lab-ca.crt", "two")
    assert len(a) <= MAX_OBJECT_NAME
    assert a != b
    assert object_name("glt-s", "gitaly1", "gitlab.rb", "x").startswith("glt-s-gitaly1-gitlab.rb-")


def test_render_stack_doubles_dollars_for_the_cli() -> None:
    lab = swarm_lab("nodes.gitlab.omnibus_config='x = \"$HOME\"'")
    files = stack_files(render_files(lab, fixed_secrets(lab), IMAGE, "/labs/x"))
    text = render_stack(lab, IMAGE, "/labs/x", files, CMD)
    env = yaml.safe_load(text)["services"]["gitlab"]["environment"]
    assert env["GITLAB_OMNIBUS_CONFIG"] == 'x = "$$HOME"'
    assert "docker stack deploy --resolve-image never" in text


def test_spec_engine_and_swarm_keys_round_trip() -> None:
    lab = swarm_lab("nodes.gitaly1.place=zone=b", "swarm.encrypt=true")
    assert lab.engine is Engine.SWARM
    assert lab.swarm == SwarmOptions(encrypt=True)
    assert lab.node("gitaly1").place == "zone=b"
    spec = resolved_spec(lab)
    assert spec["engine"] == "swarm"
    assert spec["nodes"]["gitaly1"]["place"] == "zone=b"
    # A Compose lab's spec says nothing of engines (the manifests stay as they were).
    plain = resolved_spec(resolve(SpecRequest(topology="scaled")))
    assert "engine" not in plain
    assert "swarm" not in plain


@pytest.mark.parametrize(("sets", "key"), [
    (("nodes.gitaly1.place=worker2",), "nodes.gitaly1.place"),
    (("swarm.publish=true",), "swarm: swarm options"),
])
def test_swarm_settings_on_compose_are_refused_naming_the_key(sets: tuple[str, ...],
                                                                 key: str) -> None:
    with pytest.raises(SpecError, match=f"{key}.*need.? engine: swarm"):
        resolve(SpecRequest(topology="scaled", sets=sets))


def test_a_place_that_is_neither_host_nor_label_is_refused() -> None:
    with pytest.raises(SpecError, match=r"nodes\.gitaly1\.place.*neither"):
        swarm_lab("nodes.gitaly1.place='a b'")


def test_cli_swarm_options_become_spec_keys() -> None:
    assert engine_sets(("gitaly1=zone=b",), True, True) == (
        'nodes.gitaly1.place="zone=b"', "swarm.publish=true", "swarm.encrypt=true")
    with pytest.raises(click.BadParameter, match="NODE=WHERE"):
        engine_sets(("gitaly1",), False, False)


class FakeSwarm:
    """What SwarmLab asks of lab.engine.swarm, recorded: services by node, scale, update."""

    def __init__(self, nodes: list[str]) -> None:
        from lab.engine.swarm import Service

        self.services = {n: Service(f"id-{n}", f"glt-x_{n}", {NODE_LABEL: n}) for n in nodes}
        self.calls: list[tuple[str, str, int | None]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from lab.engine import swarm as sw

        monkeypatch.setattr(sw, "services", lambda labels: list(self.services.values()))
        monkeypatch.setattr(sw, "scale", lambda svc, n: self.calls.append(("scale", svc.name, n)))
        monkeypatch.setattr(sw, "force_update",
                            lambda svc: self.calls.append(("update", svc.name, None)))
        monkeypatch.setattr(sw, "tasks", lambda svc: [])


def swarm_handle(tmp_path: Any) -> Any:
    from lab.lifecycle.swarm import SwarmLab
    from lab.store.labdir import write_lab

    return SwarmLab(write_lab(swarm_lab(), tmp_path / "x", image=IMAGE))


def test_faults_map_to_swarm_and_a_gitaly_nodes_new_task_renews_the_app(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.engine import swarm as sw

    fake = FakeSwarm(["gitlab", "gitaly1"])
    fake.install(monkeypatch)
    lab = swarm_handle(tmp_path)
    lab.act("gitaly1", "stop")
    assert fake.calls == [("scale", "glt-x_gitaly1", 0)]
    fake.calls.clear()
    # Started again, Gitaly has a new address: the app's kept channels would miss it.
    # Swarm lists the new task once it took the scale-up.
    monkeypatch.setattr(sw, "tasks", lambda svc: [running_task("new")] if fake.calls else [])
    lab.act("gitaly1", "start")
    assert fake.calls == [("scale", "glt-x_gitaly1", 1), ("update", "glt-x_gitlab", None)]
    fake.calls.clear()
    lab.act("gitlab", "restart")  # nobody dials the app
    assert fake.calls == [("update", "glt-x_gitlab", None)]


def test_swarm_engine_needs_a_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.engine import swarm as sw
    from lab.errors import EngineUnusable
    from lab.lifecycle.swarm import SwarmLab

    monkeypatch.setattr(sw, "_call", lambda what, fn, *a, **k: {"Swarm": {
        "LocalNodeState": "inactive"}})
    with pytest.raises(EngineUnusable, match=r"docker swarm init --advertise-addr 127\.0\.0\.1"):
        SwarmLab.check_engine()


def test_network_removal_is_retried_only_while_the_engine_refuses() -> None:
    from lab.errors import DockerUnavailable, EngineError
    from lab.lifecycle import swarm_sweep

    clock = [0.0]
    calls: list[int] = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def busy() -> None:  # "has active endpoints" for half a second, then gone
        calls.append(1)
        if clock[0] < 0.5:
            raise EngineError(["network", "rm", "x"], 1, "has active endpoints")

    swarm_sweep.settle(busy, sleep=sleep, now=lambda: clock[0])
    assert len(calls) > 1

    def always_busy() -> None:
        raise EngineError(["network", "rm", "x"], 1, "has active endpoints")

    clock[0] = 0.0
    with pytest.raises(EngineError):
        swarm_sweep.settle(always_busy, sleep=sleep, now=lambda: clock[0])
    assert clock[0] >= swarm_sweep.SETTLE_SECONDS

    for fault in (DockerUnavailable("docker is not running"), TypeError("a bug")):
        clock[0] = 0.0

        def broken(exc: Exception = fault) -> None:
            raise exc

        with pytest.raises(type(fault)):
            swarm_sweep.settle(broken, sleep=sleep, now=lambda: clock[0])
        assert clock[0] == 0.0  # raised at once, not after the settle time


def test_a_swarm_sweep_removes_volumes_only_once_late_task_containers_are_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CI, swarm stage: a task Swarm was still stopping after a node's scale-down was not
    in the first container listing, and `volume rm` met "volume is in use"."""
    from types import SimpleNamespace

    from lab.errors import EngineError
    from lab.lifecycle import gc, swarm_sweep

    labels = {LAB_LABEL: "x"}
    live: dict[str, list[str]] = {"container": ["gitaly2.1"], "network": [],
                                  "volume": ["x_gitaly2-config"]}
    late = ["gitaly2.2"]  # listed only from the second look on
    order: list[str] = []

    def lister(kind: str) -> Any:
        def listing(_labels: dict[str, str]) -> list[Any]:
            return [SimpleNamespace(name=n, labels=labels) for n in live[kind]]
        return listing

    def remove_container(c: Any) -> None:
        live["container"].remove(c.name)
        order.append(f"rm {c.name}")
        live["container"] += late
        late.clear()

    def remove_volume(v: Any) -> None:
        if live["container"]:
            raise EngineError(["volume", "rm", v.name], 1, "volume is in use")
        live["volume"].remove(v.name)
        order.append(f"rm {v.name}")

    for kind in live:
        monkeypatch.setattr(gc.dk, f"{kind}s", lister(kind))
    monkeypatch.setattr(gc.dk, "remove_container", remove_container)
    monkeypatch.setattr(gc.dk, "remove_volume", remove_volume)
    monkeypatch.setattr(swarm_sweep, "managed", lambda: True)
    monkeypatch.setattr(swarm_sweep, "remove_services", lambda labels, dry_run: [])
    monkeypatch.setattr(swarm_sweep, "remove_objects", lambda labels, dry_run: [])
    monkeypatch.setattr(swarm_sweep, "SETTLE_STEP", 0.0)  # settle bound time.sleep at def

    removed = gc.sweep(labels)
    assert order == ["rm gitaly2.1", "rm gitaly2.2", "rm x_gitaly2-config"]
    assert "container gitaly2.2" in removed
    assert live == {"container": [], "network": [], "volume": []}


@pytest.mark.parametrize(("status", "fix"), [("exited", "docker service scale glt-x_gitaly1=1"),
                                             ("created", "docker service scale glt-x_gitaly1=1"),
                                             ("paused", "docker unpause glt-x-gitaly1")])
def test_exec_in_a_stopped_swarm_node_says_to_scale_its_service(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, status: str, fix: str) -> None:
    """`docker start` on an ended task's container runs a container Swarm no longer
    manages; the node comes back by scaling its service (the `start` fault's way)."""
    from click.testing import CliRunner

    from lab.cli import lifecycle as cli_lifecycle
    from lab.cli.main import cli
    from lab.engine.snapshots import Container, ContainerState
    from lab.errors import BadInput

    FakeSwarm(["gitlab", "gitaly1"]).install(monkeypatch)
    lab = swarm_handle(tmp_path)
    ended = Container("abc", "glt-x-gitaly1", "sim:test", ContainerState(status, 0, ""))
    monkeypatch.setattr(type(lab), "container", lambda self, node: ended)
    monkeypatch.setattr(cli_lifecycle.handle, "attach", lambda name: lab)
    res = CliRunner().invoke(cli, ["exec", "gitaly1", "--lab", "x", "--", "true"])
    assert isinstance(res.exception, BadInput), res.exception
    assert f"run `{fix}` first" in str(res.exception)
    assert "docker start" not in str(res.exception)


def test_a_swarm_node_scaled_to_zero_without_a_container_says_how_to_start_it(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.engine import swarm as sw
    from lab.errors import BadInput

    fake = FakeSwarm(["gitlab", "gitaly1"])
    fake.services["gitaly1"] = dataclasses.replace(fake.services["gitaly1"], replicas=0)
    fake.install(monkeypatch)
    monkeypatch.setattr(sw, "current_task", lambda svc, stale=(): None)
    lab = swarm_handle(tmp_path)
    with pytest.raises(BadInput, match=r"is stopped \(its service is scaled to 0\); run "
                       r"`docker service scale glt-x_gitaly1=1` first"):
        lab.container("gitaly1")


def running_task(task_id: str) -> Any:
    from lab.engine.swarm import Task

    return Task(task_id, "manager", "running", "running", "", "", "2026-01-01T00:00:01Z")


def test_a_scaled_up_service_that_gets_no_task_is_updated_by_force(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI: gitaly2 scaled 0 -> 1 had no task for 300 s (Swarm counting the slot's ended task
    as its replica, moby/moby#35080). After a few seconds without one, a forced update."""
    from lab.engine import swarm as sw
    from lab.lifecycle.readiness import Clock
    from lab.lifecycle.swarm import NEW_TASK_WAIT

    fake = FakeSwarm(["gitlab", "gitaly1"])
    fake.install(monkeypatch)
    monkeypatch.setattr(sw, "tasks", lambda svc: [ended_task("old")])
    now = [0.0]
    lab = swarm_handle(tmp_path)
    lab.clock = Clock(now=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    lab.act("gitaly1", "start")
    assert fake.calls == [("scale", "glt-x_gitaly1", 1), ("update", "glt-x_gitaly1", None),
                          ("update", "glt-x_gitlab", None)]
    assert now[0] >= NEW_TASK_WAIT


def ended_task(task_id: str) -> Any:
    from lab.engine.swarm import Task

    return Task(task_id, "manager", "shutdown", "complete", "", f"c-{task_id}",
                "2026-01-01T00:00:00Z", 0)


def test_a_started_nodes_old_ended_task_is_never_taken_for_its_new_one(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swarm lists a scale-up's new task a moment after it answers, and keeps ended tasks
    in its history: until the new one shows, readiness waits instead of reporting the old
    container's exit (CI: 'node gitaly2 is not ready: container exited with code 0')."""
    from lab.engine import swarm as sw
    from lab.errors import NotReady
    from lab.lifecycle.handle import UNLISTED_SECONDS
    from lab.lifecycle.readiness import Clock

    fake = FakeSwarm(["gitlab", "gitaly1"])
    fake.install(monkeypatch)
    listed = {"id-gitaly1": [ended_task("old")], "id-gitlab": []}
    monkeypatch.setattr(sw, "tasks", lambda svc: listed[svc.id])
    monkeypatch.setattr(sw, "manager", lambda: sw.Manager("manager", "host"))
    now = [0.0]
    lab = swarm_handle(tmp_path)
    lab.clock = Clock(now=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert sw.current_task(fake.services["gitaly1"]) == ended_task("old")
    assert sw.current_task(fake.services["gitaly1"], {"old"}) is None

    lab.act("gitaly1", "start")
    monkeypatch.setattr(lab, "_check_alive", lambda node, c: None)
    for t in (0.0, UNLISTED_SECONDS * 10):
        now[0] = t
        # gitaly1 waits for its new task; the app, renewed too (it dials gitaly1), as well
        lab._watch()
    assert lab._tasks == {}

    # A service with no task that nobody asked for is gone: reported once it stays so.
    del lab._stale["gitlab"]
    now[0] = 100.0
    lab._unlisted.clear()
    lab._watch()
    now[0] += UNLISTED_SECONDS
    with pytest.raises(NotReady, match=r"node 'gitlab' .*its service has no task"):
        lab._watch()


def test_a_swarm_cluster_makes_praefects_database_before_it_waits_for_tasks(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swarm counts a task with a healthcheck running only once it passed one, and Praefect
    passes only once it serves, after its database and schema are there: waiting for the
    tasks first would wait for ever."""
    from lab.engine import host
    from lab.lifecycle.swarm import SwarmLab
    from lab.store.labdir import write_lab

    monkeypatch.setattr(host, "containers_routable", lambda: False)
    lab = SwarmLab(write_lab(swarm_lab(topology="cluster"), tmp_path / "x", image=IMAGE))
    names = [layer.name for layer in lab.layers()]
    assert names[:3] == ["praefect database", "praefect migrated", "tasks running"]
    assert len(names) == len(set(names))
