"""The runner against a fake lab (``scenario_fakes``): grouping, mutations and reverts,
faults, evidence; the built-in library passes against the fake world, and a negative
scenario fails when its failure has another cause.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from scenario_fakes import LIBRARY, TOKEN, FakeLab, FakeWorld, make

from lab.errors import LabError
from lab.model.topology import Lab
from lab.scenario import runner, steps
from lab.scenario.load import load_scenario, parse_scenario, resolve_labs
from lab.scenario.pool import LabPool
from lab.scenario.report import format_failure, junit_xml, to_json
from lab.scenario.results import Outcome, ScenarioResult
from lab.scenario.runner import check_expectation, run_scenario, run_scenarios


def _sim_runs(path: Path) -> bool:
    return "sim" in load_scenario(path).flavors


# The fake world has no Praefect: the cluster scenarios run against the real sim in
# tests/integration/test_cluster_sim.py.
@pytest.mark.parametrize("path", [p for p in sorted(LIBRARY.glob("*.yaml"))
                                  if _sim_runs(p) and not p.stem.startswith("cluster-")],
                         ids=lambda p: p.stem)
def test_library_passes_against_the_fake_world(tmp_path: Path, path: Path) -> None:
    _labs, up, connect = make(tmp_path)
    (result,) = run_scenarios([load_scenario(path)], up=up, connect=connect)
    assert result.outcome is Outcome.PASSED, format_failure(result)


def test_every_library_scenario_runs_on_the_sim() -> None:
    """The sim has a Praefect (issue 26): the cluster scenarios run there too, including
    cluster-internal-token-mismatch, which waits for Praefect's verdict on the node (the
    `unhealthy` step) instead of a fixed time."""
    assert {p.stem for p in LIBRARY.glob("*.yaml") if not _sim_runs(p)} == set()
    assert all(load_scenario(p).topology == "cluster"
               for p in LIBRARY.glob("cluster-*.yaml"))


def test_negative_scenario_fails_when_the_failure_has_another_cause(tmp_path: Path) -> None:
    # The project "vanishes", so the push fails with 404: the 401 expectation must not pass.
    _labs, up, connect = make(tmp_path, lose_projects=True)
    sc = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    (result,) = run_scenarios([sc], up=up, connect=connect)
    assert result.outcome is Outcome.FAILED
    assert result.evidence is not None
    assert result.evidence.problem.startswith("the output does not match /(?s)remote: GitLab: 401")
    assert "could not be found" in result.evidence.output
    text = format_failure(result)
    assert "nodes.gitaly1.secrets: \"shared\" -> \"own\"" in text
    assert "shell_secret_sha256" in text
    assert "sha256:aaaa" in text


def test_scenarios_share_a_lab_and_only_mutations_are_applied(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    names = ["shared-secrets-push-clone", "gitaly-own-secrets", "tls-push", "gitaly-no-secrets",
             "two-storages", "tls-untrusted-ca"]
    scenarios = [load_scenario(LIBRARY / f"{n}.yaml") for n in names]
    results = run_scenarios(scenarios, up=up, connect=connect)
    assert [r.outcome for r in results] == [Outcome.PASSED] * len(names)
    # tls-push's lab is the plain one with TLS applied (one lab family): it runs after the
    # plain scenarios, though listed in between; the base state's scenarios (two-storages)
    # run before the changed ones.
    assert [r.name for r in results] == [names[i] for i in (0, 4, 1, 3, 2, 5)]
    (lab,) = labs  # one lab for the family
    applies = [c for c in lab.calls if c[0] == "apply"]
    # own secrets, then straight to none (one restart), never back to base in between;
    # mutated states do not wait for the app's Gitaly check; TLS, the base state of
    # tls-push, does; then the untrusted CA on the app.
    assert applies == [("apply", "gitaly1", "False"), ("apply", "gitaly1", "False"),
                       ("apply", "gitaly1", "True"), ("apply", "gitlab", "False")]
    assert lab.calls[-1] == ("down",)
    # Scenario changes wait until the nodes serve, not for Docker's slow first health check.
    assert lab.health_waits == [False] * 4


def test_faults_are_undone_even_when_a_step_fails(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    sc = parse_scenario(textwrap.dedent("""\
        lab: {topology: scaled}
        steps:
          - pause: gitaly1
          - stop: gitaly1
          - api: /api/v4/user
            expect: {outcome: fail, output: nope}
        """), "f.yaml")
    (result,) = run_scenarios([sc], up=up, connect=connect)
    assert result.outcome is Outcome.FAILED
    assert result.evidence is not None
    assert result.evidence.problem == "expected the step to fail, but it succeeded"
    lab = labs[0]
    # Restoring waits until the node serves, not for Docker's slow first health check.
    assert lab.health_waits == [False]
    acts = [c for c in lab.calls if c[0] in ("pause", "stop", "start", "unpause")]
    assert acts == [("pause", "gitaly1"), ("stop", "gitaly1"), ("unpause", "gitaly1"),
                    ("start", "gitaly1")]


def test_a_node_that_cannot_be_restored_discards_the_lab(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    sc = parse_scenario("lab: {topology: scaled}\ngiven:\n  faults: [{stop: gitaly1}]\n"
                        "steps: [{api: /x}]\n", "f.yaml")
    pool = LabPool(leave_at_base=True, up=up)
    labs_ = resolve_labs(sc)
    pool.get(labs_.base)
    labs[0].fail_start = True
    result = run_scenario(sc, labs_, pool, connect=connect)
    assert result.outcome is Outcome.FAILED
    assert "could not start gitaly1 after the scenario" in result.message
    assert labs[0].calls[-1] == ("down",)  # even with leave_at_base: its state is unknown
    assert pool.names() == []


def test_lab_that_cannot_be_mutated_is_an_error(tmp_path: Path) -> None:
    _labs, up, connect = make(tmp_path)

    def broken_apply(*a: Any, **k: Any) -> list[str]:
        raise LabError("node 'gitaly1' is not ready: exited")

    sc = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    pool = LabPool(up=up)
    l2 = resolve_labs(sc)
    pool.get(l2.base).apply = broken_apply  # type: ignore[method-assign]
    result = run_scenario(sc, l2, pool, connect=connect)
    assert result.outcome is Outcome.ERROR
    assert "could not put the lab into this scenario's state: node 'gitaly1'" in result.message


def test_skipped_for_another_flavour(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    sc = parse_scenario("flavors: [omnibus]\nlab: {topology: scaled}\nsteps: [{api: /x}]\n",
                        "o.yaml")
    (result,) = run_scenarios([sc], up=up, connect=connect)
    assert result.outcome is Outcome.SKIPPED
    assert labs == []
    assert "only for omnibus" in result.message


def test_log_expectation_reads_only_the_named_node() -> None:
    sc = parse_scenario("lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect:\n"
                        "      log: {node: gitaly1, pattern: 'JWT rejected'}\n", "l.yaml")
    step = sc.steps[0]
    logs = {"gitlab": "internal API allowed: JWT rejected", "gitaly1": "hook ran"}
    problem = check_expectation(step, True, "", logs.__getitem__, settle=0)
    assert problem == ("no line of gitaly1's log (since the scenario started) matches "
                       "/JWT rejected/")
    logs["gitaly1"] = "x\ninternal API: JWT rejected\n"
    assert check_expectation(step, True, "", logs.__getitem__, settle=0) is None


def test_a_log_line_that_comes_after_the_answer_is_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's log has a line a moment after the node printed it: read again, briefly."""
    monkeypatch.setattr(runner, "LOG_SETTLE_INTERVAL", 0.0)
    sc = parse_scenario("lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect:\n"
                        "      log: {node: gitlab, pattern: 'Unable to save'}\n", "l.yaml")
    reads = iter(["", "", "Unable to save project. Error: 14:"])
    assert check_expectation(sc.steps[0], True, "", lambda node: next(reads)) is None
    never: list[str] = []

    def nothing(node: str) -> str:
        never.append(node)
        return ""

    problem = check_expectation(sc.steps[0], True, "", nothing, settle=0.05)
    assert problem is not None
    assert problem.startswith("no line of gitlab's log")
    assert len(never) > 1  # read again before giving up


