"""Run scenarios against labs: one booted lab per group, mutated per scenario.

Scenarios that share a base lab (topology + version + flavour + ``lab.set``)
share one running lab. Each scenario's ``given.set`` is applied with
``RunningLab.apply`` (only changed nodes restart); the next scenario applies
its own target, so going from one mutation to the next restarts the touched
nodes once instead of twice (a revert is just another apply, and a lab handed
to anyone is first put back into the state they asked for).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from lab.client.gitlab import GitLab, project_ref
from lab.engine.run import Redactor, Result
from lab.errors import LabError
from lab.model.lab import HTTP_PORT, Lab
from lab.scenario.load import TEMPLATE_RE, lab_key, resolve_labs
from lab.scenario.model import UNDO, Fault, Outcome, Scenario, ScenarioLabs, Step, StepKind
from lab.spec.versions import Version
from lab.store.state import LabClaim


class LabHandle(Protocol):
    """What the runner needs of a running lab (``lab.lifecycle.handle.RunningLab``)."""

    name: str
    path: Path
    lab: Lab
    redactor: Redactor  # knows the lab's secrets

    @property
    def http_url(self) -> str: ...

    @property
    def admin_token(self) -> str: ...

    def exec(self, node: str, cmd: list[str], *, check: bool = ...,
             timeout: float | None = ...) -> Result: ...

    def logs(self, node: str, *, tail: int = ..., since: Any = ...) -> str: ...

    def stop(self, node: str) -> Any: ...

    def start(self, node: str) -> Any: ...

    def restart(self, node: str) -> Any: ...

    def pause(self, node: str) -> Any: ...

    def unpause(self, node: str) -> Any: ...

    def disconnect(self, node: str) -> Any: ...

    def reconnect(self, node: str) -> Any: ...

    def apply(self, new_lab: Lab, *, timeout: float | None = ..., progress: Any = ...,
              wait_gitaly: bool = ..., docker_health: bool = ...) -> list[str]: ...

    def wait_ready(self, *, timeout: float | None = ..., progress: Any = ...,
                   wait_gitaly: bool = ..., docker_health: bool = ...) -> Any: ...

    def status(self) -> Any: ...

    def down(self, *, purge: bool = ...) -> None: ...


UpFn = Callable[[Lab], LabHandle]
ConnectFn = Callable[[LabHandle], GitLab]


class Claim(Protocol):
    """Exclusive use of a lab name across processes (see ``lab.store.state.LabClaim``)."""

    def acquire(self, *, wait: bool) -> bool: ...

    def release(self) -> None: ...


ClaimFn = Callable[[str], Claim]
Progress = Callable[[str], None]
# Writes a `lab collect` bundle of a lab as it is now, named after ``stem``; returns its path.
CollectFn = Callable[[LabHandle, str], Path]

# None: each wait uses the lab's flavour default (lifecycle.TIMEOUTS), the same as
# `lab up`, so a scenario never gives an Omnibus boot less time than `lab up` does.
READY_TIMEOUT: float | None = None
#: After a Gitaly node comes back: how long git over HTTP may take to reach it again
#: (gRPC's reconnect backoff grows to 120 s at most), and how often to try.
SETTLE_TIMEOUT = 150.0
SETTLE_INTERVAL = 1.0
LOG_TAIL = 400
LOG_LINES_SHOWN = 25
# Lines worth showing from a node's log when a step failed.
INTERESTING = re.compile(r"error|denied|unauthori[sz]ed|fail|reject|refused|unreachable|"
                         r"certificate|x509|tls|panic|timeout", re.IGNORECASE)
CONFIG_KEYS = ("secrets_policy", "secrets_file_sha256", "shell_secret_sha256",
               "gitaly_token_sha256", "tls")


def default_up(lab: Lab) -> LabHandle:
    # Imported late: the engine is only needed to boot.
    from lab.errors import LabAlreadyUp
    from lab.lifecycle import handle as lifecycle

    try:
        handle: LabHandle = lifecycle.up(lab, name=lab.name, timeout=READY_TIMEOUT)
    except LabAlreadyUp:
        # Kept by an earlier `--keep` run: the name encodes the lab, so reuse it.
        handle = lifecycle.attach(lab.name)
        # apply waits when it restarted something; otherwise the kept lab may still be starting.
        if not handle.apply(lab, timeout=READY_TIMEOUT):
            handle.wait_ready(timeout=READY_TIMEOUT)
    return handle


def default_connect(running: LabHandle) -> GitLab:
    return GitLab.connect(running.http_url, running.admin_token)


def bundle_collector(folder: Path) -> CollectFn:
    """A CollectFn writing ``folder/<stem>.tar.gz`` with `lab collect`'s bundle."""
    def collect_bundle(running: LabHandle, stem: str) -> Path:
        from lab.support.collect import collect  # imported late: only needed when something failed

        folder.mkdir(parents=True, exist_ok=True)
        return collect(running, folder / f"{stem}.tar.gz").resolve()  # type: ignore[arg-type]

    return collect_bundle


