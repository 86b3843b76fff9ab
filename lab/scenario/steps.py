"""The step registry: every step kind a scenario can use, one entry each.

An entry (``StepKind``) is the kind's name, its arguments (name, check, what a
value must be, whether required, what in the lab or scenario it names) and the
function that runs it. ``load`` validates a scenario's steps through the
registry and the runner dispatches through it, so a new step kind is one entry
in ``KINDS``. The fault verbs (``stop: gitaly1``) are entries too, made from
``lab.lifecycle.faults.VERBS``: a new verb there is a new step here.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lab.client.gitlab import GitLab, project_ref, repo_file_name_ok
from lab.engine.run import Redactor
from lab.lifecycle.contract import LabHandle
from lab.lifecycle.faults import VERBS, Verb
from lab.model.topology import HTTP_PORT
from lab.omnibus import eras
from lab.omnibus.praefect import (
    FAILOVER_TIMEOUT,
    HEALTH_CHECK_INTERVAL,
    NodeHealth,
    node_health_cmd,
    parse_node_health,
)
from lab.scenario.definition import Scenario, ScenarioLabs, Step
from lab.scenario.pool import READY_TIMEOUT

#: After a Gitaly node comes back: how long git over HTTP may take to reach it again
#: (gRPC's reconnect backoff grows to 120 s at most), and how often to try.
SETTLE_TIMEOUT = 150.0
SETTLE_INTERVAL = 1.0
#: The ``unhealthy`` step: how long it waits by default, the shortest time between two
#: reads of node_status, and how far past the moment Praefect acts on the node it reads
#: again (a read's clock is the database's, taken while the read runs).
UNHEALTHY_WAIT = 30.0
HEALTH_POLL_INTERVAL = 0.5
HEALTH_READ_MARGIN = 0.1
PORTS = ("http", "gitaly")
#: ``{p1}`` in an ``api`` step's path: the project alias p1's encoded path.
TEMPLATE_RE = re.compile(r"\{([^{}]*)\}")

# Whether a step argument's value is of the kind the step takes.
Validator = Callable[[Any], bool]


class Ref(StrEnum):
    """What an argument's value names, so ``load`` can check it before a lab boots."""

    NODE = "node"  # a node of the scenario's lab
    CLUSTER_GITALY = "Gitaly node behind a Praefect"  # a Gitaly node of a Praefect's storage
    STORAGE = "storage"  # a storage of the scenario's lab
    PROJECT = "project"  # a project alias an earlier step created
    NEW_PROJECT = "new project"  # a project alias this step creates
    PROJECT_PATH = "project path"  # text with {alias} templates of created projects


@dataclass(frozen=True)
class Arg:
    name: str
    check: Validator
    what: str  # what a value must be, for errors: "expected <what>, got ..."
    required: bool = False
    ref: Ref | None = None
    # The value's type: checked by the loader before ``check``, and the JSON Schema's type.
    kind: type | tuple[type, ...] | None = None


@dataclass
class Run:
    """The mutable state of one scenario run, which every step function gets."""

    scenario: Scenario
    labs: ScenarioLabs
    running: LabHandle
    client: GitLab
    started: float
    nonce: str
    wait_gitaly: bool  # see ``pool.wait_gitaly()``: for every wait after a restored fault
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # alias -> API data
    pushed: dict[str, dict[str, str]] = field(default_factory=dict)  # alias -> files
    # (node, fault verb) -> the verb that undoes it, in the order they were done.
    faults: dict[tuple[str, str], str] = field(default_factory=dict)
    # Nodes a step restored since the lab was last waited for: the next wait asks them.
    restored: set[str] = field(default_factory=set)

    def wait_restored(self, nodes: Iterable[str]) -> None:
        """Wait until the lab is ready again after ``nodes`` (and those restored before
        without a wait) came back: as after a change (``RunningLab.apply``), only what that
        can have changed is asked: their services, Praefect's database layers when one of
        them is its node, the app's own layers when one is the app, and every lab-wide
        layer (containers, Gitaly storages, the app's view of Gitaly)."""
        touched = sorted(self.restored.union(nodes))
        self.running.wait_ready(timeout=READY_TIMEOUT, wait_gitaly=self.wait_gitaly,
                                docker_health=False, services_of=touched, setup_of=touched,
                                app_of=touched)
        self.restored.clear()

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


#: Runs a step: (whether it succeeded, its output).
StepFn = Callable[[Run, Step], tuple[bool, str]]