def test_reports(tmp_path: Path) -> None:
    _labs, up, connect = make(tmp_path, lose_projects=True)
    results = run_scenarios([load_scenario(LIBRARY / "gitaly-own-secrets.yaml"),
                             load_scenario(LIBRARY / "gitaly-port-not-published.yaml")],
                            up=up, connect=connect)
    data = to_json(results)
    assert data["ok"] is False
    # The base state's scenario first (lab.scenario.plan.by_state).
    assert [s["status"] for s in data["scenarios"]] == ["passed", "failed"]
    assert data["scenarios"][1]["evidence"]["config"]["secrets_policy"] == {
        "gitaly1": "own", "gitlab": "shared"}
    xml = junit_xml(results)
    assert '<testsuite name="gitlab-testlab" tests="2" failures="1"' in xml
    assert "the output does not match" in xml
    # The fake echoed the token in the push output and in the app's log; both are evidence.
    ev = data["scenarios"][1]["evidence"]
    assert "http://root:[REDACTED]@127.0.0.1:1/" in ev["output"]
    assert "PRIVATE-TOKEN [REDACTED]" in ev["logs"]["gitlab"]
    assert TOKEN not in xml
    assert TOKEN not in json.dumps(data)


def test_restoring_a_fault_in_a_mutated_lab_does_not_wait_for_gitaly(tmp_path: Path) -> None:
    # A wrong token breaks app -> Gitaly on purpose: waiting for that check after
    # `start` (or after undoing the fault) would time out.
    labs, up, connect = make(tmp_path)
    sc = parse_scenario(textwrap.dedent("""\
        lab: {topology: scaled}
        given:
          set: {nodes.gitaly1.gitaly_token: not-the-token-the-app-uses-0123456789}
          faults: [{pause: gitaly1}]
        steps:
          - stop: gitaly1
          - start: gitaly1
          - stop: gitaly1
        """), "f.yaml")
    plain = parse_scenario("lab: {topology: scaled}\nsteps:\n  - stop: gitaly1\n"
                           "  - start: gitaly1\n", "p.yaml")
    results = run_scenarios([sc, plain], up=up, connect=connect)
    assert [r.outcome for r in results] == [Outcome.PASSED, Outcome.PASSED]
    (lab,) = labs
    waits = [c for c in lab.calls if c[0] == "wait_ready"]
    # base (run first, lab.scenario.plan.by_state): after `start`; mutated: after `start`,
    # after undoing stop + pause.
    assert waits == [("wait_ready", "True"), ("wait_ready", "False"), ("wait_ready", "False")]