class LabPool:
    """Running labs by name, each in a known state; a context manager that downs them.

    ``max_labs`` bounds how many stay up at once (Omnibus nodes need 4+ GB).
    """

    def __init__(self, *, keep: bool = False, up: UpFn = default_up, max_labs: int = 1,
                 progress: Progress | None = None, claim: ClaimFn | None = None) -> None:
        self.keep = keep
        self._up = up
        self.max_labs = max_labs
        self._progress = progress
        # Real labs are claimed so that two runs never share one; fakes in tests need not.
        self._claim = claim
        self._claims: dict[str, Claim] = {}
        # name -> (lab, base, current state; None: unknown, so the next use re-applies)
        self._labs: dict[str, tuple[LabHandle, Lab, Lab | None]] = {}

    def __enter__(self) -> LabPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, text: str) -> None:
        if self._progress:
            self._progress(text)

    def get(self, base: Lab, target: Lab | None = None) -> LabHandle:
        """A running lab for ``base``, put into the state ``target`` (default: ``base``)."""
        target = target or base
        entry = self._labs.get(base.name)
        if entry is not None and lab_key(entry[1]) != lab_key(base):
            self.release(base.name)  # same name, different lab: not reusable
            entry = None
        if entry is None:
            while len(self._labs) >= self.max_labs:
                self.release(next(iter(self._labs)))
            self._take(base.name)
            self._say(f"booting lab {base.name}")
            try:
                running = self._up(base)
            except BaseException:
                self._let_go(base.name)
                raise
            # What ``up`` booted (a caller's ``up`` may boot the target state directly).
            entry = (running, base, running.lab)
            self._labs[base.name] = entry
        running, _, current = entry
        if current is None or lab_key(current) != lab_key(target):
            self._say(f"applying changes to lab {base.name}")
            # Recorded as unknown first: if apply fails half-way, the next get re-applies.
            self._labs[base.name] = (running, base, None)
            # A scenario needs the nodes serving, not Docker's first health check (5 s later).
            running.apply(target, timeout=READY_TIMEOUT, wait_gitaly=wait_gitaly(base, target),
                          docker_health=False)
            self._labs[base.name] = (running, base, target)
        return running

    def release(self, name: str) -> None:
        """Down a lab (or, with ``keep``, put it back to its base state and leave it)."""
        entry = self._labs.pop(name, None)
        if entry is None:
            return
        running, base, current = entry
        try:
            if self.keep:
                if current is None or lab_key(current) != lab_key(base):
                    running.apply(base, timeout=READY_TIMEOUT)
                self._say(f"kept lab {name} ({running.path})")
                return
            self._say(f"removing lab {name}")
            running.down()
        finally:
            self._let_go(name)

    def discard(self, name: str) -> None:
        """Down a lab whose state is unknown, whatever ``keep`` says."""
        entry = self._labs.pop(name, None)
        try:
            if entry is not None:
                entry[0].down()
        finally:
            self._let_go(name)

    def _take(self, name: str) -> None:
        if self._claim is None:
            return
        claim = self._claim(name)
        if not claim.acquire(wait=False):
            # Never hold a lab while waiting for another: two runs (or pytest-xdist
            # workers) each holding what the other waits for would wait forever.
            for held in list(self._labs):
                self.release(held)
            self._say(f"waiting: another run is using lab {name}")
            claim.acquire(wait=True)
        self._claims[name] = claim

    def _let_go(self, name: str) -> None:
        claim = self._claims.pop(name, None)
        if claim is not None:
            claim.release()

    def names(self) -> list[str]:
        return list(self._labs)

    def running(self, name: str) -> LabHandle | None:
        """The lab called ``name`` as it is now (whatever state), if this pool has it."""
        entry = self._labs.get(name)
        return None if entry is None else entry[0]

    def close(self) -> None:
        errors: list[str] = []
        for name in list(self._labs):
            try:
                self.release(name)
            except LabError as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            raise LabError("could not clean up labs:\n" + "\n".join(errors))


