"""The runner against a fake lab: grouping, mutations and reverts, faults, evidence.

The fake "world" answers like GitLab would for the lab state it is in, so the
built-in library runs here without Docker and a negative scenario is shown to
fail when the failure has another cause.
"""

from __future__ import annotations

import json
import re
import textwrap
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lab.client.gitlab import ApiResponse, GitResult
from lab.engine.run import Redactor, Result
from lab.errors import EngineError, LabError
from lab.model.lab import Lab, SecretsPolicy
from lab.omnibus import eras
from lab.scenario import plan, pool, releases, runner, steps
from lab.scenario.load import load_scenario, parse_scenario, resolve_labs
from lab.scenario.pool import LabPool
from lab.scenario.report import format_failure, junit_xml, to_json
from lab.scenario.results import Outcome, ScenarioResult
from lab.scenario.runner import check_expectation, run_scenario, run_scenarios

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
TOKEN = "glpat-0123456789abcdef0123"


@dataclass
class FakeLab:
    """A RunningLab stand-in whose behaviour follows its current ``Lab``."""

    lab: Lab
    path: Path
    calls: list[tuple[str, ...]] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)
    logs_by_node: dict[str, str] = field(default_factory=dict)
    repos: dict[str, str] = field(default_factory=dict)  # hashed path -> node:storage path
    fail_start: bool = False
    health_waits: list[bool] = field(default_factory=list)  # docker_health of each wait
    # Knows no secret: the runner must add the admin token itself.
    redactor: Redactor = field(default_factory=Redactor)

    def __post_init__(self) -> None:
        self.name = self.lab.name
        self.path.mkdir(parents=True, exist_ok=True)
        self._manifest()

    def _manifest(self) -> None:
        nodes = {n.name: {"secrets_policy": n.secrets.value,
                          "shell_secret_sha256": "sha256:aaaa",
                          "gitaly_token_sha256": "sha256:bbbb", "tls": n.tls}
                 for n in self.lab.nodes}
        (self.path / "manifest.json").write_text(json.dumps({"nodes": nodes}))

    http_url = "http://127.0.0.1:1"
    admin_token = TOKEN

    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result:
        self.calls.append(("exec", node, *cmd))
        if node in self.stopped:
            raise EngineError(["exec", node], 1, f"container {node} is not running")
        if cmd[:2] == ["test", "-d"]:
            rc = 0 if self.repos.get(cmd[2].rsplit("/@hashed/", 1)[1]) == f"{node}:{cmd[2]}" else 1
            return Result(cmd, rc, "", "")
        if "bash" in cmd:
            up = cmd[-2] not in self.stopped
            return Result(cmd, 0 if up else 1, "", "" if up else "Connection refused")
        return Result(cmd, 0, "ok\n", "")

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        return self.logs_by_node.get(node, "")

    def log(self, node: str, line: str) -> None:
        self.logs_by_node[node] = self.logs_by_node.get(node, "") + line + "\n"

    def act(self, node: str, verb: str) -> None:
        self.calls.append((verb, node))
        if verb == "start" and self.fail_start:
            raise LabError(f"cannot start {node}")
        if verb == "stop":
            self.stopped.add(node)
        if verb == "start":
            self.stopped.discard(node)

    def apply(self, new_lab: Lab, *, timeout: float = 0, progress: Any = None,
              wait_gitaly: bool = True, docker_health: bool = True) -> list[str]:
        changed = [n.name for n in new_lab.nodes if n != self.lab.node(n.name)]
        self.health_waits.append(docker_health)
        self.calls.append(("apply", ",".join(changed), str(wait_gitaly)))
        self.lab = new_lab
        self._manifest()
        return changed

    def wait_ready(self, *, timeout: float = 0, progress: Any = None,
                   wait_gitaly: bool = True, docker_health: bool = True) -> None:
        self.calls.append(("wait_ready", str(wait_gitaly)))
        self.health_waits.append(docker_health)

    def status(self) -> Any:
        return SimpleNamespace(nodes=[
            SimpleNamespace(node=n.name, ports={"80/tcp": "127.0.0.1:40000"} if n.is_app else {})
            for n in self.lab.nodes])

    def down(self, *, purge: bool = False) -> None:
        self.calls.append(("down",))