def test_a_restored_node_s_wait_asks_what_its_return_can_have_changed(tmp_path: Path) -> None:
    """As after a change: the nodes that came back (also one started while another was
    still down, so not waited for then), not every node's services, the database layers
    or the app's token."""
    labs, up, connect = make(tmp_path)
    sc = parse_scenario(textwrap.dedent("""\
        lab: {topology: scaled}
        given:
          faults: [{pause: gitlab}]
        steps:
          - stop: gitaly1
          - start: gitaly1
          - stop: gitaly1
          - stop: gitlab
          - start: gitaly1
          - start: gitlab
          - stop: gitaly1
        """), "f.yaml")
    results = run_scenarios([sc], up=up, connect=connect)
    assert [r.outcome for r in results] == [Outcome.PASSED], results[0].message
    (lab,) = labs
    one, both = (("gitaly1",),) * 3, (("gitaly1", "gitlab"),) * 3
    # After the first start; after the second pair (gitaly1 came back while gitlab was
    # down); after the runner undid the stop of gitaly1 and the pause of gitlab.
    assert lab.asked == [one, both, both]


# --- release matrix -------------------------------------------------------------

MATRIX = ["15.9.8", "17.11.7", "19.3.0"]  # legacy dialect, 15.10+ gitaly config, 18.0+ storages