@dataclass(frozen=True)
class StepKind:
    name: str
    args: tuple[Arg, ...]  # the first is what a scalar sets (`push: p1`, `stop: gitaly1`)
    run: StepFn
    undo: str | None = None  # a fault: the kind that undoes it after the scenario
    ready_after: bool = False  # the lab must be ready again before the next step

    def __post_init__(self) -> None:
        if not self.args:
            raise ValueError(f"step kind {self.name!r} needs at least one argument")


Registry = Mapping[str, StepKind]


# --- argument checks ------------------------------------------------------------

def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _port(v: Any) -> bool:
    return v in PORTS


def _seconds(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 600


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)


def _file_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and repo_file_name_ok(k)
                                       and isinstance(x, str) for k, x in v.items())


def _branch(v: Any) -> bool:
    # Not an option of git (``--upload-pack=...``), and one plain ref name.
    return _str(v) and not v.startswith("-") and not any(
        c.isspace() or c in "~^:?*[\\" or not c.isprintable() for c in v) and ".." not in v


def _any_map(v: Any) -> bool:
    return isinstance(v, dict)


def _method(v: Any) -> bool:
    return isinstance(v, str) and v.upper() in ("GET", "POST", "PUT", "DELETE")


def node_arg(name: str = "node") -> Arg:
    return Arg(name, _str, "a node name", True, Ref.NODE, str)


PROJECT = Arg("project", _str, "a project alias", True, Ref.PROJECT, str)


# --- what the steps do ---------------------------------------------------------------

def exec_on(run: Run, node: str, cmd: list[str], timeout: float = 60) -> tuple[bool, str]:
    res = run.running.exec(node, cmd, check=False, timeout=timeout)
    return res.returncode == 0, (res.stdout + res.stderr).strip()


def _create_project(run: Run, step: Step) -> tuple[bool, str]:
    alias = str(step.arg("project"))
    # CE before 12.9 ignores repository_storage on the API: place it through the setting.
    by_setting = not eras.api_takes_repository_storage(run.labs.target.version)
    resp = run.client.api.create_project_raw(run.project_name(alias), storage=step.arg("storage"),
                                             by_setting=by_setting)
    if resp.ok and isinstance(resp.data, dict):
        run.projects[alias] = resp.data
    return resp.ok, resp.output


def _push(run: Run, step: Step) -> tuple[bool, str]:
    alias = str(step.arg("project"))
    files = dict(step.arg("files") or {"README.md": f"{run.scenario.name} {alias} {run.nonce}\n"})
    res = run.client.git.push(run.project_path(alias), files,
                              branch=str(step.arg("branch", "main")))
    if res.ok:
        run.pushed.setdefault(alias, {}).update(files)
    return res.ok, res.output


def _clone(run: Run, step: Step) -> tuple[bool, str]:
    alias = str(step.arg("project"))
    res = run.client.git.clone_and_compare(run.project_path(alias), run.pushed.get(alias, {}))
    return res.ok, res.output


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


def _api(run: Run, step: Step) -> tuple[bool, str]:
    refs = {a: project_ref(run.project_path(a)) for a in run.projects}
    path = TEMPLATE_RE.sub(lambda m: refs.get(m[1], m[0]), str(step.arg("path")))
    method = str(step.arg("method", "GET"))
    resp = run.client.api.call(method, path, data=step.arg("data"))
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


def _exec(run: Run, step: Step) -> tuple[bool, str]:
    return exec_on(run, str(step.arg("node")), [str(c) for c in step.arg("cmd")])


def _wait(run: Run, step: Step) -> tuple[bool, str]:
    """Let time pass in the lab: what a component does on its own clock (Praefect counts a
    Gitaly node unhealthy 10 s after its health checks fail) is there afterwards."""
    seconds = float(step.arg("seconds"))
    time.sleep(seconds)
    return True, f"waited {seconds:g} s"


