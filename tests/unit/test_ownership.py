"""One owner per lab on a shared engine: ids as labels, refusals before anything is touched.

A fake engine holds labelled resources; the real lifecycle code asks it, so these
tests need no Docker.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.engine.compose import V2, Compose, ComposeTool
from lab.errors import Incomplete, LabAlreadyUp, LabBusy, LabOwnedElsewhere
from lab.lifecycle import gc as lab_gc
from lab.lifecycle import handle
from lab.render.compose_file import DIR_LABEL, HOME_LABEL, ID_LABEL, LAB_LABEL
from lab.scenario.pool import group_name
from lab.spec.labspec import SpecRequest, resolve
from lab.store import lab_folder, ownership, state
from lab.store.ownership import lab_owner


@dataclass
class Res:
    kind: str
    name: str
    labels: dict[str, str]
    status: str = "running"
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attrs = {"Labels": self.labels}


# The real wait, before the fixture replaces it.
WAIT_READY = handle.RunningLab.wait_ready


class FakeEngine:
    def __init__(self) -> None:
        self.resources: list[Res] = []
        self.removed: list[str] = []
        self.compose_calls: list[list[str]] = []

    def add(self, name: str, labels: dict[str, str]) -> None:
        for kind in ("container", "network", "volume"):
            self.resources.append(Res(kind, f"{name}-{kind}", dict(labels)))

    def lister(self, kind: str) -> Any:
        def listing(labels: dict[str, str]) -> list[Res]:
            return [r for r in self.resources if r.kind == kind and all(
                k in r.labels and (not v or r.labels[k] == v) for k, v in labels.items())]
        return listing

    def remover(self, res: Res) -> None:
        self.resources.remove(res)
        self.removed.append(res.name)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(handle.dk, "check_reachable", lambda: None)
    monkeypatch.setattr(handle, "detect", lambda: ComposeTool(V2, "2.29.1"))
    for kind in ("container", "network", "volume"):
        monkeypatch.setattr(handle.dk, f"{kind}s", fake.lister(kind))
        monkeypatch.setattr(handle.dk, f"remove_{kind}", fake.remover)
    monkeypatch.setattr(handle, "ensure_image", lambda lab, image, progress=None: None)
    monkeypatch.setattr(handle, "check_ports", lambda lab: None)
    monkeypatch.setattr(Compose, "run", lambda self, cmd, **kw: fake.compose_calls.append(cmd))
    monkeypatch.setattr(handle.RunningLab, "wait_ready", lambda self, **kw: None)
    return fake


def scaled() -> Any:
    return resolve(SpecRequest(topology="scaled", flavor="sim"))


def test_up_of_a_name_owned_by_another_folder_touches_nothing(engine: FakeEngine) -> None:
    engine.add("theirs", {LAB_LABEL: "same", DIR_LABEL: "/home/bob/labs/same",
                          ID_LABEL: "0123456789abcdef", HOME_LABEL: "fedcba9876543210"})
    with pytest.raises(LabOwnedElsewhere, match="/home/bob/labs/same"):
        handle.up(scaled(), name="same")
    assert engine.compose_calls == []
    assert engine.removed == []
    assert not state.lab_dir("same").exists()  # not even rendered


def test_same_path_but_another_id_is_another_owner(engine: FakeEngine) -> None:
    """Two containers sharing one engine may both use /root/.local/state: ids tell them apart."""
    path = state.lab_dir("same")
    engine.add("theirs", {LAB_LABEL: "same", DIR_LABEL: str(path),
                          ID_LABEL: "0123456789abcdef", HOME_LABEL: "fedcba9876543210"})
    with pytest.raises(LabOwnedElsewhere):
        handle.up(scaled(), name="same")
    assert engine.removed == []


def test_own_lab_carries_its_ids_and_down_removes_only_its_own(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="mine")
    owner = lab_owner(running.path)
    assert owner[ID_LABEL]
    assert owner[HOME_LABEL] == ownership.home_id(create=False)
    assert running.labels[ID_LABEL] == owner[ID_LABEL]
    assert f"{ID_LABEL}: {owner[ID_LABEL]}" in (running.path / "docker-compose.yml").read_text()
    engine.add("ours", running.labels)
    # Another folder's lab of the same name, started later elsewhere.
    engine.add("theirs", {LAB_LABEL: "mine", DIR_LABEL: "/elsewhere/mine",
                          ID_LABEL: "0123456789abcdef"})
    engine.compose_calls.clear()
    handle.attach("mine").down()
    assert sorted(engine.removed) == ["ours-container", "ours-network", "ours-volume"]
    # Compose acts on the project name alone, which would take the other lab too.
    assert engine.compose_calls == []


def test_gc_sweeps_only_its_own_state_folder_unless_all(engine: FakeEngine,
                                                        tmp_path: Path) -> None:
    home = ownership.home_id()
    assert home is not None
    gone = str(state.labs_dir() / "gone")
    engine.add("ours", {LAB_LABEL: "gone", DIR_LABEL: gone, ID_LABEL: "1" * 16,
                        HOME_LABEL: home})
    # Another user's lab whose folder does not exist in *our* mount namespace.
    engine.add("theirs", {LAB_LABEL: "x", DIR_LABEL: "/not/here/x", ID_LABEL: "2" * 16,
                          HOME_LABEL: "3" * 16})
    removed = lab_gc.gc()
    assert {r.split()[1] for r in removed} == {"ours-container", "ours-network", "ours-volume"}
    assert all(r.name.startswith("theirs") for r in engine.resources)
    assert len(lab_gc.gc(all_folders=True)) == 3
    assert engine.resources == []


def test_a_copied_state_folder_keeps_its_labs(engine: FakeEngine, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    running = handle.up(scaled(), name="moved")
    engine.add("old", running.labels)  # labelled with the old folder's path
    shutil.copytree(tmp_path / "home", tmp_path / "copy", symlinks=True)
    shutil.rmtree(tmp_path / "home")
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "copy"))
    assert lab_gc.gc() == []  # the same lab id lives on in the copy
    handle.attach("moved").down()  # the copy still owns the lab and removes it
    assert sorted(engine.removed) == ["old-container", "old-network", "old-volume"]


def test_second_start_of_a_name_says_one_is_in_progress(engine: FakeEngine,
                                                        tmp_path: Path) -> None:
    holder = state.StartLock("busy")
    assert holder.acquire(wait=False)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from lab.lifecycle import gc as lab_gc; import sys\n"
             "from lab.errors import LabBusy\n"
             "try:\n    lab_gc.check_not_in_use('busy')\n"
             "except LabBusy as e:\n    print(e)"],
            capture_output=True, text=True, timeout=60, check=True)
        assert "in use by `lab up`" in proc.stdout
        assert f"PID {__import__('os').getpid()}" in proc.stdout
    finally:
        holder.release()
    lab_gc.check_not_in_use("busy")  # free again


def test_up_refuses_while_another_start_holds_the_name(engine: FakeEngine) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; from lab.store.state import StartLock; "
         "assert StartLock('x').acquire(wait=False); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(LabBusy, match=f"in progress \\(PID {other.pid}\\)"):
            handle.up(scaled(), name="x")
    finally:
        other.kill()
        other.wait()
    assert engine.compose_calls == []


def test_down_refuses_a_lab_a_run_holds(engine: FakeEngine) -> None:
    handle.up(scaled(), name="held")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; from lab.store.state import LabClaim; "
         "assert LabClaim('held').acquire(wait=False); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LabBusy, match=f"`lab run` \\(PID {proc.pid}\\)"):
            lab_gc.check_not_in_use("held")
    finally:
        proc.kill()
        proc.wait()
    lab_gc.check_not_in_use("held")


def test_scenario_lab_names_differ_per_state_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lab = scaled()
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "a"))
    a, a_again = group_name(lab), group_name(lab)
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "b"))
    assert a == a_again != group_name(lab)
    assert a.startswith("sc-scaled-sim-")


def test_purge_that_cannot_delete_says_so(engine: FakeEngine,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    running = handle.up(scaled(), name="stuck")

    def refuse(path: Any, onerror: Any) -> None:
        onerror(None, str(path / "nodes"), (PermissionError, PermissionError(13, "denied"), None))

    monkeypatch.setattr(lab_folder.shutil, "rmtree", refuse)
    with pytest.raises(Incomplete, match=r"could not be deleted: .*denied"):
        running.down(purge=True)


def test_gc_all_leaves_a_lab_whose_folder_it_cannot_read(engine: FakeEngine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Another user's lab folder under a 0700 home: stat() fails with EACCES for a
    # non-root user. That lab may well be running: gc --all leaves it, without a traceback.
    engine.add("theirs", {LAB_LABEL: "x", DIR_LABEL: "/home/bob/labs/x", ID_LABEL: "2" * 16,
                          HOME_LABEL: "3" * 16})
    real_stat = Path.stat

    def stat(self: Path, **kw: Any) -> Any:  # under exists() and is_file() alike
        if str(self).startswith("/home/bob/"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, **kw)

    monkeypatch.setattr(Path, "stat", stat)
    assert lab_gc.gc(all_folders=True) == []
    assert len(engine.resources) == 3


def test_exec_without_a_docker_cli_exits_3_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from lab.cli import lifecycle as cli_lifecycle
    from lab.cli.main import cli
    from lab.engine.snapshots import Container, ContainerState
    from lab.errors import ToolMissing
    from lab.lifecycle.handle import RunningLab

    class Handle:
        def container(self, node: str) -> Container:
            return Container("abc", f"glt-x-{node}-1", "sim:test", ContainerState("running", 0, ""))

        exec_attached = RunningLab.exec_attached

    monkeypatch.setattr(cli_lifecycle.handle, "attach", lambda name: Handle())
    monkeypatch.setenv("PATH", "/nonexistent")
    res = CliRunner().invoke(cli, ["exec", "gitaly1", "--lab", "x", "--", "true"])
    assert isinstance(res.exception, ToolMissing), res.exception
    assert res.exception.exit_code == 5
    assert "needs the Docker CLI on PATH" in str(res.exception)


@pytest.mark.parametrize(("status", "fix"), [("paused", "docker unpause glt-x-gitaly1-1"),
                                             ("exited", "docker start glt-x-gitaly1-1"),
                                             ("dead", "lab down x`, then `lab up")])
def test_exec_in_a_node_that_is_not_running_says_so_and_how(
        monkeypatch: pytest.MonkeyPatch, status: str, fix: str) -> None:
    # Docker's own refusal ("is not running", "is paused") exited 1, like the command would.
    from click.testing import CliRunner

    from lab.cli import lifecycle as cli_lifecycle
    from lab.cli.main import cli
    from lab.engine.snapshots import Container, ContainerState
    from lab.errors import BadInput
    from lab.lifecycle.handle import RunningLab

    class Handle:
        name = "x"

        def container(self, node: str) -> Container:
            return Container("abc", f"glt-x-{node}-1", "sim:test", ContainerState(status, 0, ""))

        how_to_run = RunningLab.how_to_run

    monkeypatch.setattr(cli_lifecycle.handle, "attach", lambda name: Handle())
    monkeypatch.setenv("PATH", "/nonexistent")  # never reaches docker
    res = CliRunner().invoke(cli, ["exec", "gitaly1", "--lab", "x", "--", "true"])
    assert isinstance(res.exception, BadInput), res.exception
    assert res.exception.exit_code == 2
    assert f"node 'gitaly1' of lab 'x' is {status}, not running" in str(res.exception)
    assert fix in str(res.exception)


def test_a_lab_is_named_never_given_as_a_path(engine: FakeEngine, tmp_path: Path) -> None:
    # `lab down /x --purge` or `lab down ../../x --purge` attached a lab folder outside the
    # state folder and deleted it.
    from lab.errors import LabNotFound

    running = handle.up(scaled(), name="mine")
    elsewhere = tmp_path / "elsewhere"
    running.path.rename(elsewhere)
    for name in (str(elsewhere), "../../elsewhere", "mine/../../../elsewhere"):
        with pytest.raises(LabNotFound, match="no lab named"):
            handle.attach(name)
    assert (elsewhere / "manifest.json").is_file()


def test_an_interrupted_compose_is_swept_again_after_the_engine_settles(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C while Compose creates: the engine finishes a create it was sent after the first
    # sweep; a second look removes it, or a network would outlive the run unseen by `lab gc`.
    from lab.lifecycle.readiness import Clock

    def interrupted(self: Compose, cmd: list[str], **kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Compose, "run", interrupted)
    late: list[float] = []

    def settle(seconds: float) -> None:  # the create in flight lands meanwhile
        late.append(seconds)
        engine.resources.append(Res("network", "glt-late_lab", handle.attach("late").labels))

    with pytest.raises(KeyboardInterrupt):
        handle.up(scaled(), name="late", clock=Clock(sleep=settle))
    assert late == [handle.CREATE_SETTLE_SECONDS]
    assert [r.name for r in engine.resources] == []
    assert "glt-late_lab" in engine.removed


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "delete"])
def test_a_lab_whose_manifest_was_damaged_by_hand_is_still_the_lab(
        engine: FakeEngine, damage: str) -> None:
    """manifest.json broken while the lab runs: `lab down` said "no lab named 'x'; labs:
    x" while `lab up` said "already up; `lab down x` first"; with the file deleted, `lab
    gc` removed the running lab as if its folder were gone. The saved spec says what the
    lab is."""
    running = handle.up(scaled(), name="hurt")
    engine.add("ours", running.labels)
    manifest = running.path / "manifest.json"
    if damage == "corrupt":
        manifest.write_text('{"name": "hurt", garbage')
    elif damage == "truncate":
        manifest.write_text(manifest.read_text()[:300])
    else:
        manifest.unlink()
    assert state.lab_names() == ["hurt"]
    [summary] = lab_gc.list_labs()
    assert (summary.flavor, summary.version, summary.topology, summary.nodes, summary.running,
            summary.state) == ("sim", "19.3.0", "scaled", 2, 1, "partial")
    assert lab_gc.gc() == []
    with pytest.raises(LabAlreadyUp):
        handle.up(scaled(), name="hurt")
    assert engine.removed == []
    handle.attach("hurt").down()
    assert sorted(engine.removed) == ["ours-container", "ours-network", "ours-volume"]


@pytest.mark.parametrize("damage", ["delete .lab", "corrupt secrets", "delete spec"])
def test_down_removes_a_lab_whose_state_folder_was_damaged_by_hand(
        engine: FakeEngine, damage: str) -> None:
    """.lab/ deleted, or its secrets or spec damaged: every command said "remove the lab
    with `lab down NAME --purge`", and `lab down` said the same, while `lab up` said
    "already up; `lab down` first". Down still removes its own resources, only those."""
    import shutil

    from click.testing import CliRunner

    from lab.cli.main import cli
    from lab.errors import LabDamaged

    running = handle.up(scaled(), name="broken")
    engine.add("ours", running.labels)
    engine.add("theirs", {LAB_LABEL: "broken", DIR_LABEL: "/elsewhere/broken",
                          ID_LABEL: "0123456789abcdef", HOME_LABEL: "fedcba9876543210"})
    if damage == "delete .lab":
        shutil.rmtree(running.path / ".lab")
    elif damage == "corrupt secrets":
        (running.path / ".lab" / "secrets.json").write_text("garbage")
    else:
        (running.path / ".lab" / "spec.json").unlink()
    with pytest.raises(LabDamaged, match="lab down broken --purge"):
        handle.attach("broken")
    result = CliRunner().invoke(cli, ["down", "broken", "--purge"])
    assert result.exit_code == 0, result.output
    assert sorted(engine.removed) == ["ours-container", "ours-network", "ours-volume"]
    assert not running.path.exists()


def test_a_lab_folder_copied_under_another_name_is_not_the_lab(engine: FakeEngine) -> None:
    """`cp -a labs/st2 labs/st2copy`: `lab status st2copy` showed lab st2 with every node
    missing, and `lab down st2copy` removed the running lab st2 (same name and id)."""
    import shutil

    from click.testing import CliRunner

    from lab.cli.main import cli
    from lab.errors import LabDamaged

    running = handle.up(scaled(), name="orig")
    engine.add("orig", running.labels)
    shutil.copytree(running.path, running.path.with_name("copy"), symlinks=True)
    with pytest.raises(LabDamaged, match="holds lab 'orig', not 'copy'"):
        handle.attach("copy")
    result = CliRunner().invoke(cli, ["down", "copy", "--purge"])
    assert result.exit_code == 0, result.output
    assert engine.removed == []
    assert not running.path.with_name("copy").exists()
    assert running.path.exists()


@pytest.mark.parametrize(("topology", "flavor", "order"), [
    ("cluster", "omnibus", [["praefect-db"], ["gitlab", "gitaly1", "gitaly2", "gitaly3"],
                            "praefect database", ["praefect"], "praefect migrated"]),
    ("cluster", "sim", [["praefect-db"], ["gitaly1", "gitaly2", "gitaly3"],
                        "praefect database", ["praefect"], "praefect migrated", ["gitlab"]]),
    ("scaled", "sim", [[]])])
def test_a_cluster_lab_starts_in_the_order_gitlab_documents(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, topology: str, flavor: str,
        order: list[Any]) -> None:
    """PostgreSQL, Praefect's database there, Praefect and its schema (Praefect pings its
    database as it starts and exits when it is not there); the Gitaly nodes, which need
    neither, right after the database node, and so does an Omnibus app (minutes to boot;
    a sim app comes last); one group at a time, each waited for where the next needs it."""
    def waited(self: handle.RunningLab, layers: list[Any], **kw: Any) -> None:
        engine.compose_calls.append(["wait", *(layer.name for layer in layers)])

    monkeypatch.setattr(handle.RunningLab, "_wait", waited)
    lab = resolve(SpecRequest(topology=topology, flavor=flavor, version="19.3.0"))
    handle.up(lab, name="order")
    seen: list[Any] = []
    for cmd in engine.compose_calls:
        if cmd[0] == "wait":
            seen.append(" ".join(cmd[1:]))
        elif "up" in cmd:
            rest = cmd[cmd.index("--remove-orphans") + 1:]
            seen.append(rest[1:] if rest[:1] == ["--no-deps"] else rest)
    assert seen == order


def test_the_wait_after_a_start_skips_the_layers_the_start_passed(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    handed: list[Any] = []

    def waited(self: handle.RunningLab, layers: list[Any], **kw: Any) -> None:
        asked.append([layer.name for layer in layers])

    monkeypatch.setattr(handle.RunningLab, "_wait", waited)
    monkeypatch.setattr(handle.RunningLab, "wait_ready",
                        lambda self, **kw: handed.append(kw.get("passed")))
    running = handle.up(resolve(SpecRequest(topology="cluster", flavor="sim")), name="skip")
    assert asked == [["praefect database"], ["praefect migrated"]]
    assert handed == [["praefect database", "praefect migrated"]]
    WAIT_READY(running, passed=handed[0])
    assert "praefect database" not in asked[2]
    assert "praefect migrated" not in asked[2]
    assert asked[2][0] == "containers running"
    # A wait told of nothing passed (after a change) asks them.
    WAIT_READY(running)
    assert asked[3][:3] == ["containers running", "praefect database", "praefect migrated"]