def test_a_matrix_runs_each_scenario_per_release_and_pinned_ones_once(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    free = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    pinned = parse_scenario("lab: {topology: scaled, version: '16.11.10'}\n"
                            "steps:\n  - api: /api/v4/user\n", "pinned.yaml")
    results = run_scenarios([free, pinned], versions=MATRIX, up=up, connect=connect)
    assert [(r.name, r.release, r.outcome) for r in results] == [
        ("gitaly-own-secrets", "15.9.8", Outcome.PASSED),
        ("gitaly-own-secrets", "17.11.7", Outcome.PASSED),
        ("gitaly-own-secrets", "19.3.0", Outcome.PASSED),
        ("pinned", "16.11.10", Outcome.PASSED)]
    # One lab per release (each speaks its own dialect), all different.
    assert [str(fake.lab.version) for fake in labs] == [*MATRIX, "16.11.10"]
    assert len({fake.name for fake in labs}) == 4

    xml = junit_xml(results)
    for release in MATRIX:
        assert f'name="gitaly-own-secrets[{release}]"' in xml
    assert 'name="pinned[16.11.10]"' in xml
    assert [s["release"] for s in to_json(results)["scenarios"]] == [*MATRIX, "16.11.10"]


def test_one_release_keeps_plain_names(tmp_path: Path) -> None:
    _labs, up, connect = make(tmp_path)
    results = run_scenarios([load_scenario(LIBRARY / "gitaly-own-secrets.yaml")],
                            versions=["17.11.7"], up=up, connect=connect)
    assert results[0].release == "17.11.7"
    assert 'name="gitaly-own-secrets"' in junit_xml(results)


def test_matrix_table_is_release_by_scenario(tmp_path: Path) -> None:
    from rich.console import Console

    from lab.scenario.report import results_table

    _labs, up, connect = make(tmp_path, lose_projects=True)
    results = run_scenarios([load_scenario(LIBRARY / "gitaly-own-secrets.yaml")],
                            versions=["15.9.8", "19.3.0"], up=up, connect=connect)
    console = Console(width=200, record=True)
    console.print(results_table(results))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "scenario" in line and "15.9.8" in line)
    assert header.index("15.9.8") < header.index("19.3.0")
    row = next(line for line in text.splitlines() if "gitaly-own-secrets" in line)
    assert row.count("failed") == 2


def test_results_table_shows_a_message_as_text_not_markup() -> None:
    from rich.console import Console

    from lab.scenario.report import results_table

    # A failure message quotes outputs and patterns; "[/a-z]" is a closing tag to Rich.
    r = ScenarioResult("s", "s.yaml", Outcome.FAILED, 1.0, message="no match for [/a-z]+ [red]x")
    console = Console(width=200, record=True)
    console.print(results_table([r]))
    assert "no match for [/a-z]+ [red]x" in console.export_text()


def test_a_failure_names_its_release_and_bundle() -> None:
    r = ScenarioResult("s", "s.yaml", Outcome.FAILED, 1.0, message="boom", lab="sc-x",
                       release="15.9.8", bundle="/tmp/b.tar.gz")
    text = format_failure(r)
    assert text.splitlines()[0] == "scenario s (s.yaml) failed on lab sc-x (GitLab 15.9.8)"
    assert text.splitlines()[-1] == \
        "evidence bundle of the failed lab (lab collect): /tmp/b.tar.gz"
    assert '<property name="lab_collect_bundle" value="/tmp/b.tar.gz" />' in junit_xml([r])


# --- evidence on failure --------------------------------------------------------------