def _repo_on_storage(run: Run, step: Step) -> tuple[bool, str]:
    alias, storage = str(step.arg("project")), str(step.arg("storage"))
    data = run.projects.get(alias) or run.client.api.get_project(run.project_path(alias))
    project_id = data.get("id")
    if project_id is None:
        return False, f"project {run.project_path(alias)} has no id; was it created?"
    lab = run.labs.target
    # Where this release puts a new project (legacy before 12.0, hashed after).
    disk = eras.repository_disk_path(lab.version, int(project_id), run.project_path(alias))
    names: list[str] = []
    shown: list[str] = []
    for name, node in sorted(lab.storages.items()):
        spath = next(s for s in node.storages if s.name == name).repositories_path
        ok, _ = exec_on(run, node.name, ["test", "-d", f"{spath}/{disk}"])
        if ok:
            names.append(name)
            shown.append(f"{name} ({node.name}:{spath}/{disk})")
    api_storage = data.get("repository_storage", "?")
    where = "; ".join(shown) or "no storage"
    text = (f"{run.project_path(alias)} (id {project_id}, API repository_storage={api_storage}) "
            f"is on: {where}")
    return names == [storage], text


#: Every bare repository under a storage folder (@hashed/… for Rails' paths, Praefect's
#: @cluster/repositories/… replica paths from 15.0) whose refs include commit $2: its folder
#: and its refs. Run on the node with the folder and the commit as arguments, never as text.
_FIND_REPLICA = (
    'find "$1" -type f -name HEAD -not -path "*/objects/*" -not -path "*/refs/*" 2>/dev/null | '
    'while read -r head; do d="${head%/HEAD}"; '
    'refs=$(git --git-dir="$d" for-each-ref --format="%(objectname) %(refname)" 2>/dev/null); '
    'case "$refs" in *"$2 "*) printf "%s\\n%s\\n" "$d" "$refs";; esac; done')


def _head_commit(run: Run, alias: str) -> str | None:
    ref = project_ref(run.project_path(alias))
    data = run.client.api.call("GET", f"/api/v4/projects/{ref}").data
    branch = data.get("default_branch") if isinstance(data, dict) else None
    got = run.client.api.call("GET", f"/api/v4/projects/{ref}/repository/branches/"
                                     f"{urllib.parse.quote(str(branch or 'main'), safe='')}").data
    commit = got.get("commit") if isinstance(got, dict) else None
    return str(commit["id"]) if isinstance(commit, dict) and commit.get("id") else None


def _replicas(run: Run, step: Step) -> tuple[bool, str]:
    """Gitaly Cluster: the project's repository on each Gitaly node behind its Praefect, with
    the same refs (``nodes``: which must hold it, default all; ``absent``: which must not),
    trying for ``wait`` seconds (Praefect replicates in the background)."""
    alias = str(step.arg("project"))
    lab = run.labs.target
    data = run.projects.get(alias) or {}
    owner = lab.storages.get(str(data.get("repository_storage", "default")))
    if owner is None or not owner.is_praefect:
        return False, f"{run.project_path(alias)} is not on a Praefect's virtual storage"
    absent = [str(n) for n in step.arg("absent") or []]
    holders = [str(n) for n in step.arg("nodes") or [b for b in owner.backends
                                                      if b not in absent]]
    unknown = [n for n in (*holders, *absent) if n not in owner.backends]
    if unknown:
        return False, f"{', '.join(unknown)}: not behind {owner.name} ({', '.join(owner.backends)})"
    deadline = time.monotonic() + float(step.arg("wait", 0))
    while True:
        ok, text = _replica_check(run, alias, holders, absent)
        if ok or time.monotonic() >= deadline:
            return ok, text
        time.sleep(SETTLE_INTERVAL)


def _replica_check(run: Run, alias: str, holders: list[str], absent: list[str]
                   ) -> tuple[bool, str]:
    commit = _head_commit(run, alias)
    if commit is None:
        return False, f"{run.project_path(alias)}: no commit on its default branch (pushed?)"
    lab = run.labs.target
    found: dict[str, tuple[str, str]] = {}  # node -> (folder, refs)
    for name in (*holders, *absent):
        node = lab.node(name)
        for storage in node.storages:
            ok, out = exec_on(run, name, ["bash", "-c", _FIND_REPLICA, "replicas",
                                          storage.repositories_path, commit])
            if ok and out:
                folder, _, refs = out.partition("\n")
                found[name] = (folder, refs.strip())
                break
    lines = [f"{n}: {found[n][0]}" if n in found else f"{n}: no repository with {commit[:12]}"
             for n in (*holders, *absent)]
    same = len({found[n][1] for n in holders if n in found}) <= 1
    ok = all(n in found for n in holders) and not any(n in found for n in absent) and same
    if not same:
        lines.append("the refs differ between the nodes")
    return ok, f"{run.project_path(alias)} at {commit[:12]}: " + "; ".join(lines)