class FakeWorld:
    """API and git answers for the fake lab's current state (the sim's messages)."""

    def __init__(self, running: FakeLab, *, lose_projects: bool = False) -> None:
        self.running = running
        self.projects: dict[str, dict[str, Any]] = {}
        self.content: dict[str, dict[str, str]] = {}
        self.lose_projects = lose_projects
        self.ls_remotes: list[str] = []
        #: How many ls-remote calls fail after a restart (a channel still backing off).
        self.settle_failures = 0
        self.api = self
        self.git = self

    @property
    def gitaly(self) -> Any:
        return self.running.lab.node("gitaly1")

    def _gitaly_error(self) -> tuple[int, str] | None:
        """The gRPC code and details the app would meet calling Gitaly now."""
        lab = self.running.lab
        if "gitaly1" in self.running.stopped:
            return 14, "failed to connect to all addresses"
        if self.gitaly.gitaly_token is not None:
            return 7, "permission denied"
        if self.gitaly.tls and not lab.app.trust_ca:
            return 14, "failed to connect to all addresses; last error: CERTIFICATE_VERIFY_FAILED"
        if self.gitaly.tls and "gitaly1" not in self.gitaly.san_names:
            return 14, "failed to connect; Peer name gitaly1 is not in peer certificate"
        return None

    def _log_json(self, record: dict[str, Any]) -> None:
        self.running.log("gitlab", json.dumps(record, separators=(",", ":")))

    def _workhorse_failure(self, path: str, code: int, details: str) -> GitResult:
        # The texts real GitLab shows, from the one place the sim takes them too.
        answer = eras.workhorse_info_refs_failed(eras.NEWEST, code, details, "GET",
                                                 f"/{path}.git/info/refs")
        self._log_json(answer.log)
        return GitResult([], 128, f"remote: {answer.body.strip()}\nfatal: unable to access "
                         f"'http://127.0.0.1:1/{path}.git/': The requested URL returned error: "
                         f"{answer.status}")

    # API
    def call(self, method: str, path: str, *, data: Any = None, params: Any = None
             ) -> ApiResponse:
        files = re.match(r"/api/v4/projects/([^/]+)/repository/files/([^/?]+)(/raw)?", path)
        if files is None:
            return ApiResponse(method, path, 200, '{"username": "root"}')
        project, name = urllib.parse.unquote(files[1]), urllib.parse.unquote(files[2])
        if method == "POST":
            self.content.setdefault(project, {})[name] = data["content"]
            return ApiResponse(method, path, 201, json.dumps(
                {"file_path": name, "branch": data["branch"]}))
        return ApiResponse(method, path, 200, self.content[project][name])

    def create_project_raw(self, name: str, *, storage: str | None = None) -> ApiResponse:
        err = self._gitaly_error()
        if err:
            failure = eras.project_exists_check_failed(*err)
            for _, record in failure.logs:
                self._log_json(record)
            return ApiResponse("POST", "/api/v4/projects", failure.status, failure.body_text())
        pid = len(self.projects) + 1
        import hashlib

        digest = hashlib.sha256(str(pid).encode()).hexdigest()
        disk = f"{digest[:2]}/{digest[2:4]}/{digest}.git"
        node = self.running.lab.storages[storage or "default"]
        spath = next(s for s in node.storages if s.name == (storage or "default"))
        self.running.repos[disk] = f"{node.name}:{spath.repositories_path}/@hashed/{disk}"
        data = {"id": pid, "path_with_namespace": f"root/{name}",
                "repository_storage": storage or "default"}
        if not self.lose_projects:
            self.projects[f"root/{name}"] = data
        return ApiResponse("POST", "/api/v4/projects", 201, json.dumps(data))

    def get_project(self, ref: Any) -> dict[str, Any]:
        return self.projects[str(ref)]

    # git
    def push(self, path: str, files: dict[str, str], *, branch: str = "main") -> GitResult:
        if path not in self.projects:
            # The admin token in the output and the app's log: the runner must redact both.
            self.running.log("gitlab", f"puma: error: 404 for {path} (PRIVATE-TOKEN {TOKEN})")
            return GitResult([], 128, "remote: The project you were looking for could not be "
                             f"found.\nfatal: repository 'http://root:{TOKEN}@127.0.0.1:1/"
                             f"{path}.git' not found")
        err = self._gitaly_error()
        if err:
            return self._workhorse_failure(path, *err)
        if self.gitaly.secrets is not SecretsPolicy.SHARED:
            return GitResult([], 1, "remote: GitLab: 401 Unauthorized\n ! [remote rejected] "
                             "HEAD -> main (pre-receive hook declined)")
        if self.gitaly.internal_api_url is not None:
            return GitResult([], 1, "remote: GitLab: Internal API unreachable\n ! [remote "
                             "rejected] HEAD -> main (pre-receive hook declined)")
        self.content.setdefault(path, {}).update(files)
        return GitResult([], 0, "To http://127.0.0.1:1/x.git\n * [new branch] HEAD -> main")

    def clone_and_compare(self, path: str, expected: dict[str, str]) -> GitResult:
        err = self._gitaly_error()
        if err:
            return self._workhorse_failure(path, *err)
        ok = all(self.content.get(path, {}).get(k) == v for k, v in expected.items())
        names = ", ".join(sorted(expected)) or "no files"
        return GitResult([], 0 if ok else 1, f"cloned; content matches ({names})" if ok
                         else "differs")

    def ls_remote(self, path: str) -> GitResult:
        self.ls_remotes.append(path)
        if self.settle_failures:
            self.settle_failures -= 1
            return self._workhorse_failure(path, 14, "connection refused")
        err = self._gitaly_error()
        return self._workhorse_failure(path, *err) if err else GitResult([], 0, "refs")