def test_a_failure_is_bundled_before_its_faults_and_changes_are_undone(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    seen: list[tuple[str, set[str], str]] = []

    def collect(running: Any, stem: str) -> Path:
        # What the bundle would see: the scenario's own state, fault included.
        seen.append((stem, set(running.stopped), running.lab.node("gitaly1").secrets.value))
        return tmp_path / f"{stem}.tar.gz"

    sc = parse_scenario(textwrap.dedent("""\
        lab: {topology: scaled}
        given:
          set: {nodes.gitaly1.secrets: own}
          faults: [stop: gitaly1]
        steps:
          - api: /api/v4/user
            expect: {outcome: fail, output: nope}
        """), "f.yaml")
    # Another changed state, so it runs after the failure (base-state scenarios run first).
    ok = load_scenario(LIBRARY / "gitaly-no-secrets.yaml")
    (failed, passed) = run_scenarios([sc, ok], up=up, connect=connect, collect=collect,
                                     versions=["17.11.7"])
    [(stem, stopped, secrets)] = seen  # only the failure is bundled
    assert stem.startswith("f-17.11.7-")
    assert (stopped, secrets) == ({"gitaly1"}, "own")
    assert failed.outcome is Outcome.FAILED
    assert failed.bundle == str(tmp_path / f"{stem}.tar.gz")
    assert "evidence bundle of the failed lab (lab collect): " + failed.bundle in \
        format_failure(failed)
    # ...then restored: the next scenario got its lab back (started, its own secrets).
    assert passed.outcome is Outcome.PASSED, format_failure(passed)
    assert labs[0].stopped == set()
    assert labs[0].lab.node("gitaly1").secrets.value == "none"
    assert to_json([failed])["scenarios"][0]["bundle"] == failed.bundle


def test_a_bundle_that_cannot_be_written_is_said_not_fatal(tmp_path: Path) -> None:
    _labs, up, connect = make(tmp_path, lose_projects=True)

    def collect(running: Any, stem: str) -> Path:
        raise OSError("No space left on device")

    (result,) = run_scenarios([load_scenario(LIBRARY / "gitaly-own-secrets.yaml")], up=up,
                              connect=connect, collect=collect)
    assert result.outcome is Outcome.FAILED
    assert result.bundle == ""
    assert result.message.endswith("(could not write the evidence bundle: No space left on "
                                   "device)")


def test_api_file_change_tracks_files_written_through_the_api() -> None:
    from lab.scenario.steps import api_file_change

    path = "/api/v4/projects/{p1}/repository/files/docs%2Fa.txt"
    assert api_file_change("post", path, {"branch": "main", "content": "x\n"}) == (
        "p1", "docs/a.txt", "x\n")
    assert api_file_change("DELETE", path, {"branch": "main"}) == ("p1", "docs/a.txt", None)
    # Other branches, base64 content and reads are not what a clone of main shows.
    assert api_file_change("POST", path, {"branch": "topic", "content": "x"}) is None
    assert api_file_change("POST", path, {"content": "eA==", "encoding": "base64"}) is None
    assert api_file_change("GET", path, {"branch": "main"}) is None
    assert api_file_change("POST", "/api/v4/projects/{p1}/repository/commits", {}) is None


def test_groups_run_side_by_side_and_results_keep_plan_order(tmp_path: Path) -> None:
    import threading

    labs, up, connect = make(tmp_path)
    both = threading.Barrier(2, timeout=10)  # passes only if two groups boot at once

    def boot(lab: Lab) -> Any:
        both.wait()
        return up(lab)

    # Two releases: a lab each.
    names = ["shared-secrets-push-clone", "gitaly-own-secrets"]
    scenarios = [load_scenario(LIBRARY / f"{n}.yaml") for n in names]
    seen: list[str] = []
    results = run_scenarios(scenarios, versions=["16.11.10", "19.3.0"], up=boot,
                            connect=connect, jobs=2, on_result=lambda r: seen.append(r.name))
    assert [r.name for r in results] == names * 2  # plan order: release by release
    assert len({results[0].lab, results[2].lab}) == 2
    assert all(r.outcome is Outcome.PASSED for r in results)
    assert sorted(seen) == sorted(names * 2)
    assert len(labs) == 2
    assert all(fake.calls[-1] == ("down",) for fake in labs)


def test_images_are_made_present_once_before_labs_boot_side_by_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.lifecycle import lab_image
    made: list[str] = []
    monkeypatch.setattr(lab_image, "ensure_image", lambda lab, image, progress=None:
                        made.append(image))
    plain = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    tls = resolve_labs(load_scenario(LIBRARY / "tls-push.yaml")).base
    runner._images_first([plain, tls, plain])
    assert len(made) == 1  # one sim image serves both labs: built once, before the threads


def _restart_scenario() -> Any:
    return parse_scenario(textwrap.dedent("""\
        lab: {topology: scaled}
        steps:
          - create_project: {project: p1, storage: default}
          - stop: gitaly1
          - start: gitaly1
          - push: p1
        """), "r.yaml")


def test_after_a_restart_git_waits_until_it_reaches_gitaly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readiness passes while Workhorse's connection still backs off: the runner waits."""
    monkeypatch.setattr(steps, "SETTLE_INTERVAL", 0.0)
    _labs, up, connect = make(tmp_path)
    world: list[FakeWorld] = []

    def connect_and_break(running: FakeLab) -> FakeWorld:
        w = connect(running)
        w.settle_failures = 2
        world.append(w)
        return w

    (result,) = run_scenarios([_restart_scenario()], up=up, connect=connect_and_break)
    assert result.outcome is Outcome.PASSED, format_failure(result)
    # Two failures while "backing off", then the call that got through.
    assert len(world[0].ls_remotes) == 3
    assert len(set(world[0].ls_remotes)) == 1
    start = next(s for s in result.steps if "start" in s.label)
    assert "git over HTTP reaches it" in start.output


def test_a_gitaly_that_git_never_reaches_again_fails_the_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "SETTLE_INTERVAL", 0.0)
    monkeypatch.setattr(steps, "SETTLE_TIMEOUT", 0.0)
    _labs, up, connect = make(tmp_path)

    def connect_and_break(running: FakeLab) -> FakeWorld:
        w = connect(running)
        w.settle_failures = 10**6
        return w

    (result,) = run_scenarios([_restart_scenario()], up=up, connect=connect_and_break)
    assert result.outcome is Outcome.FAILED
    assert result.evidence is not None
    assert "git over HTTP still fails" in result.evidence.output
    assert "The git server, Gitaly, is not available" in result.evidence.output