def _unhealthy(run: Run, step: Step) -> tuple[bool, str]:
    """Gitaly Cluster: wait until the Praefect in front of Gitaly node ``node`` counts it
    unhealthy, as Praefect decides it: its health checks' record in its database
    (``node_status`` on the lab's PostgreSQL node) shows no successful check for longer
    than the failover timeout and one health-check tick, so Praefect acts on it (routes
    nothing to it). Reads it for ``wait`` seconds: when a read shows the node's last
    successful check, the next read is when that check will be old enough (each read is a
    `docker exec`, the costliest thing a scenario's wait does); otherwise every
    HEALTH_POLL_INTERVAL."""
    name = str(step.arg("node"))
    lab = run.labs.target
    owner = next((p for p in lab.praefect_nodes if name in p.backends), None)
    db = lab.postgres_node
    if owner is None or db is None or not owner.storages:
        return False, f"{name} is not a Gitaly node behind a Praefect of this lab"
    cmd = node_health_cmd(name, owner.storages[0].name)
    wait = float(step.arg("wait", UNHEALTHY_WAIT))
    deadline = time.monotonic() + wait
    while True:
        began = time.monotonic()
        ok, out = exec_on(run, db.name, cmd, timeout=30)
        health: NodeHealth | None = None
        if not ok:
            text = f"{name}: reading node_status on {db.name} failed: {out or 'no output'}"
        else:
            try:
                health = parse_node_health(out)
            except ValueError as exc:
                text = f"{name}: reading node_status on {db.name}: {exc}"
            else:
                text = health_text(name, health)
        if health is not None and health.acted_on:
            return True, text
        if time.monotonic() >= deadline:
            return False, f"{text}; still so after waiting {wait:g} s"
        pause = HEALTH_POLL_INTERVAL
        if health is not None and health.seen_ago is not None:
            # Unchanged, the check is old enough then; a newer one, read then, says so.
            pause = max(pause, FAILOVER_TIMEOUT + HEALTH_CHECK_INTERVAL - health.seen_ago
                        + HEALTH_READ_MARGIN)
        time.sleep(max(0.0, min(began + pause, deadline) - time.monotonic()))


def health_text(node: str, health: NodeHealth) -> str:
    """``gitaly2: Praefect's last successful health check 11.4 s ago, last attempt 0.3 s
    ago (node_status); unhealthy after 10 s (...)``: the evidence, as the database has it."""
    if not health.recorded:
        said = f"{node}: no health check by Praefect recorded (node_status)"
    else:
        seen = "never" if health.seen_ago is None else f"{health.seen_ago:.1f} s ago"
        attempt = "" if health.attempt_ago is None else \
            f", last attempt {health.attempt_ago:.1f} s ago"
        said = f"{node}: Praefect's last successful health check {seen}{attempt} (node_status)"
    return (f"{said}; unhealthy after {FAILOVER_TIMEOUT:g} s (Praefect acts on it at its "
            f"next {HEALTH_CHECK_INTERVAL:g} s health check)")


def _port_number(run: Run, node: str, port_name: str) -> int:
    return HTTP_PORT if port_name == "http" else run.labs.target.node(node).gitaly_port


def _published(run: Run, step: Step) -> tuple[bool, str]:
    node, port_name = str(step.arg("node")), str(step.arg("port"))
    port = _port_number(run, node, port_name)
    # Ask Docker, not the compose file: what is bound is what an attacker could reach.
    status = run.running.status()
    ports: dict[str, str] = next((dict(s.ports) for s in status.nodes if s.node == node), {})
    bound = ports.get(f"{port}/tcp")
    if bound:
        text = f"{node} port {port} ({port_name}) is published to the host at {bound}"
    else:
        shown = ", ".join(f"{k} -> {v}" for k, v in sorted(ports.items())) or "none"
        text = f"{node} port {port} ({port_name}) is not published to the host " \
            f"(published: {shown})"
    return bool(bound) == bool(step.arg("published", False)), text


def _reachable(run: Run, step: Step) -> tuple[bool, str]:
    src, node, port_name = str(step.arg("from")), str(step.arg("node")), str(step.arg("port"))
    port = _port_number(run, node, port_name)
    # bash's /dev/tcp exists in both flavours' images; host and port are
    # arguments, not part of the script.
    ok, out = exec_on(run, src, ["timeout", "10", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"',
                                 node, str(port)], timeout=30)
    verdict = "reachable" if ok else "not reachable"
    return ok, f"{node}:{port} is {verdict} from {src}" + (f": {out}" if out else "")