def wait_gitaly(base: Lab, target: Lab) -> bool:
    """Whether readiness may include the app's Gitaly check in state ``target``.

    A mutated lab is often meant to be broken between app and Gitaly (token, TLS
    trust): waiting for that check would time out.
    """
    return lab_key(target) == lab_key(base)


# --- results -------------------------------------------------------------------

class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the lab could not be put into the scenario's state
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    label: str
    line: int | None
    succeeded: bool  # what the step did
    output: str
    seconds: float
    problem: str | None = None  # why the expectation was not met; None: met

    @property
    def ok(self) -> bool:
        return self.problem is None


ConfigRows = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True)
class Evidence:
    step: str
    line: int | None
    expectation: str
    problem: str
    output: str
    changes: tuple[str, ...]  # what given.set changed from the base lab
    logs: tuple[tuple[str, str], ...]  # node -> relevant lines
    config: ConfigRows  # key -> ((node, value), ...)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    source: str
    status: Status
    seconds: float
    steps: tuple[StepResult, ...] = ()
    message: str = ""
    evidence: Evidence | None = None
    lab: str = ""
    flavor: str = ""
    release: str = ""  # the GitLab version the lab ran ("" when skipped before resolving)
    bundle: str = ""  # a `lab collect` bundle of the failed state (--collect-on-failure)

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASSED, Status.SKIPPED)


# --- one scenario ----------------------------------------------------------------

@dataclass
class _Run:
    """The mutable state of one scenario run."""

    scenario: Scenario
    labs: ScenarioLabs
    running: LabHandle
    client: GitLab
    started: float
    nonce: str
    wait_gitaly: bool  # see ``wait_gitaly()``: for every wait after a restored fault
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # alias -> API data
    pushed: dict[str, dict[str, str]] = field(default_factory=dict)  # alias -> files
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)  # (node, fault)

    def __post_init__(self) -> None:
        self._token = Redactor()
        self._token.add([self.running.admin_token])

    def redact(self, text: str) -> str:
        # The lab's secrets, and its admin token again: a fake lab's redactor may not know it.
        return self._token(self.running.redactor(text))

    def project_name(self, alias: str) -> str:
        return f"{alias}-{self.nonce}"

    def project_path(self, alias: str) -> str:
        data = self.projects.get(alias, {})
        return str(data.get("path_with_namespace") or f"root/{self.project_name(alias)}")


def _exec(run: _Run, node: str, cmd: list[str], timeout: float = 60) -> tuple[bool, str]:
    res = run.running.exec(node, cmd, check=False, timeout=timeout)
    return res.returncode == 0, (res.stdout + res.stderr).strip()