def test_ctrl_c_stops_groups_side_by_side_after_their_current_scenario(tmp_path: Path) -> None:
    import signal
    import threading
    import time

    labs, up, connect = make(tmp_path)
    both = threading.Barrier(2, timeout=10)
    started: list[str] = []
    lock = threading.Lock()
    # Set by the main thread as it takes the Ctrl-C: on a loaded machine the signal can
    # reach the main thread later than any fixed sleep, so the groups wait for it.
    noticed = threading.Event()

    def take_ctrl_c(signum: int, frame: Any) -> None:
        noticed.set()
        signal.default_int_handler(signum, frame)

    def boot(lab: Lab) -> Any:
        both.wait()
        return up(lab)

    def connect_slowly(running: Any) -> Any:
        with lock:
            started.append(running.name)
            first = len(started) == 1
        if first:  # Ctrl-C, as the terminal delivers it: to the main thread
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        assert noticed.wait(10)
        time.sleep(0.5)  # both groups are in their first scenario when it comes
        return connect(running)

    names = ["shared-secrets-push-clone", "gitaly-own-secrets"]
    scenarios = [load_scenario(LIBRARY / f"{n}.yaml") for n in names]
    before = signal.signal(signal.SIGINT, take_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_scenarios(scenarios, versions=["16.11.10", "19.3.0"], up=boot,
                          connect=connect_slowly, jobs=2)
    finally:
        signal.signal(signal.SIGINT, before)
    # Each group ends its current scenario and stops: not the whole run first.
    assert len(started) == 2
    assert len(labs) == 2
    assert all(fake.calls[-1] == ("down",) for fake in labs)


def test_junit_classname_is_relative_and_dot_free(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.resources import data_dir
    from lab.scenario.report import junit_classname

    builtin = str(data_dir("scenarios") / "tls-push.yaml")  # site-packages/lab/_data/... in a wheel
    mine = tmp_path / "v1.2" / "case.yaml"
    monkeypatch.chdir(tmp_path)
    assert junit_classname(builtin) == "scenarios/tls-push"
    assert junit_classname(str(mine)) == "v1_2/case"
    assert junit_classname("/elsewhere/other.case.yaml") == "other_case"
    r = ScenarioResult("tls-push", builtin, Outcome.PASSED, 1.0)
    assert 'classname="scenarios/tls-push"' in junit_xml([r])


def test_lab_run_on_an_existing_lab_changes_it_and_puts_it_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.scenario.plan import plan_on
    from lab.spec.labspec import SpecRequest, resolve

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    mine = resolve(SpecRequest(topology="scaled", name="mine"))
    fake = FakeLab(mine, tmp_path / "mine")
    booted, _up, connect = make(tmp_path)
    planned = plan_on([load_scenario(LIBRARY / "gitaly-own-secrets.yaml"),
                       load_scenario(LIBRARY / "tls-push.yaml")], mine)
    results = runner.run_plan(planned, connect=connect, on=fake)
    by_name = {r.name: r for r in results}
    assert by_name["gitaly-own-secrets"].outcome is Outcome.PASSED
    assert by_name["gitaly-own-secrets"].lab == "mine"
    # Made for a TLS lab: skipped, saying what differs.
    assert by_name["tls-push"].outcome is Outcome.SKIPPED
    assert "nodes.gitaly1.tls: false -> true" in by_name["tls-push"].message
    assert booted == []  # nothing booted
    applied = [c for c in fake.calls if c[0] == "apply"]
    assert applied == [("apply", "gitaly1", "False"), ("apply", "gitaly1", "True")]
    assert ("down",) not in fake.calls  # the user's lab stays up, as it was
    assert fake.lab == mine


def test_lab_run_on_a_lab_refuses_scenarios_made_for_another() -> None:
    from lab.scenario.plan import plan_on
    from lab.spec.labspec import SpecRequest, resolve

    old = resolve(SpecRequest(topology="scaled", name="old", version="17.11.7"))
    with pytest.raises(LabError, match=r"tls-push.yaml: this scenario needs another lab than "
                       r"lab 'old' .*nodes.gitaly1.tls: false -> true"):
        plan_on([load_scenario(LIBRARY / "tls-push.yaml")], old)
    pinned = parse_scenario("lab: {topology: scaled, version: '18.11.1'}\nsteps:\n"
                            "  - api: /api/v4/user\n", "pinned.yaml")
    with pytest.raises(LabError, match=r'version: "17.11.7" -> "18.11.1"'):
        plan_on([pinned], old)


def test_a_borrowed_lab_is_put_back_never_downed(tmp_path: Path) -> None:
    from lab.spec.labspec import SpecRequest, resolve

    mine = resolve(SpecRequest(topology="scaled", name="mine"))
    broken = resolve(SpecRequest(topology="scaled", name="mine",
                                 sets=("nodes.gitaly1.secrets=own",)))
    fake = FakeLab(mine, tmp_path / "mine")
    with LabPool(up=lambda lab: fake, borrowed=True) as pool:
        pool.get(mine, broken)
        pool.discard("mine")  # state unknown: a pool's own lab would be downed here
        assert fake.lab == mine
        pool.get(mine, broken)
    assert fake.lab == mine
    assert ("down",) not in fake.calls


def test_run_warnings_reach_json_and_junit() -> None:
    r = ScenarioResult("tls-push", "tls-push.yaml", Outcome.PASSED, 1.0)
    warning = "gitlab/gitlab-ce:19.3.0-ce.0 is gitlab-testlab's sim image, not GitLab"
    data = to_json([r], [warning])
    assert data["schema_version"] == 1
    assert data["warnings"] == [warning]
    assert f'<property name="lab_warning" value="{warning}" />' in junit_xml([r],
                                                                         warnings=[warning])
    assert "lab_warning" not in junit_xml([r])


@pytest.mark.parametrize("version", ["11.11.8", "12.8.10", "12.10.14", "19.3.0"])
def test_a_project_lands_on_its_storage_on_every_release(tmp_path: Path, version: str) -> None:
    """CE before 12.9 drops repository_storage (the fake world does too): the step places
    the project through the admin setting there, and passes either side of the boundary."""
    _labs, up, connect = make(tmp_path)
    sc = load_scenario(LIBRARY / "two-storages.yaml")
    (result,) = run_scenarios([sc], versions=[version], up=up, connect=connect)
    assert result.outcome is Outcome.PASSED, format_failure(result)