def _settle_git(run: Run, node: str) -> tuple[bool, str]:
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


def _verb_step(verb: Verb) -> StepFn:
    def act(run: Run, step: Step) -> tuple[bool, str]:
        node = str(step.arg("node"))
        run.running.act(node, verb.name)
        if verb.undo is not None:
            run.faults[(node, verb.name)] = verb.undo
            return True, f"{node}: {verb.name}"
        for key, undo in list(run.faults.items()):
            if key[0] == node and undo == verb.name:
                del run.faults[key]
        run.restored.add(node)
        if not verb.ready_after:
            return True, f"{node}: {verb.name}"
        down = sorted({n for (n, _), undo in run.faults.items() if n != node and undo == "start"})
        if down:
            # Another node this scenario stopped is still down: the lab can't be ready
            # before a later step starts it (which then waits).
            return True, f"{node}: {verb.name}; {', '.join(down)} still down"
        # A restored node is only useful once the lab is ready again.
        run.wait_restored([node])
        if not run.wait_gitaly:
            return True, f"{node}: {verb.name}; lab ready"
        ok, text = _settle_git(run, node)
        return ok, f"{node}: {verb.name}; lab ready; {text}"

    return act


def verb_kinds(verbs: Mapping[str, Verb] = VERBS) -> dict[str, StepKind]:
    """A step kind per fault verb (``stop: gitaly1``), as the verb table says."""
    return {v.name: StepKind(v.name, (node_arg(),), _verb_step(v), undo=v.undo,
                             ready_after=v.ready_after) for v in verbs.values()}


# --- the registry -----------------------------------------------------------------

KINDS: dict[str, StepKind] = {k.name: k for k in (
    StepKind("create_project", (Arg("project", _str, "a project alias", True, Ref.NEW_PROJECT, str),
                                Arg("storage", _str, "a storage name", ref=Ref.STORAGE, kind=str)),
             _create_project),
    StepKind("push", (PROJECT, Arg("files", _file_map, "a mapping of file name -> content "
                                   "(paths inside the repository: relative, no '..', "
                                   "not in .git)", kind=dict),
                      Arg("branch", _branch, "a branch name", kind=str)), _push),
    StepKind("clone", (PROJECT,), _clone),
    StepKind("api", (Arg("path", _str, "an API path like /api/v4/user", True,
                         Ref.PROJECT_PATH, str),
                     Arg("method", _method, "GET, POST, PUT or DELETE", kind=str),
                     Arg("data", _any_map, "a mapping (the JSON body)", kind=dict)), _api),
    StepKind("exec", (node_arg(), Arg("cmd", _str_list, "a list of arguments", True,
                                      kind=list)), _exec),
    StepKind("wait", (Arg("seconds", _seconds, "a number of seconds from 0 to 600", True,
                          kind=(int, float)),), _wait),
    StepKind("repo_on_storage", (PROJECT, Arg("storage", _str, "a storage name", True,
                                              Ref.STORAGE, str)), _repo_on_storage),
    StepKind("replicas", (PROJECT,
                          Arg("nodes", _str_list, "a list of Gitaly node names", kind=list),
                          Arg("absent", _str_list, "a list of Gitaly node names", kind=list),
                          Arg("wait", _seconds, "a number of seconds", kind=(int, float))),
             _replicas),
    StepKind("unhealthy", (Arg("node", _str, "a Gitaly node behind a Praefect", True,
                               Ref.CLUSTER_GITALY, str),
                           Arg("wait", _seconds, "a number of seconds from 0 to 600",
                               kind=(int, float))), _unhealthy),
    StepKind("port", (node_arg(), Arg("port", _port, "http or gitaly", True, kind=str),
                      Arg("published", _bool, "true or false", kind=bool)), _published),
    StepKind("reachable", (node_arg(), Arg("port", _port, "http or gitaly", True, kind=str),
                           node_arg("from")), _reachable),
)}

#: Every step kind a scenario file may use.
STEPS: dict[str, StepKind] = {**KINDS, **verb_kinds()}


def faults(steps: Registry = STEPS) -> tuple[str, ...]:
    """The kinds ``given.faults`` takes: those with an undo."""
    return tuple(name for name, kind in steps.items() if kind.undo is not None)
