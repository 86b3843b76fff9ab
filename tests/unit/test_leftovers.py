"""No leftover labs: what a killed or failed `lab up`, `lab run` or `lab down` leaves, `lab gc`
finds; labs the toolkit made for itself leave no folder unless kept on purpose, and `lab
list` says whose each lab is.

The engine is the fake of test_ownership (labelled resources in a list); the lifecycle
code is the real one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_ownership import FakeEngine, Res, engine, scaled

from lab.cli.main import cli
from lab.errors import NotReady
from lab.lifecycle import gc as lab_gc
from lab.lifecycle import handle
from lab.model.labels import GATEWAY_LABEL, NODE_LABEL
from lab.scenario.pool import LabPool
from lab.store import layout, ownership, state

__all__ = ["engine"]  # the fixture, used by name

DEAD_PID = 2**22 + 7  # above pid_max's default: never a running process


def dead_marker(path: Path, verb: str) -> None:
    (path / layout.UP_MARKER).write_text(f"{DEAD_PID} 12345 {verb}\n")


def test_a_killed_run_leaves_nothing_gc_cannot_see(engine: FakeEngine) -> None:
    """SIGKILL of `lab run` after its lab booted: the lab ran on, its folder there, no marker;
    `lab gc` said "nothing to remove". The lab is marked as the run's own from before its
    first resource, and the run's lock (dropped by the kernel) says the run is gone."""
    running = handle.up(scaled(), name="sc-scaled-sim-abc123", for_run=True)
    engine.add("run", running.labels)
    assert ownership.made_for(running.name) == ownership.FOR_RUN
    [summary] = lab_gc.list_labs()
    assert (summary.purpose, summary.held_by) == ("run", "")
    dry = lab_gc.collect_garbage(dry_run=True)
    assert any("its `lab run` ended without removing it" in r for r in dry.removed)
    assert running.path.is_dir()  # a dry run removes nothing
    report = lab_gc.collect_garbage()
    assert sorted(engine.removed) == ["run-container", "run-network", "run-volume"]
    assert f"folder {running.path} (lab sc-scaled-sim-abc123: its `lab run` ended without " \
        "removing it)" in report.removed
    assert not running.path.exists()
    assert state.lab_names() == []


def test_a_run_that_still_holds_its_lab_is_kept_and_said_why(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="sc-held", for_run=True)
    engine.add("held", running.labels)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; from lab.store.state import LabClaim; "
         "assert LabClaim('sc-held').acquire(wait=False); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        report = lab_gc.collect_garbage()
        assert report.removed == []
        assert report.kept == [f"lab sc-held: in use by `lab run` (PID {proc.pid})"]
        assert lab_gc.list_labs()[0].held_by == f"`lab run` (PID {proc.pid})"
    finally:
        proc.kill()
        proc.wait()
    assert engine.removed == []
    assert running.path.is_dir()


def test_a_lab_kept_on_purpose_stays_and_gc_says_so(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="sc-kept", for_run=True)
    engine.add("kept", running.labels)
    pool = LabPool(leave_at_base=True, up=lambda lab: running, on_kept=ownership.keep_lab)
    pool.get(running.lab)
    pool.close()
    assert ownership.made_for("sc-kept") == ownership.FOR_KEPT
    result = CliRunner().invoke(cli, ["gc"])
    assert result.exit_code == 0, result.output
    assert "kept lab sc-kept: kept on purpose by `lab run --keep`" in result.output
    assert "nothing to remove" in result.output
    assert engine.removed == []
    assert running.path.is_dir()


def test_a_pool_downs_its_own_labs_with_their_folders(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="sc-done", for_run=True)
    with LabPool(up=lambda lab: running) as pool:
        pool.get(running.lab)
    assert not running.path.exists()


def test_users_labs_are_never_garbage(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="mine")
    engine.add("mine", running.labels)
    assert ownership.made_for("mine") == ownership.FOR_YOU
    assert lab_gc.collect_garbage() == lab_gc.GcReport([], [])
    running.down()  # down without --purge keeps the user's folder
    assert running.path.is_dir()
    assert lab_gc.collect_garbage() == lab_gc.GcReport([], [])
    assert running.path.is_dir()


@pytest.mark.parametrize("keep", [False, True])
def test_a_failed_start_of_a_new_lab_leaves_no_folder_unless_kept(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, keep: bool) -> None:
    def timeout(self: Any, **kw: Any) -> None:
        raise NotReady("gitaly1", "timed out")

    monkeypatch.setattr(handle.RunningLab, "wait_ready", timeout)
    with pytest.raises(NotReady):
        handle.up(scaled(), name="failing", keep_on_failure=keep)
    path = state.lab_dir("failing")
    assert path.is_dir() is keep
    if keep:
        assert ownership.made_for("failing") == ownership.FOR_YOU  # the user's, to look at