def make(tmp_path: Path, *, lose_projects: bool = False) -> tuple[list[FakeLab], Any, Any]:
    labs: list[FakeLab] = []
    worlds: dict[int, FakeWorld] = {}

    def up(lab: Lab) -> FakeLab:
        fake = FakeLab(lab, tmp_path / lab.name)
        labs.append(fake)
        return fake

    def connect(running: FakeLab) -> FakeWorld:
        world = worlds.get(id(running))
        if world is None:
            world = worlds[id(running)] = FakeWorld(running, lose_projects=lose_projects)
        return world

    return labs, up, connect


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_library_passes_against_the_fake_world(tmp_path: Path, path: Path) -> None:
    _labs, up, connect = make(tmp_path)
    (result,) = run_scenarios([load_scenario(path)], up=up, connect=connect)
    assert result.outcome is Outcome.PASSED, format_failure(result)


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
    # tls-push's group is run after the plain group, though listed in between.
    assert [r.name for r in results] == [names[i] for i in (0, 1, 3, 4, 2, 5)]
    assert len(labs) == 2  # one per base lab
    plain, tls = labs
    applies = [c for c in plain.calls if c[0] == "apply"]
    # own secrets, then straight to none (one restart), then back to base for two-storages;
    # mutated states do not wait for the app's Gitaly check, the base does.
    assert applies == [("apply", "gitaly1", "False"), ("apply", "gitaly1", "False"),
                       ("apply", "gitaly1", "True")]
    assert plain.calls[-1] == ("down",)
    assert [c for c in tls.calls if c[0] == "apply"] == [("apply", "gitlab", "False")]
    # Scenario changes wait until the nodes serve, not for Docker's slow first health check.
    assert plain.health_waits == [False, False, False]