def _repo_on_storage(run: _Run, alias: str, storage: str) -> tuple[bool, str]:
    data = run.projects.get(alias) or run.client.api.get_project(run.project_path(alias))
    project_id = data.get("id")
    if project_id is None:
        return False, f"project {run.project_path(alias)} has no id; was it created?"
    digest = hashlib.sha256(str(project_id).encode()).hexdigest()
    disk = f"@hashed/{digest[:2]}/{digest[2:4]}/{digest}.git"
    lab = run.labs.target
    names: list[str] = []
    shown: list[str] = []
    for name, node in sorted(lab.storages.items()):
        spath = next(s for s in node.storages if s.name == name).repositories_path
        ok, _ = _exec(run, node.name, ["test", "-d", f"{spath}/{disk}"])
        if ok:
            names.append(name)
            shown.append(f"{name} ({node.name}:{spath}/{disk})")
    api_storage = data.get("repository_storage", "?")
    where = "; ".join(shown) or "no storage"
    text = (f"{run.project_path(alias)} (id {project_id}, API repository_storage={api_storage}) "
            f"is on: {where}")
    return names == [storage], text


def _port(run: _Run, node: str, port_name: str) -> int:
    return HTTP_PORT if port_name == "http" else run.labs.target.node(node).gitaly_port


def _published(run: _Run, node: str, port_name: str) -> tuple[bool, str]:
    port = _port(run, node, port_name)
    # Ask Docker, not the compose file: what is bound is what an attacker could reach.
    status = run.running.status()
    ports: dict[str, str] = next((dict(s.ports) for s in status.nodes if s.node == node), {})
    bound = ports.get(f"{port}/tcp")
    if bound:
        return True, f"{node} port {port} ({port_name}) is published to the host at {bound}"
    shown = ", ".join(f"{k} -> {v}" for k, v in sorted(ports.items())) or "none"
    return False, f"{node} port {port} ({port_name}) is not published to the host " \
        f"(published: {shown})"


def _reachable(run: _Run, src: str, node: str, port_name: str) -> tuple[bool, str]:
    port = _port(run, node, port_name)
    # bash's /dev/tcp exists in both flavours' images; host and port are
    # arguments, not part of the script.
    ok, out = _exec(run, src, ["timeout", "10", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"',
                               node, str(port)], timeout=30)
    verdict = "reachable" if ok else "not reachable"
    return ok, f"{node}:{port} is {verdict} from {src}" + (f": {out}" if out else "")


def _fault(run: _Run, step: Step) -> tuple[bool, str]:
    action, node = str(step.arg("action")), str(step.arg("node"))
    getattr(run.running, action)(node)
    if action in (f.value for f in Fault):
        run.faults[(node, action)] = Fault(action)
        return True, f"{node}: {action}"
    for fault, undo in UNDO.items():
        if undo.value == action:
            run.faults.pop((node, fault.value), None)
    # A restored node is only useful once the lab is ready again.
    run.running.wait_ready(timeout=READY_TIMEOUT, wait_gitaly=run.wait_gitaly,
                           docker_health=False)
    if not run.wait_gitaly:
        return True, f"{node}: {action}; lab ready"
    ok, text = _settle_git(run, node)
    return ok, f"{node}: {action}; lab ready; {text}"


def _settle_git(run: _Run, node: str) -> tuple[bool, str]:
    """Wait until git over HTTP reaches the restored Gitaly ``node`` again.

    Readiness (``/-/readiness?all=1``) proves Rails' channel to Gitaly, but Workhorse
    keeps its own connection (and older Rails one per stub): gRPC reconnects
    those with backoff, so a git call right after readiness can still fail with 14.
    ``git ls-remote`` of each project on the node takes that very path.
    """
    lab = run.labs.target
    aliases = [a for a, data in run.projects.items()
               if (owner := lab.storages.get(str(data.get("repository_storage", "default"))))
               is not None and owner.name == node]
    if not aliases:
        return True, "no project on it to reach"
    t0 = time.monotonic()
    for alias in aliases:
        while not (res := run.client.git.ls_remote(run.project_path(alias))).ok:
            if time.monotonic() - t0 > SETTLE_TIMEOUT:
                return False, (f"git over HTTP still fails {SETTLE_TIMEOUT:.0f} s after "
                               f"readiness: {res.output}")
            time.sleep(SETTLE_INTERVAL)
    return True, f"git over HTTP reaches it ({time.monotonic() - t0:.1f} s)"