def test_a_failed_start_of_an_existing_lab_keeps_its_folder(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    running = handle.up(scaled(), name="again")
    running.down()

    def interrupted(self: Any, **kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(handle.RunningLab, "wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        handle.up(scaled(), name="again")
    assert running.path.is_dir()  # the user's folder (and secrets) from before
    assert ownership.made_for("again") == ownership.FOR_YOU


def test_a_killed_start_of_a_new_lab_goes_with_its_folder(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="killed-start")
    engine.add("half", running.labels)
    # As a SIGKILL during the wait leaves it: the start's mark and its marker.
    ownership.set_purpose("killed-start", ownership.FOR_START)
    dead_marker(running.path, "up")
    assert lab_gc.list_labs()[0].state == "interrupted"
    report = lab_gc.collect_garbage()
    assert sorted(engine.removed) == ["half-container", "half-network", "half-volume"]
    assert any("its `lab up` was killed" in r for r in report.removed)
    assert not running.path.exists()


def test_a_killed_down_is_finished_by_gc(engine: FakeEngine) -> None:
    running = handle.up(scaled(), name="half-down")
    engine.add("rest", running.labels)
    dead_marker(running.path, "down")  # SIGKILL between the marker and the last removal
    [summary] = lab_gc.list_labs()
    assert summary.state == "interrupted"
    removed = lab_gc.gc()
    assert sorted(r.split()[1] for r in removed) == ["rest-container", "rest-network",
                                                     "rest-volume"]
    assert all("its `lab down` was killed" in r for r in removed)
    assert running.path.is_dir()  # the user's folder stays
    assert not (running.path / layout.UP_MARKER).exists()


def test_down_marks_before_the_first_removal(engine: FakeEngine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    running = handle.up(scaled(), name="marked-down")
    engine.add("x", running.labels)
    seen: list[str | None] = []
    real = handle.sweep

    def sweep(labels: dict[str, str], **kw: Any) -> list[str]:
        seen.append(state.marker_verb(running.path))
        return real(labels, **kw)

    monkeypatch.setattr(handle, "sweep", sweep)
    running.down()
    assert seen == ["down"]
    assert state.marker_verb(running.path) is None


def test_list_says_whose_each_lab_is(engine: FakeEngine) -> None:
    handle.up(scaled(), name="mine")
    handle.up(scaled(), name="sc-theirs", for_run=True)
    result = CliRunner().invoke(cli, ["list", "--json"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    import json

    assert {s["name"]: (s["for"], s["held_by"]) for s in json.loads(result.output)["labs"]} == {
        "mine": ("you", None), "sc-theirs": ("run", None)}
    table = CliRunner().invoke(cli, ["list"], env={"COLUMNS": "250"})
    assert "yours" in table.output
    assert "a run's, ended (lab gc removes it)" in table.output


def test_a_probe_of_the_lock_does_not_make_a_run_give_up_its_labs(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab list`/`lab gc` take a lab's lock for a moment to see whether it is held; a run
    taking the lab at that moment tries again instead of counting it as another run's
    (which would make its pool down the labs it holds while it waits)."""
    import fcntl

    real = fcntl.flock
    busy = [True]

    def flock_once_busy(fd: int, op: int) -> None:
        if busy[0] and op & fcntl.LOCK_NB:
            busy[0] = False
            raise BlockingIOError
        real(fd, op)

    monkeypatch.setattr(state.LabClaim, "PROBE_PAUSE", 0.0)
    monkeypatch.setattr(state.fcntl, "flock", flock_once_busy)
    claim = state.LabClaim("probed")
    assert claim.acquire(wait=False)
    claim.release()
    busy[0] = True
    assert not state.LabClaim("probed").acquire(wait=False, retries=1)  # a probe: one look


def test_list_counts_a_swarm_labs_nodes_not_its_gateway(engine: FakeEngine) -> None:
    """A swarm lab's gateway container (publishing the app on loopback) carries the lab's
    labels: `lab list` counted it as a node, "3/2 running", and a lab with a node stopped
    as up."""
    running = handle.up(scaled(), name="sw")
    engine.resources += [
        Res("container", "sw-gitlab", {**running.labels, NODE_LABEL: "gitlab"}),
        Res("container", "sw-gitaly1", {**running.labels, NODE_LABEL: "gitaly1"}, "exited"),
        Res("container", "sw-gateway", {**running.labels, GATEWAY_LABEL: "80:gitlab:80"})]
    [summary] = lab_gc.list_labs()
    assert (summary.nodes, summary.running, summary.state) == (2, 1, "partial")
