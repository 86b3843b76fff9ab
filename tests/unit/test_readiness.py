"""Layered waits on a fake clock (dead containers fail at once); the marker `lab gc` reads."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from lab.engine.compose import V2, Compose, ComposeTool
from lab.engine.docker import carries
from lab.engine.snapshots import Container, ContainerState, Volume
from lab.errors import EngineError, LabError, NotReady
from lab.lifecycle import handle, layers
from lab.lifecycle.node_actions import Action, NodeAction
from lab.lifecycle.readiness import Clock, Layer, RecordingProgress, Verdict, wait_layers
from lab.lifecycle.status import NodeStatus
from lab.render.compose_file import DIR_LABEL, HOME_LABEL, LAB_LABEL, NODE_LABEL
from lab.spec.labspec import SpecRequest, resolve
from lab.store import labdir, ownership, state
from lab.store.labdir import write_lab


class FakeClock(Clock):
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []
        super().__init__(now=lambda: self.t, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def after(clock: FakeClock, seconds: float) -> Any:
    """A check that passes ``seconds`` after its first call."""
    start: list[float] = []

    def check() -> Verdict:
        start.append(clock.t)
        waited = clock.t - start[0]
        return Verdict(waited >= seconds, f"up in {seconds - waited:g}s")
    return check


def test_layers_pass_in_order_with_timings() -> None:
    clock = FakeClock()
    progress = RecordingProgress()
    report = wait_layers(
        [Layer("one", {"a": after(clock, 4)}), Layer("two", {"a": lambda: Verdict(True, "ok"),
                                                             "b": lambda: Verdict(True, "ok")})],
        timeout=60, clock=clock, interval=2, progress=progress)
    assert [(t.name, t.seconds) for t in report.layers] == [("one", 4.0), ("two", 0.0)]
    assert report.seconds == 4.0
    assert ("start", "one") in progress.events
    assert ("done", "two") in progress.events
    assert progress.events.index(("done", "one")) < progress.events.index(("start", "two"))


def test_timeout_without_sleeping() -> None:
    clock = FakeClock()
    started = time.monotonic()
    with pytest.raises(NotReady) as err:
        wait_layers([Layer("services up", {"gitaly1": lambda: Verdict(False, "down: gitaly")})],
                    timeout=300, clock=clock, interval=5,
                    log_tail=lambda node: f"last words of {node}")
    assert time.monotonic() - started < 1  # nothing really slept
    assert clock.t - 1000.0 == pytest.approx(300)
    exc = err.value
    assert exc.node == "gitaly1"
    assert "services up: still waiting after 300s (last status: down: gitaly)" in exc.last_status
    assert exc.log_tail == "last words of gitaly1"
    assert "last words of gitaly1" in str(exc)


def test_deadline_is_overall_not_per_layer() -> None:
    clock = FakeClock()
    with pytest.raises(NotReady, match="two: still waiting after 10s"):
        wait_layers([Layer("one", {"a": after(clock, 8)}),
                     Layer("two", {"a": after(clock, 8)})], timeout=10, clock=clock, interval=1)
    assert clock.t - 1000.0 == pytest.approx(10)


def test_watch_fails_at_once() -> None:
    clock = FakeClock()

    def watch() -> None:
        raise NotReady("gitaly1", "container exited with code 1", "syntax error in gitlab.rb")

    with pytest.raises(NotReady, match=r"syntax error in gitlab\.rb"):
        wait_layers([Layer("services up", {"gitaly1": lambda: Verdict(False, "...")})],
                    timeout=600, watch=watch, clock=clock)
    assert clock.slept == []


def test_transient_errors_are_retried() -> None:
    clock = FakeClock()
    calls = []

    def flaky() -> Verdict:
        calls.append(1)
        if len(calls) < 3:
            raise EngineError(["exec", "x"], 1, "container is restarting")
        return Verdict(True, "ok")

    wait_layers([Layer("app ready", {"gitlab": flaky})], timeout=60, clock=clock, interval=1)
    assert len(calls) == 3


def test_pauses_start_short_and_grow_per_layer() -> None:
    clock = FakeClock()
    wait_layers([Layer("one", {"a": after(clock, 2)}), Layer("two", {"a": after(clock, 0.3)})],
                timeout=60, clock=clock, interval=1, first_interval=0.1, growth=2)
    # Layer one: 0.1, 0.2, 0.4, then at most 1 s; layer two starts short again.
    assert clock.slept == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 0.1, 0.2])


def test_pauses_without_first_interval_are_the_interval() -> None:
    clock = FakeClock()
    wait_layers([Layer("one", {"a": after(clock, 5)})], timeout=60, clock=clock, interval=2)
    assert clock.slept == [2, 2, 2]


def test_a_layers_probes_are_asked_side_by_side() -> None:
    # Each probe waits for the other to be asked too: asked one after the other, the
    # first would time out on the barrier and say so.
    both = threading.Barrier(2, timeout=5)

    def probe() -> Verdict:
        try:
            both.wait()
        except threading.BrokenBarrierError:
            return Verdict(False, "asked alone")
        return Verdict(True, "ok")

    clock = FakeClock()
    wait_layers([Layer("services up", {"gitlab": probe, "gitaly1": probe})], timeout=1,
                clock=clock, interval=1)
    assert clock.slept == []


# --- RunningLab.wait_ready against a fake engine ---------------------------------------

LOGS: dict[str, str] = {}  # container name -> its log, for the fake engine


def fake_container(node: str, status: str, exit_code: int = 0,
                   log: str = "gitlab Reconfigured!\n") -> Container:
    c = Container(id=f"id-{node}", name=f"glt-scaled_{node}_1", image="sim:test",
                  state=ContainerState(status, exit_code,
                                       "starting" if status == "running" else "",
                                       started_at="2026-11-29T19:37:01.123456789Z"),
                  labels={NODE_LABEL: node})
    LOGS[c.name] = log
    return c


@pytest.fixture
def rendered(tmp_path: Path) -> Any:
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    return write_lab(lab, tmp_path / "scaled", image="sim:test")


@dataclass
class EngineCalls:
    lists: int = 0
    inspects: int = 0


def fake_engine(monkeypatch: pytest.MonkeyPatch, containers: list[Container]) -> EngineCalls:
    calls = EngineCalls()

    def listed(labels: dict[str, str]) -> list[Container]:
        calls.lists += 1
        return containers

    def inspect(c: Container) -> Container:
        calls.inspects += 1
        return c

    def name_of(c: Container | str) -> str:
        return c.name if isinstance(c, Container) else c

    monkeypatch.setattr(handle.dk, "containers", listed)
    monkeypatch.setattr(handle.dk, "inspect", inspect)
    monkeypatch.setattr(handle.dk, "log_tail",
                        lambda c, lines=40, **kw: f"{name_of(c)}: boom\n")
    monkeypatch.setattr(handle.dk, "logs", lambda c, **kw: LOGS[name_of(c)])
    return calls


def test_exited_container_fails_wait_at_once_with_log_tail(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engine(monkeypatch, [fake_container("gitlab", "running"),
                              fake_container("gitaly1", "exited", 1)])
    clock = FakeClock()
    running = handle.RunningLab(rendered, clock=clock)
    with pytest.raises(NotReady) as err:
        running.wait_ready(timeout=600)
    assert err.value.node == "gitaly1"
    assert "container exited with code 1" in err.value.last_status
    assert "glt-scaled_gitaly1_1: boom" in err.value.log_tail
    assert clock.t == 1000.0  # failed on the first look, no waiting


def test_a_log_tail_quoting_omnibus_config_shows_no_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reconfigure that fails on a line of omnibus_config quotes it, without the key
    # (Ruby elides the start): the password was in `lab up`'s output twice (exit 4).
    spec = tmp_path / "acme.yaml"
    spec.write_text("topology: scaled\nnodes:\n  gitlab:\n    omnibus_config: |\n"
                    "      gitlab_rails['db_password'] = 'Hunter2-very-secret' oops(\n")
    rendered = write_lab(resolve(SpecRequest(file=spec)), tmp_path / "acme", image="sim:test")
    ruby = ("GITLAB_OMNIBUS_CONFIG:1: syntax error, unexpected local variable or method, "
            "expecting end-of-input (SyntaxError)\n...'] = 'Hunter2-very-secret' oops(\n"
            "...                           ^~~~\n"
            "gitlab_rails['db_password'] = 'Hunter2-very-secret' oops(\n")
    fake_engine(monkeypatch, [fake_container("gitlab", "exited", 1, log=ruby),
                              fake_container("gitaly1", "running")])
    # As the engine's own log_tail does: the log passes the handle's redactor.
    monkeypatch.setattr(handle.dk, "log_tail",
                        lambda c, lines=40, **kw: kw["redact"](LOGS[c.name]))
    running = handle.RunningLab(rendered, clock=FakeClock())
    with pytest.raises(NotReady) as err:
        running.wait_ready(timeout=600)
    assert "syntax error" in str(err.value)
    assert "Hunter2" not in str(err.value)
    assert "...'] = '[REDACTED]' oops(" in str(err.value)


def test_container_missing_from_rounds_in_a_row_is_gone(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # One listing may miss a starting container; missing for UNLISTED_SECONDS, it is gone.
    calls = fake_engine(monkeypatch, [fake_container("gitlab", "running")])
    clock = FakeClock()
    running = handle.RunningLab(rendered, clock=clock)
    with pytest.raises(NotReady, match="its container is gone") as err:
        running.wait_ready(timeout=600)
    assert err.value.node == "gitaly1"
    # The first round that found it missing for that long, after several that looked again.
    assert calls.lists == len(clock.slept) + 1 > 2
    waited = clock.t - 1000.0
    assert handle.UNLISTED_SECONDS <= waited < handle.UNLISTED_SECONDS + clock.slept[-1]


def test_exit_before_reconfigured_is_reported_as_a_failed_reconfigure(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The image's wrapper runs under `set -e`: a failed reconfigure ends the container,
    # there is nothing to retry.
    dead = fake_container("gitaly1", "exited", 1, log="Configuring GitLab...\nThere was an "
                          "error running gitlab-ctl reconfigure\n")
    fake_engine(monkeypatch, [fake_container("gitlab", "running"), dead])
    running = handle.RunningLab(rendered, clock=FakeClock())
    with pytest.raises(NotReady) as err:
        running.wait_ready(timeout=600)
    assert err.value.last_status == ("container exited during `gitlab-ctl reconfigure` "
                                     "with code 1")


def test_stuck_lab_times_out_with_fake_clock(rendered: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_engine(monkeypatch, [fake_container("gitlab", "created"),
                                      fake_container("gitaly1", "created")])
    clock = FakeClock()
    running = handle.RunningLab(rendered, clock=clock)
    with pytest.raises(NotReady, match="containers running: still waiting after 30s"):
        running.wait_ready(timeout=30)
    assert clock.t - 1000.0 == pytest.approx(30)
    # One listing per poll round, shared by that round's checks, and no second inspect
    # of what was just listed.
    rounds = len(clock.slept) + 1
    assert calls.lists == rounds
    assert calls.inspects == 0
    running.container("gitlab")
    assert calls.lists == rounds + 1  # outside a wait, every call looks again


def test_layers_of_a_lab(rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "containers_routable", lambda: True)
    running = handle.RunningLab(rendered)
    # The toolkit's own probes decide readiness; Docker's slow first check does not gate.
    names = [layer.name for layer in running.layers()]
    assert names == ["containers running", "services up", "app ready", "gitaly storages",
                     "admin token"]
    # Still there for whoever asks for it.
    assert [layer.name for layer in running.layers(docker_health=True)] == [
        "containers running", "services up", "app ready", "gitaly storages", "healthchecks",
        "admin token"]
    # A scenario that breaks the app's side on purpose still waits for each changed
    # Gitaly node to serve, asked with the node's own token; only the app's view is left out.
    [gitaly] = [layer for layer in running.layers(wait_gitaly=False)
                if layer.name == "gitaly storages"]
    assert set(gitaly.probes) == {"gitaly1"}
    monkeypatch.setattr(layers, "containers_routable", lambda: False)
    assert "gitaly storages" not in [layer.name for layer in running.layers(wait_gitaly=False)]
    assert set(running.layers()[3].probes) == {"gitlab"}  # the app is asked instead
    assert set(running.layers()[1].probes) == {"gitlab", "gitaly1"}


# --- the up-in-progress marker ------------------------------------------------------

@pytest.fixture
def offline_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """handle.up with no engine: Compose `up` fails, then so does the teardown."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(handle.dk, "check_reachable", lambda: None)
    monkeypatch.setattr(handle, "detect", lambda: ComposeTool(V2, "2.29.1"))
    for kind in ("containers", "networks", "volumes"):
        monkeypatch.setattr(handle.dk, kind, lambda labels: [])
    monkeypatch.setattr(handle, "ensure_image", lambda lab, image, progress=None: None)
    teardowns: list[str] = []

    def compose_up(self: Compose, cmd: list[str], **kw: Any) -> None:
        raise EngineError(cmd, 1, "no space left on device")

    def down(self: handle.RunningLab, *, purge: bool = False) -> None:
        teardowns.append(self.name)
        raise EngineError(["down"], 1, "the engine went away")

    monkeypatch.setattr(Compose, "run", compose_up)
    monkeypatch.setattr(handle.RunningLab, "down", down)
    return teardowns