def _do(run: _Run, step: Step) -> tuple[bool, str]:
    kind = step.kind
    api = run.client.api
    if kind is StepKind.CREATE_PROJECT:
        alias = str(step.arg("project"))
        resp = api.create_project_raw(run.project_name(alias), storage=step.arg("storage"))
        if resp.ok and isinstance(resp.data, dict):
            run.projects[alias] = resp.data
        return resp.ok, resp.output
    if kind is StepKind.PUSH:
        alias = str(step.arg("project"))
        files = dict(step.arg("files") or
                     {"README.md": f"{run.scenario.name} {alias} {run.nonce}\n"})
        res = run.client.git.push(run.project_path(alias), files,
                                  branch=str(step.arg("branch", "main")))
        if res.ok:
            run.pushed.setdefault(alias, {}).update(files)
        return res.ok, res.output
    if kind is StepKind.CLONE:
        alias = str(step.arg("project"))
        res = run.client.git.clone_and_compare(run.project_path(alias), run.pushed.get(alias, {}))
        return res.ok, res.output
    if kind is StepKind.API:
        refs = {a: project_ref(run.project_path(a)) for a in run.projects}
        path = TEMPLATE_RE.sub(lambda m: refs.get(m[1], m[0]), str(step.arg("path")))
        method = str(step.arg("method", "GET"))
        resp = api.call(method, path, data=step.arg("data"))
        change = api_file_change(method, str(step.arg("path")), step.arg("data"))
        if resp.ok and change is not None:
            # A file written through the API is what a later clone must show.
            alias, name, content = change
            files = run.pushed.setdefault(alias, {})
            if content is None:
                files.pop(name, None)
            else:
                files[name] = content
        return resp.ok, resp.output
    if kind is StepKind.EXEC:
        return _exec(run, str(step.arg("node")), [str(c) for c in step.arg("cmd")])
    if kind is StepKind.REPO_ON_STORAGE:
        return _repo_on_storage(run, str(step.arg("project")), str(step.arg("storage")))
    if kind is StepKind.PORT:
        published, text = _published(run, str(step.arg("node")), str(step.arg("port")))
        return published == bool(step.arg("published", False)), text
    if kind is StepKind.REACHABLE:
        return _reachable(run, str(step.arg("from")), str(step.arg("node")),
                          str(step.arg("port")))
    return _fault(run, step)


_API_FILE = re.compile(r"^/?api/v4/projects/\{(?P<alias>[^{}]+)\}/repository/files/"
                       r"(?P<file>[^/?]+)$")


def api_file_change(method: str, path: str, data: Any) -> tuple[str, str, str | None] | None:
    """(alias, file, new content or None when deleted) for an ``api`` step that writes a
    repository file of a scenario project on ``main`` as text; None for anything else."""
    match = _API_FILE.match(path)
    if match is None or not isinstance(data, dict) or data.get("branch", "main") != "main":
        return None
    name = urllib.parse.unquote(match["file"])
    method = method.upper()
    if method == "DELETE":
        return match["alias"], name, None
    if method in ("POST", "PUT") and data.get("encoding", "text") == "text" \
            and isinstance(data.get("content"), str):
        return match["alias"], name, data["content"]
    return None


def _logs(run: _Run, node: str) -> str:
    # Only what this scenario caused: earlier scenarios' lines must not satisfy a pattern.
    return run.redact(run.running.logs(node, tail=LOG_TAIL, since=str(int(run.started))))


def check_expectation(step: Step, succeeded: bool, output: str,
                      logs: Callable[[str], str]) -> str | None:
    """Why the step's expectation is not met, or None."""
    exp = step.expect
    if exp.outcome is Outcome.SUCCESS and not succeeded:
        return "expected success, but the step failed"
    if exp.outcome is Outcome.FAIL and succeeded:
        return "expected the step to fail, but it succeeded"
    if exp.output and not re.search(exp.output, output, re.MULTILINE):
        return f"the output does not match /{exp.output}/"
    if exp.log:
        text = logs(exp.log.node)
        if not re.search(exp.log.pattern, text, re.MULTILINE):
            return f"no line of {exp.log.node}'s log (since the scenario started) " \
                f"matches /{exp.log.pattern}/"
    return None