def test_keep_leaves_labs_up_in_their_base_state(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    sc = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    run_scenarios([sc], leave_at_base=True, up=up, connect=connect)
    (lab,) = labs
    assert ("down",) not in lab.calls
    assert lab.calls[-1] == ("apply", "gitaly1", "True")
    assert lab.lab.node("gitaly1").secrets is SecretsPolicy.SHARED


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
    problem = check_expectation(step, True, "", logs.__getitem__)
    assert problem == ("no line of gitaly1's log (since the scenario started) matches "
                       "/JWT rejected/")
    logs["gitaly1"] = "x\ninternal API: JWT rejected\n"
    assert check_expectation(step, True, "", logs.__getitem__) is None


def test_reports(tmp_path: Path) -> None:
    _labs, up, connect = make(tmp_path, lose_projects=True)
    results = run_scenarios([load_scenario(LIBRARY / "gitaly-own-secrets.yaml"),
                             load_scenario(LIBRARY / "gitaly-port-not-published.yaml")],
                            up=up, connect=connect)
    data = to_json(results)
    assert data["ok"] is False
    assert [s["status"] for s in data["scenarios"]] == ["failed", "passed"]
    assert data["scenarios"][0]["evidence"]["config"]["secrets_policy"] == {
        "gitaly1": "own", "gitlab": "shared"}
    xml = junit_xml(results)
    assert '<testsuite name="gitlab-testlab" tests="2" failures="1"' in xml
    assert "the output does not match" in xml
    # The fake echoed the token in the push output and in the app's log; both are evidence.
    ev = data["scenarios"][0]["evidence"]
    assert "http://root:[REDACTED]@127.0.0.1:1/" in ev["output"]
    assert "PRIVATE-TOKEN [REDACTED]" in ev["logs"]["gitlab"]
    assert TOKEN not in xml
    assert TOKEN not in json.dumps(data)


def test_a_failed_apply_is_reapplied_by_the_next_get(tmp_path: Path) -> None:
    labs, up, _connect = make(tmp_path)
    l2 = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml"))
    pool = LabPool(leave_at_base=True, up=up)
    pool.get(l2.base)
    (fake,) = labs
    real_apply = fake.apply
    failures = [LabError("node 'gitaly1' is not ready: exited")]

    def flaky_apply(new_lab: Lab, **kw: Any) -> list[str]:
        if failures:
            raise failures.pop()
        return real_apply(new_lab, **kw)

    fake.apply = flaky_apply  # type: ignore[method-assign]
    with pytest.raises(LabError, match="not ready"):
        pool.get(l2.base, l2.target)
    # The state is unknown now: even the base state is applied again, not assumed.
    assert pool.get(l2.base) is fake
    assert fake.calls[-1] == ("apply", "", "True")
    failures.append(LabError("not ready again"))
    with pytest.raises(LabError, match="again"):
        pool.get(l2.base, l2.target)
    pool.release(l2.base.name)  # leave_at_base: back to base, re-applied since the state is unknown
    assert fake.calls[-1] == ("apply", "", "True")
    assert ("down",) not in fake.calls
    assert len(labs) == 1


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
    # mutated: after `start`, after undoing stop + pause; base: after `start`.
    assert waits == [("wait_ready", "False"), ("wait_ready", "False"), ("wait_ready", "True")]


def test_default_up_waits_only_when_apply_changed_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.lifecycle import handle as lifecycle
    wanted = resolve_labs(load_scenario(LIBRARY / "tls-push.yaml")).base
    kept = {"state": resolve_labs(load_scenario(LIBRARY / "two-storages.yaml")).base}
    attached: list[FakeLab] = []

    def already_up(*a: Any, **k: Any) -> Any:
        raise lifecycle.LabAlreadyUp("kept by an earlier --keep run")

    def attach(name: str) -> FakeLab:
        attached.append(FakeLab(kept["state"], tmp_path / name))
        return attached[-1]

    monkeypatch.setattr(lifecycle, "up", already_up)
    monkeypatch.setattr(lifecycle, "attach", attach)
    pool.default_up(wanted)  # the kept lab differs: apply restarts and waits by itself
    assert [c[0] for c in attached[-1].calls] == ["apply"]
    kept["state"] = wanted
    pool.default_up(wanted)  # nothing to apply: wait for the (maybe still starting) lab
    assert [c[0] for c in attached[-1].calls] == ["apply", "wait_ready"]


@dataclass
class FakeClaim:
    """A claim another run holds until ``busy`` is cleared; records what the pool does."""

    name: str
    events: list[str]
    busy: bool = False

    def acquire(self, *, wait: bool) -> bool:
        if self.busy and not wait:
            self.events.append(f"busy {self.name}")
            return False
        self.events.append(f"acquire {self.name} wait={wait}")
        return True

    def release(self) -> None:
        self.events.append(f"release {self.name}")


def test_a_lab_in_use_elsewhere_is_waited_for_and_claims_are_released(tmp_path: Path) -> None:
    labs, up, _connect = make(tmp_path)
    events: list[str] = []
    said: list[str] = []
    base = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    pool = LabPool(up=up, claim=lambda n: FakeClaim(n, events, busy=True), say=said.append)
    pool.get(base)
    # Claimed before the boot, by waiting once the quick try found it busy.
    assert events == [f"busy {base.name}", f"acquire {base.name} wait=True"]
    assert f"waiting: another run is using lab {base.name}" in said
    pool.close()
    assert events[-1] == f"release {base.name}"
    assert labs[0].calls[-1] == ("down",)


def test_a_failed_boot_releases_its_claim(tmp_path: Path) -> None:
    events: list[str] = []

    def up(lab: Lab) -> Any:
        raise LabError("image missing")

    base = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    pool = LabPool(up=up, claim=lambda n: FakeClaim(n, events))
    with pytest.raises(LabError):
        pool.get(base)
    assert events == [f"acquire {base.name} wait=False", f"release {base.name}"]


def test_a_pool_lets_go_of_its_labs_before_waiting_for_another(tmp_path: Path) -> None:
    labs, up, _connect = make(tmp_path)
    events: list[str] = []
    plain = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    tls = resolve_labs(load_scenario(LIBRARY / "tls-push.yaml")).base
    pool = LabPool(up=up, max_labs=2,
                   claim=lambda n: FakeClaim(n, events, busy=n == tls.name))
    pool.get(plain)
    pool.get(tls)
    # Holding the plain lab while waiting for the TLS one could deadlock with a
    # worker that holds the TLS lab and waits for the plain one.
    assert events == [f"acquire {plain.name} wait=False", f"busy {tls.name}",
                      f"release {plain.name}", f"acquire {tls.name} wait=True"]
    assert labs[0].calls[-1] == ("down",)
    assert pool.names() == [tls.name]
    pool.close()


# --- release matrix -------------------------------------------------------------

MATRIX = ["15.9.8", "17.11.7", "19.3.0"]  # legacy dialect, 15.10+ gitaly config, 18.0+ storages


def test_parse_versions() -> None:
    assert releases.parse_versions(None) == [None]
    assert releases.parse_versions("17.11.7") == ["17.11.7"]
    assert releases.parse_versions(" 15.9.8,17.11.7 ,15.9.8") == ["15.9.8", "17.11.7"]
    with pytest.raises(ValueError, match=r"'17\.11' is not a GitLab version"):
        releases.parse_versions("15.9.8,17.11")


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
    ok = load_scenario(LIBRARY / "shared-secrets-push-clone.yaml")
    (failed, passed) = run_scenarios([sc, ok], up=up, connect=connect, collect=collect,
                                     versions=["17.11.7"])
    [(stem, stopped, secrets)] = seen  # only the failure is bundled
    assert stem.startswith("f-17.11.7-")
    assert (stopped, secrets) == ({"gitaly1"}, "own")
    assert failed.outcome is Outcome.FAILED
    assert failed.bundle == str(tmp_path / f"{stem}.tar.gz")
    assert "evidence bundle of the failed lab (lab collect): " + failed.bundle in \
        format_failure(failed)
    # ...then restored: the next scenario got its lab back (started, base secrets).
    assert passed.outcome is Outcome.PASSED, format_failure(passed)
    assert labs[0].stopped == set()
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


def test_room_for_counts_cores_and_memory() -> None:
    sim = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    omni = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml"), flavor="omnibus").base
    gib = 2**30
    assert plan.room_for([sim, sim, sim], cpus=2, available=8 * gib) == 2
    assert plan.room_for([sim, sim], cpus=1, available=8 * gib) == 1
    assert plan.room_for([sim, sim], cpus=8, available=None) == 2
    assert plan.room_for([omni, omni], cpus=8, available=8 * gib) == 1  # 4+ GB per app node
    assert plan.room_for([omni, omni], cpus=8, available=64 * gib) == 2
    assert plan.room_for([omni], cpus=8, available=0) == 1


def test_groups_run_side_by_side_and_results_keep_plan_order(tmp_path: Path) -> None:
    import threading

    labs, up, connect = make(tmp_path)
    both = threading.Barrier(2, timeout=10)  # passes only if two groups boot at once

    def boot(lab: Lab) -> Any:
        both.wait()
        return up(lab)

    names = ["shared-secrets-push-clone", "tls-push", "gitaly-own-secrets", "tls-untrusted-ca"]
    scenarios = [load_scenario(LIBRARY / f"{n}.yaml") for n in names]
    seen: list[str] = []
    results = run_scenarios(scenarios, up=boot, connect=connect, jobs=2,
                            on_result=lambda r: seen.append(r.name))
    assert [r.name for r in results] == [names[i] for i in (0, 2, 1, 3)]  # plan order
    assert all(r.outcome is Outcome.PASSED for r in results)
    assert sorted(seen) == sorted(names)
    assert len(labs) == 2
    assert all(fake.calls[-1] == ("down",) for fake in labs)


def test_images_are_made_present_once_before_labs_boot_side_by_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.lifecycle import images as lab_images
    made: list[str] = []
    monkeypatch.setattr(lab_images, "ensure_image", lambda lab, image, progress=None:
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