def test_failed_teardown_leaves_the_marker_for_gc(offline_up: list[str]) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    with pytest.raises(EngineError, match="no space left on device"):  # the original error
        handle.up(lab, name="torn")
    assert offline_up == ["torn"]
    # Still marked: once this process ends, `lab gc` sees a killed `up` and sweeps it.
    assert state.up_marker_pid(state.lab_dir("torn")) == os.getpid()


def test_kept_lab_is_not_marked(offline_up: list[str]) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    with pytest.raises(EngineError, match="no space left on device"):
        handle.up(lab, name="kept", keep_on_failure=True)
    assert offline_up == []  # left up on purpose
    assert state.up_marker_pid(state.lab_dir("kept")) is None


def test_ready_lab_is_not_marked(offline_up: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Compose, "run", lambda self, cmd, **kw: None)
    monkeypatch.setattr(handle.RunningLab, "wait_ready", lambda self, **kw: None)
    running = handle.up(resolve(SpecRequest(topology="scaled", flavor="sim")), name="fine")
    assert running.compose.tool == ComposeTool(V2, "2.29.1")
    assert state.up_marker_pid(running.path) is None


def test_leftover_volumes_without_containers_are_swept_before_up(
        offline_up: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # An interrupted `lab down` (Ctrl-C after the containers went) leaves the network and
    # the volumes; the next `lab up` must not boot on the old lab's data.
    # Labelled with the lab's name, folder and state folder's id (the lab before it); listed
    # as the engine filters: to any query whose labels it carries (up asks by name, then
    # looks for its own labels among what it got).
    stale = Volume("glt-stale_gitaly1-data", {LAB_LABEL: "stale",
                                              DIR_LABEL: str(state.lab_dir("stale")),
                                              HOME_LABEL: ownership.home_id() or ""})
    monkeypatch.setattr(handle.dk, "volumes", lambda labels: [
        stale] if carries(stale.labels, labels) else [])
    swept: list[dict[str, str]] = []
    monkeypatch.setattr(handle, "sweep", lambda labels: swept.append(labels) or [])
    monkeypatch.setattr(Compose, "run", lambda self, cmd, **kw: None)
    monkeypatch.setattr(handle.RunningLab, "wait_ready", lambda self, **kw: None)
    handle.up(resolve(SpecRequest(topology="scaled", flavor="sim")), name="stale")
    assert len(swept) == 1


@pytest.mark.parametrize(("state", "health", "healthy"), [
    ("running", "healthy", True), ("running", "", True),
    ("running", "starting", True),  # Docker's first check not run yet: no verdict
    ("running", "unhealthy", False), ("exited", "", False), ("paused", "healthy", False)])
def test_node_status_healthy(state: str, health: str, healthy: bool) -> None:
    st = NodeStatus("gitlab", ("app",), state, health, {}, (), "c")
    assert st.healthy is healthy


def test_each_lab_redacts_its_own_secrets_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No process-wide redactor: a second lab neither adds to nor borrows the first's values.
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    a = handle.RunningLab(write_lab(lab, tmp_path / "a", image="sim:test"))
    b = handle.RunningLab(write_lab(lab, tmp_path / "b", image="sim:test"))
    a_token, b_token = a.admin_token, b.admin_token
    assert a_token != b_token
    assert a.redactor(f"token {a_token}") == "token [REDACTED]"
    # Known values are the lab's own (the shapes of tokens go everywhere).
    assert a_token in a.redactor.secrets
    assert b_token not in a.redactor.secrets
    # What the handle shows passes its redactor: an exec error, a log.
    seen: dict[str, Any] = {}

    def logs(c: Any, **kw: Any) -> str:
        seen["redact"] = kw["redact"]
        return str(kw["redact"](f"log {a_token}"))

    monkeypatch.setattr(handle.dk, "containers", lambda labels: [fake_container("gitlab",
                                                                                   "running")])
    monkeypatch.setattr(handle.dk, "logs", logs)
    assert a.logs("gitlab") == "log [REDACTED]"
    assert seen["redact"] is a.redactor


@pytest.mark.parametrize(("flavor", "says"), [("sim", "lab logs"), ("omnibus", "reconfigure")])
def test_services_timeout_hint_fits_the_flavour(flavor: str, says: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A sim node is up within a second: "Omnibus reconfigure may still be running" misleads.
    monkeypatch.setattr(layers, "containers_routable", lambda: True)
    lab = resolve(SpecRequest(topology="scaled", flavor=flavor))
    handle: Any = type("Handle", (), {"lab": lab})()
    hint = {layer.name: layer.hint for layer in layers.readiness_layers(handle)}["services up"]
    assert says in hint
    assert ("Omnibus" in hint) == (flavor == "omnibus")


def test_after_a_change_only_the_touched_nodes_are_asked_for_their_services(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # apply passes the nodes it touched: an untouched node was up and nothing of it changed,
    # so it costs no exec; the lab-wide layers stay as they are.
    monkeypatch.setattr(layers, "containers_routable", lambda: True)
    seen: list[list[Any]] = []
    monkeypatch.setattr(handle, "wait_layers", lambda ls, **kw: seen.append(list(ls)))
    running = handle.RunningLab(rendered)
    running.wait_ready(services_of=["gitaly1"])
    running.wait_ready()
    narrowed, full = ({layer.name: set(layer.probes) for layer in ls} for ls in seen)
    assert narrowed["services up"] == {"gitaly1"}
    assert full["services up"] == {"gitlab", "gitaly1"}
    assert {k: v for k, v in narrowed.items() if k != "services up"} == \
        {k: v for k, v in full.items() if k != "services up"}


def record_layers(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each wait's layer names, in order, instead of waiting (the host reaches the lab)."""
    monkeypatch.setattr(layers, "containers_routable", lambda: True)
    seen: list[list[str]] = []
    monkeypatch.setattr(handle, "wait_layers",
                        lambda ls, **kw: seen.append([layer.name for layer in ls]))
    return seen


def test_after_a_change_the_database_setup_layers_run_only_if_their_node_was_touched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Praefect's role, database and schema live in the database node's volume: a change of
    # the app or a Gitaly node leaves them as they were, and asking again costs three execs.
    seen = record_layers(monkeypatch)
    lab = resolve(SpecRequest(topology="cluster", flavor="sim"))
    running = handle.RunningLab(write_lab(lab, tmp_path / "cluster", image="sim:test"))
    running.wait_ready(services_of=["gitaly1"], setup_of=["gitaly1", "gitlab"])
    running.wait_ready(services_of=["praefect-db"], setup_of=["praefect-db"])
    running.wait_ready()
    untouched, db_touched, full = seen
    assert set(layers.SETUP_LAYERS) <= set(full)
    assert not set(layers.SETUP_LAYERS) & set(untouched)
    assert db_touched == full
    assert [n for n in full if n not in layers.SETUP_LAYERS] == untouched


def test_apply_reconfigures_nodes_side_by_side_and_says_where_it_failed(
        rendered: Any) -> None:
    # Two nodes' reconfigures at once: a barrier of two breaks (after its timeout) if they
    # ran one after the other.
    running = handle.RunningLab(rendered)
    both = threading.Barrier(2, timeout=5)

    def reconfigure(node: str) -> bool:
        both.wait()
        return node == "gitaly1"

    running._reconfigure = reconfigure  # type: ignore[method-assign]
    asked = [NodeAction(n, Action.RECONFIGURE, "changed: gitlab.rb")
             for n in ("gitlab", "gitaly1")]
    assert running._in_place_all(asked) == {"gitaly1"}


def test_a_restart_reconfigures_then_restarts_the_services_in_place(rendered: Any) -> None:
    # The services read TLS files at start, and reconfigure links a new trusted CA: both,
    # in the running container (a restarted Omnibus container runs its whole reconfigure).
    running = handle.RunningLab(rendered)
    seen: list[str] = []

    seen: list[list[str]] = []
    codes: list[int] = []

    def exec_(node: str, cmd: list[str], **kw: Any) -> Any:
        seen.append(cmd)
        return type("R", (), {"returncode": codes.pop(0) if codes else 0})()

    running.exec = exec_  # type: ignore[method-assign]
    assert running._in_place(NodeAction("gitaly1", Action.RESTART,
                                        "read only when services start: ssl/gitaly1.crt"))
    # One exec: the restart only after a reconfigure that succeeded.
    assert seen == [["/bin/sh", "-c", "/opt/gitlab/bin/gitlab-ctl reconfigure && "
                     "/opt/gitlab/bin/gitlab-ctl restart"]]
    codes.append(1)  # either failed: the caller restarts the container, which says why
    assert not running._in_place(NodeAction("gitaly1", Action.RESTART, "ssl/gitaly1.crt"))
    # Only Gitaly's certificate and key changed: reconfigure would change nothing.
    seen.clear()
    assert running._in_place(NodeAction("gitaly1", Action.RESTART, "read only when services "
                                        "start: ssl/gitaly1.crt", reconfigure=False))
    assert seen == [["/opt/gitlab/bin/gitlab-ctl", "restart"]]


def test_a_source_node_restarts_its_services_with_the_init_script(tmp_path: Path) -> None:
    # No gitlab-ctl there: the install guide's `service gitlab restart`, in the running
    # container; where it fails (files its services cannot start on), False: the caller
    # restarts the container, whose boot then says why.
    lab = resolve(SpecRequest(topology="scaled", flavor="sim",
                              sets=("nodes.gitaly1.install=source",)))
    running = handle.RunningLab(write_lab(lab, tmp_path / "src", image="sim:test"))
    seen: list[list[str]] = []
    codes = [0, 1]

    def exec_(node: str, cmd: list[str], **kw: Any) -> Any:
        seen.append([node, *cmd])
        return type("R", (), {"returncode": codes.pop(0)})()

    running.exec = exec_  # type: ignore[method-assign]
    restart = NodeAction("gitaly1", Action.RESTART,
                         "installed from source (no reconfigure): home/git/gitaly/config.toml")
    assert running._in_place(restart)
    assert not running._in_place(restart)
    assert seen == [["gitaly1", "service", "gitlab", "restart"]] * 2

    def not_running(node: str, cmd: list[str], **kw: Any) -> Any:
        raise LabError("container not running")

    running.exec = not_running  # type: ignore[method-assign]
    assert not running._in_place(restart)


def test_after_a_change_the_apps_own_layers_run_only_if_the_app_node_was_touched(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The app's `/-/readiness` (without ?all=1) and its admin token answer for the app node
    # alone: a change of a Gitaly node leaves them as they were. With wait_gitaly the
    # readiness also asks the app's view of Gitaly, which that change does change.
    seen = record_layers(monkeypatch)
    running = handle.RunningLab(rendered)
    running.wait_ready(wait_gitaly=False, app_of=["gitaly1"])
    running.wait_ready(wait_gitaly=True, app_of=["gitaly1"])
    running.wait_ready(wait_gitaly=False, app_of=["gitaly1", "gitlab"])
    running.wait_ready(wait_gitaly=False)
    gitaly_only, back_at_base, app_too, full = seen
    assert gitaly_only == ["containers running", "services up", "gitaly storages"]
    assert back_at_base == ["containers running", "services up", "app ready",
                            "gitaly storages"]
    assert app_too == full == ["containers running", "services up", "app ready",
                               "gitaly storages", "admin token"]


def test_a_layer_left_with_nobody_to_ask_is_skipped(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every node changed in place (gitlab-ctl said its services run): "services up" asks
    # nobody, and its round would only list the containers once more.
    seen = record_layers(monkeypatch)
    handle.RunningLab(rendered).wait_ready(services_of=[])
    assert seen == [["containers running", "app ready", "gitaly storages", "admin token"]]


def fake_exec(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """dk.exec_in answering 0; returns (container name, gitlab-ctl verb or command) asked;
    a shell line of gitlab-ctl commands as their verbs ("reconfigure && restart")."""
    from lab.engine.run import Result

    asked: list[tuple[str, str]] = []

    def exec_in(c: Container, cmd: list[str], **kw: Any) -> Result:
        if cmd[:2] == ["/bin/sh", "-c"]:
            verbs = [part.split()[1] for part in cmd[2].split(" && ")]
            asked.append((c.name, " && ".join(verbs)))
        else:
            asked.append((c.name, cmd[1] if cmd[0].endswith("gitlab-ctl") else cmd[0]))
        return Result(list(cmd), 0, "", "")

    monkeypatch.setattr(handle.dk, "exec_in", exec_in)
    return asked


def test_changes_in_place_list_the_containers_once(
        rendered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each exec looked the containers up again (a listing and an inspect per container).
    # A change in place keeps each container.
    calls = fake_engine(monkeypatch, [fake_container("gitlab", "running"),
                                      fake_container("gitaly1", "running")])
    asked = fake_exec(monkeypatch)
    running = handle.RunningLab(rendered)
    done = running._in_place_all([NodeAction(n, Action.RESTART, "read only when services "
                                             "start: trusted-certs/ca.crt")
                                  for n in ("gitlab", "gitaly1")])
    assert done == {"gitlab", "gitaly1"}
    assert sorted(asked) == [("glt-scaled_gitaly1_1", "reconfigure && restart"),
                             ("glt-scaled_gitlab_1", "reconfigure && restart")]
    assert calls.lists == 1
    running.container("gitlab")
    assert calls.lists == 2  # after it, every call looks again


@pytest.fixture
def applying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A RunningLab of a scenario's base lab whose apply runs against fakes: the names of
    the layers each wait got, and what was run in which container."""
    from lab.scenario.load import load_scenario, resolve_labs

    library = Path(__file__).resolve().parents[2] / "scenarios"
    waits = record_layers(monkeypatch)
    monkeypatch.setattr(handle, "image_for", lambda lab: "sim:test")
    monkeypatch.setattr(handle, "ensure_image", lambda lab, image, progress=None: None)
    monkeypatch.setattr(handle, "reclaim", lambda *a: None)

    def start(name: str) -> Any:
        labs = resolve_labs(load_scenario(library / f"{name}.yaml"))
        fake_engine(monkeypatch, [fake_container(n.name, "running") for n in labs.base.nodes])
        running = handle.RunningLab(write_lab(labs.base, tmp_path / name, image="sim:test"))
        return running, labs, waits, fake_exec(monkeypatch)

    return start


def test_apply_of_a_gitaly_change_waits_for_what_that_change_can_have_changed(
        applying: Any) -> None:
    running, labs, waits, asked = applying("auth-token-mismatch")
    assert running.apply(labs.target, wait_gitaly=False) == ["gitaly1"]
    assert asked == [("glt-scaled_gitaly1_1", "reconfigure")]
    # gitlab-ctl said gitaly1's services run; the app was not touched.
    assert waits == [["containers running", "gitaly storages"]]
    # Back to the base state, the app's view of Gitaly is asked again (Rails reconnects).
    assert running.apply(labs.base, wait_gitaly=True) == ["gitaly1"]
    assert waits[-1] == ["containers running", "app ready", "gitaly storages"]


def test_apply_of_an_app_change_waits_for_the_apps_own_layers(applying: Any) -> None:
    running, labs, waits, asked = applying("tls-untrusted-ca")
    assert running.apply(labs.target, wait_gitaly=False) == ["gitlab"]
    assert asked == [("glt-scaled_gitlab_1", "reconfigure && restart")]
    assert waits == [["containers running", "app ready", "gitaly storages", "admin token"]]


def test_apply_renders_each_state_once(applying: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The state an apply leaves is the next apply's old state: its files are those its
    # render wrote (RenderedLab.contents), not rendered again. Only a handle whose state
    # came without them (an attached lab) renders its state to compare.
    running, labs, _, asked = applying("auth-token-mismatch")
    renders: list[str] = []
    real_handle, real_folder = handle.render_files, labdir.render_files

    def counted(real: Any) -> Any:
        def render_files(lab: Any, *a: Any, **kw: Any) -> Any:
            renders.append(lab.node("gitaly1").gitaly_token or "")
            return real(lab, *a, **kw)
        return render_files

    monkeypatch.setattr(handle, "render_files", counted(real_handle))
    monkeypatch.setattr(labdir, "render_files", counted(real_folder))
    running.apply(labs.target, wait_gitaly=False)
    running.apply(labs.base)
    running.apply(labs.target, wait_gitaly=False)
    assert len(renders) == 3  # one per apply: the state it writes
    # And what was kept is the state left: each apply changed gitaly1 back and forth.
    assert asked == [("glt-scaled_gitaly1_1", "reconfigure")] * 3
    running.rendered = replace(running.rendered, contents={})
    running.apply(labs.base)
    assert len(renders) == 5  # the state it was in, then the new one
    assert asked[-1] == ("glt-scaled_gitaly1_1", "reconfigure")


def test_a_listed_containers_log_is_read_since_its_start_as_inspect_tells(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing has no start time: the log since the start asks inspect for it (a running
    container only); a given ``since`` or a known start time asks nothing."""
    asked: list[str] = []
    read: list[str | None] = []
    started = "2026-12-07T01:00:00+00:00"

    def inspect(c: Container) -> Container:
        asked.append(c.name)
        return replace(c, state=replace(c.state, started_at=started))

    monkeypatch.setattr(layers.dk, "inspect", inspect)
    monkeypatch.setattr(layers.dk, "logs", lambda c, **kw: read.append(kw["since"]) or "")
    listed = Container("c1", "glt-x-gitaly1-1", "img", ContainerState("running", 0, ""))
    layers.log_since_start(listed, redact=str)
    assert asked == ["glt-x-gitaly1-1"]
    assert read == ["1796605200.000000"]  # the start inspect gave
    layers.log_since_start(listed, "2026-12-07T01:00:05+00:00", redact=str)
    exited = Container("c2", "glt-x-gitaly1-1", "img", ContainerState("exited", 1, ""))
    layers.log_since_start(exited, redact=str)  # never started: the whole log
    assert asked == ["glt-x-gitaly1-1"]
    assert read[1:] == ["1796605205.000000", None]