def _relevant(text: str) -> str:
    lines = text.splitlines()
    hits = {i for i, ln in enumerate(lines) if INTERESTING.search(ln)}
    wanted = sorted(hits)[-LOG_LINES_SHOWN:] + list(range(max(0, len(lines) - 10), len(lines)))
    # In log order: the interesting lines, and the last few for context.
    return "\n".join(lines[i] for i in sorted(set(wanted)))


def config_diff(running: LabHandle, lab: Lab) -> ConfigRows:
    """Per-node settings that must agree, as hashes from manifest.json (never values)."""
    from lab.render.gitlab_rb import internal_api_url
    from lab.store.labdir import load_manifest

    manifest = load_manifest(running.path) or {}
    nodes = manifest.get("nodes", {})
    rows: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for key in CONFIG_KEYS:
        rows.append((key, tuple((n, str(d.get(key, "-"))) for n, d in sorted(nodes.items()))))
    gitaly = [n for n in lab.nodes if n.gitaly_only]
    if gitaly:
        rows.append(("internal_api_url", tuple(
            (n.name, internal_api_url(lab, n) or "(unset)") for n in gitaly)))
        rows.append(("trust_ca", tuple((n.name, str(n.trust_ca)) for n in lab.nodes)))
    return tuple(rows)


def _evidence(run: _Run, step: Step, result: StepResult) -> Evidence:
    logs: list[tuple[str, str]] = []
    for node in run.labs.target.nodes:
        try:
            logs.append((node.name, _relevant(_logs(run, node.name))))
        except LabError as exc:
            logs.append((node.name, f"(no logs: {exc})"))
    try:
        config = config_diff(run.running, run.labs.target)
    except (LabError, OSError) as exc:
        config = (("manifest.json", (("-", f"unreadable: {exc}"),)),)
    return Evidence(step=result.label, line=result.line, expectation=step.expect.describe(),
                    problem=result.problem or "", output=result.output,
                    changes=run.labs.changes, logs=tuple(logs), config=config)


def _run_step(run: _Run, step: Step, label: str) -> StepResult:
    t0 = time.monotonic()
    try:
        succeeded, output = _do(run, step)
    except LabError as exc:  # e.g. exec on a stopped node: the step failed, say why
        succeeded, output = False, str(exc)
    output = run.redact(output)
    problem = check_expectation(step, succeeded, output, lambda n: _logs(run, n))
    return StepResult(label, step.line, succeeded, output, time.monotonic() - t0, problem)


def _bundle(collect: CollectFn | None, running: LabHandle | None, scenario: Scenario,
            labs: ScenarioLabs) -> tuple[str, str]:
    """(bundle path, "") or ("", why not): evidence of the lab in its failed state."""
    if collect is None or running is None:
        return "", ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{scenario.name}-{labs.base.version}-"
                  f"{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        return str(collect(running, stem)), ""
    except (LabError, OSError) as exc:
        return "", f"\n(could not write the evidence bundle: {exc})"


def run_scenario(scenario: Scenario, labs: ScenarioLabs, pool: LabPool, *,
                 connect: ConnectFn = default_connect,
                 collect: CollectFn | None = None) -> ScenarioResult:
    """Run one scenario; with ``collect``, a failure's lab is bundled before it is restored."""
    t0 = time.monotonic()
    def result(status: Status, message: str, steps: tuple[StepResult, ...] = (),
               evidence: Evidence | None = None, bundle: str = "") -> ScenarioResult:
        return ScenarioResult(scenario.name, scenario.source, status, time.monotonic() - t0,
                              steps, message, evidence, labs.base.name, labs.base.flavor.value,
                              str(labs.base.version), bundle)

    try:
        running = pool.get(labs.base, labs.target)
    except LabError as exc:
        # Whatever state the lab got into is the evidence; then it goes.
        bundle, why_not = _bundle(collect, pool.running(labs.base.name), scenario, labs)
        pool.discard(labs.base.name)
        return result(Status.ERROR, f"could not put the lab into this scenario's state: {exc}"
                      + why_not, bundle=bundle)
    run = _Run(scenario, labs, running, connect(running), time.time(),
               f"{scenario.name[:24]}-{secrets.token_hex(3)}".replace("_", "-"),
               wait_gitaly(labs.base, labs.target))
    steps: list[StepResult] = []
    evidence: Evidence | None = None
    bundle, why_not = "", ""
    todo = [("given", s) for s in scenario.given_faults] + [("", s) for s in scenario.steps]
    try:
        for prefix, step in todo:
            outcome = _run_step(run, step, f"{prefix} {step.label}".strip())
            steps.append(outcome)
            if not outcome.ok:
                evidence = _evidence(run, step, outcome)
                # Before anything is undone: faults and given.set still in place.
                bundle, why_not = _bundle(collect, running, scenario, labs)
                break
    finally:
        cleanup = _undo_faults(run)
    if cleanup:
        # A node we could not restore leaves the lab in an unknown state.
        pool.discard(labs.base.name)
    status = Status.PASSED if evidence is None and not cleanup else Status.FAILED
    message = (evidence.problem if evidence else cleanup) + why_not
    return result(status, message, tuple(steps), evidence, bundle)


def _undo_faults(run: _Run) -> str:
    problems = []
    for (node, _), fault in list(run.faults.items()):
        try:
            getattr(run.running, UNDO[fault].value)(node)
        except LabError as exc:
            problems.append(f"could not {UNDO[fault].value} {node} after the scenario: "
                            f"{run.redact(str(exc))}")
    if run.faults and not problems:
        try:
            run.running.wait_ready(timeout=READY_TIMEOUT, wait_gitaly=run.wait_gitaly,
                                   docker_health=False)
        except LabError as exc:
            problems.append(f"lab not ready after undoing faults: {run.redact(str(exc))}")
    run.faults.clear()
    return "\n".join(problems)


# --- many scenarios ------------------------------------------------------------

def parse_versions(text: str | None) -> list[str | None]:
    """``--version 15.9.8,17.11.7`` -> each release once, in order; None: the default.

    Raises ValueError naming the bad entry.
    """
    if not text or not text.strip():
        return [None]
    out: list[str | None] = []
    for part in text.split(","):
        release = str(Version.parse(part))  # ValueError says what a version looks like
        if release not in out:
            out.append(release)
    return out


def plan(scenarios: Iterable[Scenario], *, flavor: str,
         version: str | None = None, versions: Sequence[str | None] = ()
         ) -> list[tuple[Scenario, ScenarioLabs | None]]:
    """Resolve each scenario's labs per release and order them by group (first appearance wins).

    ``versions`` (default: ``[version]``) is the release matrix: a scenario that
    pins its own version runs once. A scenario that does not apply to ``flavor``
    gets no labs (it is skipped, once).
    """
    releases = list(versions) or [version]
    groups: dict[str, list[tuple[Scenario, ScenarioLabs | None]]] = {}
    skipped: list[tuple[Scenario, ScenarioLabs | None]] = []
    for sc in scenarios:
        if flavor not in sc.flavors:
            skipped.append((sc, None))
            continue
        for release in releases[:1] if sc.version else releases:
            labs = resolve_labs(sc, flavor=flavor, version=release)
            groups.setdefault(labs.base.name, []).append((sc, labs))
    return [item for group in groups.values() for item in group] + skipped


def room_for(labs: Sequence[Lab], *, cpus: int | None = None,
             available: int | None = None) -> int:
    """How many of ``labs`` this machine can run at once (at least 1).

    One per core (a lab's boot and restarts are CPU work), and only as many as
    fit in the memory available now (doctor's per-node estimates: 4+ GB for an
    Omnibus app node, so Omnibus groups mostly run one after another).
    """
    from lab.engine.host import mem_available
    from lab.support.doctor import memory_needed

    if len(labs) <= 1:
        return 1
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    available = available if available is not None else mem_available()
    room = min(len(labs), cpus)
    if available is not None:
        fits, used = 0, 0
        for lab in sorted(labs, key=memory_needed):
            used += memory_needed(lab)
            if used > available:
                break
            fits += 1
        room = min(room, fits)
    return max(1, room)


def _images_first(labs: Sequence[Lab]) -> None:
    """Make each image present before labs boot side by side (else each would build it)."""
    from lab.engine.images import image_for
    from lab.lifecycle.images import ensure_image

    done: set[str] = set()
    for lab in labs:
        image = image_for(lab)
        if image not in done:
            ensure_image(lab, image)
            done.add(image)


def run_scenarios(scenarios: Sequence[Scenario], *, flavor: str = "sim",
                  version: str | None = None, versions: Sequence[str | None] = (),
                  keep: bool = False, up: UpFn = default_up,
                  connect: ConnectFn = default_connect,
                  progress: Progress | None = None,
                  on_result: Callable[[ScenarioResult], None] | None = None,
                  collect: CollectFn | None = None, jobs: int | None = None,
                  ) -> list[ScenarioResult]:
    """Run scenarios group by group; independent groups side by side when there is room.

    ``jobs``: how many groups (labs) at once; None: ``room_for`` the groups' labs
    (with the default ``up``; one at a time with a caller's own).
    Each group has its own pool, so a lab is only ever used by one thread; results
    come back in plan order.
    """
    planned = plan(scenarios, flavor=flavor, version=version, versions=versions)
    if up is default_up and any(labs is not None for _, labs in planned):
        # No Docker (exit 3) or no Compose tool (exit 5): one clear error, not one per scenario.
        from lab.engine.compose import detect
        from lab.engine.docker import check_reachable

        check_reachable()
        detect()
    groups: dict[str, list[tuple[int, Scenario, ScenarioLabs]]] = {}
    results: dict[int, ScenarioResult] = {}
    for i, (sc, labs) in enumerate(planned):
        if labs is None:
            results[i] = ScenarioResult(sc.name, sc.source, Status.SKIPPED, 0.0,
                                        message=f"only for {', '.join(sc.flavors)}; "
                                        f"this run uses {flavor}", flavor=flavor)
        else:
            groups.setdefault(labs.base.name, []).append((i, sc, labs))
    # Claims guard real labs; a caller's own ``up`` (tests, benches) manages its labs itself.
    claim = LabClaim if up is default_up else None
    told = threading.Lock()  # progress and on_result are the caller's: one call at a time

    def say(text: str) -> None:
        if progress:
            with told:
                progress(text)

    def run_group(items: list[tuple[int, Scenario, ScenarioLabs]]) -> None:
        with LabPool(keep=keep, up=up, progress=say, claim=claim) as pool:
            for i, sc, labs in items:
                say(f"scenario {sc.name}")
                results[i] = run_scenario(sc, labs, pool, connect=connect, collect=collect)
                if on_result:
                    with told:
                        on_result(results[i])

    todo = list(groups.values())
    if jobs is None:  # a caller's own ``up`` (tests) runs one group at a time unless asked
        jobs = room_for([g[0][2].base for g in todo]) if up is default_up else 1
    width = jobs
    if width <= 1 or len(todo) <= 1:
        for items in todo:
            run_group(items)
    else:
        if up is default_up:
            _images_first([items[0][2].base for items in todo])
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="lab-group") as ex:
            for future in [ex.submit(run_group, items) for items in todo]:
                future.result()  # a bug in one group surfaces here, after the rest finished
    for i, (_, skipped) in enumerate(planned):
        if skipped is None and on_result:
            on_result(results[i])
    return [results[i] for i in sorted(results)]
