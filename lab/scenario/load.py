"""Scenario YAML -> ``Scenario``; and a scenario + flavour/version -> its labs.

Errors name the file, the line and the key, like lab specs (they share
``lab.spec.yamlfile.load_yaml`` and ``Origins``). Overrides under ``lab.set`` and
``given.set`` are spec keys, so a bad one is reported at its line in the
scenario file with the spec's own message.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lab.errors import SpecError
from lab.model.lab import Lab
from lab.resources import data_dir
from lab.scenario.model import (
    Expect,
    Fault,
    LogExpect,
    Outcome,
    Restore,
    Scenario,
    ScenarioLabs,
    Step,
    StepKind,
)
from lab.spec.labspec import build_lab, mapping, resolved_spec
from lab.spec.topologies import TOPOLOGIES, topology
from lab.spec.yamlfile import (
    Origins,
    apply_set,
    dotted_key,
    error_at,
    load_yaml,
    merge,
    read_user_file,
    record_all,
)

Path_ = tuple[str, ...]

SCENARIO_KEYS = ("name", "description", "guide", "flavors", "lab", "given", "steps")
LAB_KEYS = ("topology", "spec", "version", "set")
GIVEN_KEYS = ("set", "faults")
EXPECT_KEYS = ("outcome", "output", "log")
LOG_KEYS = ("node", "pattern")
FLAVORS = ("omnibus", "sim")
PORTS = ("http", "gitaly")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
TEMPLATE_RE = re.compile(r"\{([^{}]*)\}")

# Whether a step argument's value is of the kind the step takes.
Validator = Callable[[Any], bool]


def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _port(v: Any) -> bool:
    return v in PORTS


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _any_map(v: Any) -> bool:
    return isinstance(v, dict)


def _method(v: Any) -> bool:
    return isinstance(v, str) and v.upper() in ("GET", "POST", "PUT", "DELETE")


# kind -> argument -> (validator, what it must be, required). The first argument is
# the one a scalar shorthand sets (`- push: p1`, `- stop: gitaly1`).
ArgSpec = dict[str, tuple[Validator, str, bool]]
_NODE: ArgSpec = {"node": (_str, "a node name", True)}
STEP_ARGS: dict[StepKind, ArgSpec] = {
    StepKind.CREATE_PROJECT: {"project": (_str, "a project alias", True),
                              "storage": (_str, "a storage name", False)},
    StepKind.PUSH: {"project": (_str, "a project alias", True),
                    "files": (_str_map, "a mapping of file name -> content", False),
                    "branch": (_str, "a branch name", False)},
    StepKind.CLONE: {"project": (_str, "a project alias", True)},
    StepKind.API: {"path": (_str, "an API path like /api/v4/user", True),
                   "method": (_method, "GET, POST, PUT or DELETE", False),
                   "data": (_any_map, "a mapping (the JSON body)", False)},
    StepKind.EXEC: {"node": (_str, "a node name", True),
                    "cmd": (_str_list, "a list of arguments", True)},
    StepKind.REPO_ON_STORAGE: {"project": (_str, "a project alias", True),
                               "storage": (_str, "a storage name", True)},
    StepKind.PORT: {"node": (_str, "a node name", True),
                    "port": (_port, "http or gitaly", True),
                    "published": (_bool, "true or false", False)},
    StepKind.REACHABLE: {"node": (_str, "a node name", True),
                         "port": (_port, "http or gitaly", True),
                         "from": (_str, "a node name", True)},
}
ACTIONS = {a.value: StepKind.FAULT for a in Fault} | {a.value: StepKind.RESTORE for a in Restore}
STEP_NAMES = tuple(k.value for k in STEP_ARGS if k not in (StepKind.FAULT, StepKind.RESTORE)) \
    + tuple(ACTIONS)


class _Ctx:
    """Where we are in one file, to make errors that point at it."""

    def __init__(self, origins: Origins) -> None:
        self.origins = origins

    def line(self, path: Path_) -> int | None:
        return self.origins.of(path)[1]

    def fail(self, path: Path_, message: str) -> SpecError:
        return error_at(self.origins, path, message)

    def regex(self, value: Any, path: Path_) -> str:
        if not _str(value):
            raise self.fail(path, f"expected a regular expression, got {value!r}")
        try:
            re.compile(value)
        except re.error as exc:
            raise self.fail(path, f"not a valid regular expression: {exc}") from None
        return str(value)


def _sets(ctx: _Ctx, value: Any, path: Path_) -> tuple[tuple[str, Any, int | None], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ctx.fail(path, "expected a mapping of spec keys to values, "
                       "e.g. nodes.gitaly1.secrets: own")
    return tuple((str(k), v, ctx.line((*path, str(k)))) for k, v in value.items())


def _expect(ctx: _Ctx, value: Any, path: Path_) -> Expect:
    if value is None:
        return Expect()
    if isinstance(value, str):
        value = {"outcome": value}
    data = mapping(value, path, ctx.origins, EXPECT_KEYS)
    outcome_raw = data.get("outcome", "success")
    if outcome_raw not in (o.value for o in Outcome):
        raise ctx.fail((*path, "outcome"), f"{outcome_raw!r} is not one of: success, fail")
    outcome = Outcome(outcome_raw)
    output = ctx.regex(data["output"], (*path, "output")) if "output" in data else None
    if outcome is Outcome.FAIL and output is None:
        raise ctx.fail(path, "a `fail` expectation needs an `output` pattern naming the "
                       "specific error, so the step cannot fail for the wrong reason")
    log = None
    if "log" in data:
        ldata = mapping(data["log"], (*path, "log"), ctx.origins, LOG_KEYS)
        for k in LOG_KEYS:
            if k not in ldata:
                raise ctx.fail((*path, "log"), f"a log expectation needs {k!r}")
        if not _str(ldata["node"]):
            raise ctx.fail((*path, "log", "node"), "expected a node name")
        log = LogExpect(str(ldata["node"]), ctx.regex(ldata["pattern"], (*path, "log", "pattern")))
    return Expect(outcome, output, log)


def _step(ctx: _Ctx, value: Any, path: Path_, *, allowed: tuple[str, ...] = STEP_NAMES) -> Step:
    if not isinstance(value, dict):
        raise ctx.fail(path, f"a step is a mapping like `push: p1`; valid steps: "
                       f"{', '.join(allowed)}")
    names = [k for k in value if k != "expect"]
    unknown = [k for k in names if k not in allowed]
    if unknown:
        raise ctx.fail((*path, unknown[0]), f"unknown step {unknown[0]!r}; valid steps: "
                       f"{', '.join(allowed)}")
    if len(names) != 1:
        raise ctx.fail(path, f"a step names exactly one action, found {len(names)}: "
                       f"{', '.join(names) or 'none'}")
    name = names[0]
    apath = (*path, name)
    raw = value[name]
    if name in ACTIONS:
        kind, spec = ACTIONS[name], _NODE
    else:
        kind, spec = StepKind(name), STEP_ARGS[StepKind(name)]
    if not isinstance(raw, dict):
        raw = {next(iter(spec)): raw}
    args = mapping(raw, apath, ctx.origins, tuple(spec))
    for arg, (check, what, required) in spec.items():
        if arg not in args:
            if required:
                raise ctx.fail(apath, f"{name} needs {arg!r} ({what})")
            continue
        if not check(args[arg]):
            raise ctx.fail((*apath, arg), f"expected {what}, got {args[arg]!r}")
    ordered = tuple((k, args[k]) for k in spec if k in args)
    if kind in (StepKind.FAULT, StepKind.RESTORE):
        ordered = (("action", name), *ordered)
    return Step(kind, ordered, _expect(ctx, value.get("expect"), (*path, "expect")),
                ctx.line(path))


def _check_aliases(ctx: _Ctx, steps: tuple[Step, ...]) -> None:
    defined: set[str] = set()
    for i, step in enumerate(steps):
        path = ("steps", str(i), step.kind.value)
        used: list[str] = []
        if step.kind is StepKind.API:
            used = TEMPLATE_RE.findall(str(step.arg("path")))
        elif step.kind is not StepKind.CREATE_PROJECT and step.arg("project"):
            used = [str(step.arg("project"))]
        for alias in used:
            if alias not in defined:
                raise ctx.fail(path, f"project {alias!r} is not created by an earlier "
                               "create_project step")
        if step.kind is StepKind.CREATE_PROJECT:
            alias = str(step.arg("project"))
            if not ALIAS_RE.match(alias):
                raise ctx.fail((*path, "project"), f"invalid project alias {alias!r} "
                               "(lower-case letters, digits and -, at most 20)")
            defined.add(alias)


def parse_scenario(text: str, source: str) -> Scenario:
    """Parse one scenario file's text (no lab resolution; see ``resolve_labs``)."""
    origins = Origins()
    data = load_yaml(text, source, origins)
    ctx = _Ctx(origins)
    mapping(data, (), ctx.origins, SCENARIO_KEYS)
    default_name = Path(source).stem
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.fail(("name",), f"invalid scenario name {name!r} "
                       "(lower-case letters, digits, - and _)")
    for k in ("description", "guide"):
        if k in data and not isinstance(data[k], str):
            raise ctx.fail((k,), "expected text")
    flavors = data.get("flavors", list(FLAVORS))
    if not isinstance(flavors, list) or not flavors or any(f not in FLAVORS for f in flavors):
        raise ctx.fail(("flavors",), f"expected a list of flavours out of: {', '.join(FLAVORS)}")
    labd = mapping(data.get("lab"), ("lab",), ctx.origins, LAB_KEYS)
    topo = labd.get("topology")
    if topo is not None and topo not in TOPOLOGIES:
        raise ctx.fail(("lab", "topology"), f"unknown topology {topo!r}; known topologies: "
                       f"{', '.join(sorted(TOPOLOGIES))}")
    spec = labd.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise ctx.fail(("lab", "spec"), "expected an inline lab spec (a mapping with nodes: ...)")
    if topo is None and not spec:
        raise ctx.fail(("lab",), "name a topology (" + ", ".join(sorted(TOPOLOGIES)) +
                       ") or give an inline spec")
    version = labd.get("version")
    if version is not None and not isinstance(version, str):
        raise ctx.fail(("lab", "version"), f"expected a version string like \"18.11.1\", "
                       f"got {version!r} (quote it)")
    given = mapping(data.get("given"), ("given",), ctx.origins, GIVEN_KEYS)
    faults_raw = given.get("faults") or []
    if not isinstance(faults_raw, list):
        raise ctx.fail(("given", "faults"), "expected a list like [stop: gitaly1]")
    faults = tuple(_step(ctx, f, ("given", "faults", str(i)),
                         allowed=tuple(a.value for a in Fault))
                   for i, f in enumerate(faults_raw))
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ctx.fail(("steps",), "a scenario needs a list of steps")
    steps = tuple(_step(ctx, s, ("steps", str(i))) for i, s in enumerate(steps_raw))
    _check_aliases(ctx, steps)
    # Keep the inline spec's own origins, re-rooted, so its errors point into this file.
    spec_origins = {p[2:]: v for p, v in origins.places.items() if p[:2] == ("lab", "spec")}
    return Scenario(
        name=name, source=source, description=str(data.get("description", "")).strip(),
        guide=str(data.get("guide", "")).strip(),
        base_sets=_sets(ctx, labd.get("set"), ("lab", "set")),
        given_sets=_sets(ctx, given.get("set"), ("given", "set")),
        given_faults=faults, steps=steps, topology=topo,
        spec={"data": spec or {}, "origins": spec_origins},
        version=version, flavors=tuple(flavors),
    )


def load_scenario(path: Path, *, flavor: str = "sim", version: str | None = None) -> Scenario:
    """Read, parse and resolve a scenario file, so every schema error surfaces here."""
    scenario = parse_scenario(read_user_file(Path(path), "scenario file"), str(path))
    resolve_labs(scenario, flavor=flavor, version=version)
    return scenario


def builtin_scenario(name: str) -> Path | None:
    """The built-in library's scenario called ``name`` (a file stem), if there is one."""
    if "/" in name or name.startswith("."):
        return None
    path = data_dir("scenarios") / f"{name}.yaml"
    return path if path.is_file() else None


def builtin_names() -> list[str]:
    return sorted(p.stem for p in data_dir("scenarios").glob("*.yaml"))


def find_scenarios(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories searched recursively for *.yaml / *.yml; a bare name
    that is no file here names a scenario of the built-in library (which ships in the wheel)."""
    out: list[Path] = []
    for p in paths:
        builtin = None if p.exists() else builtin_scenario(str(p))
        if builtin is not None:
            out.append(builtin)
        elif p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file())
        elif p.exists():
            out.append(p)
        else:
            raise SpecError("no such scenario file or directory (built-in scenarios: "
                            f"{', '.join(builtin_names())})", source=str(p))
    return out


# --- labs ----------------------------------------------------------------------

def _apply(data: dict[str, Any], sets: Iterable[tuple[str, Any, int | None]], source: str,
           origins: Origins) -> dict[str, Any]:
    for key, value, line in sets:
        data = apply_set(data, key, value, origins, source=source, line=line)
    return data


def _build(scenario: Scenario, flavor: str, version: str | None,
           sets: Iterable[tuple[str, Any, int | None]]) -> Lab:
    origins = Origins()
    data: dict[str, Any] = {}
    if scenario.topology:
        data = topology(scenario.topology)
        record_all(data, (), f"topology {scenario.topology!r}", None, origins)
    inline = dict(scenario.spec.get("data") or {})
    if inline:
        for p, (src, line) in dict(scenario.spec.get("origins") or {}).items():
            origins.record(p, src, line)
        data = merge(data, inline)
    origins.record((), scenario.source, None)
    data["name"] = "scenario"  # the runner names the lab after its group
    data["flavor"] = flavor
    chosen = scenario.version or version
    if chosen:
        data["version"] = chosen
        origins.record(("version",), scenario.source if scenario.version else "--version", None)
    data.pop("topology", None)
    data = _apply(data, sets, scenario.source, origins)
    lab = build_lab(data, origins)
    return dataclasses.replace(lab, topology=scenario.topology or "")


def _flat(data: Any, path: str = "") -> dict[str, str]:
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{path}.{k}" if path else str(k)))
        return out
    return {path: json.dumps(data)}


def lab_key(lab: Lab) -> str:
    """Labs with the same key can be the same running lab (its name aside)."""
    return repr((str(lab.version), lab.edition.value, lab.flavor.value, lab.nodes,
                 lab.gitaly_token, lab.image))


def _check_refs(scenario: Scenario, lab: Lab) -> None:
    nodes = {n.name for n in lab.nodes}
    storages = set(lab.storages)
    steps: list[tuple[Path_, Step]] = [(("given", "faults", str(i)), s)
                                       for i, s in enumerate(scenario.given_faults)]
    steps += [(("steps", str(i)), s) for i, s in enumerate(scenario.steps)]

    def fail(step: Step, path: Path_, message: str) -> SpecError:
        return SpecError(message, source=scenario.source, line=step.line, key=dotted_key(path))

    for where, step in steps:
        # The step's key in the file: the fault/restore action itself, else the step kind.
        action = (*where, str(step.arg("action") or step.kind.value))
        for arg in ("node", "from"):
            value = step.arg(arg)
            if value is not None and value not in nodes:
                raise fail(step, (*action, arg),
                           f"no node {value!r} in this lab; nodes: {', '.join(sorted(nodes))}")
        storage = step.arg("storage")
        if storage is not None and storage not in storages:
            raise fail(step, (*action, "storage"), f"no storage {storage!r} in this lab; "
                       f"storages: {', '.join(sorted(storages))}")
        log = step.expect.log
        if log is not None and log.node not in nodes:
            raise fail(step, (*where, "expect", "log", "node"),
                       f"no node {log.node!r} in this lab; nodes: {', '.join(sorted(nodes))}")


def resolve_labs(scenario: Scenario, *, flavor: str = "sim",
                 version: str | None = None) -> ScenarioLabs:
    """The group's base lab (topology + lab.set) and the target (+ given.set)."""
    base = _build(scenario, flavor, version, scenario.base_sets)
    target = _build(scenario, flavor, version, scenario.base_sets + scenario.given_sets)
    _check_refs(scenario, target)
    name = group_name(base)
    base = dataclasses.replace(base, name=name)
    target = dataclasses.replace(target, name=name)
    before, after = _flat(resolved_spec(base)), _flat(resolved_spec(target))
    changes = tuple(f"{k}: {before.get(k, '(unset)')} -> {after.get(k, '(unset)')}"
                    for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k))
    return ScenarioLabs(base=base, target=target, changes=changes)


def group_name(lab: Lab) -> str:
    """A stable lab name per group and state folder, so `--keep` labs are found again by
    the next run, and two state folders (users, checkouts) never share a lab on one engine."""
    import hashlib

    from lab.store.state import labs_dir

    digest = hashlib.sha256(f"{lab_key(lab)}\0{labs_dir()}".encode()).hexdigest()[:6]
    return f"sc-{lab.topology or 'custom'}-{lab.flavor.value}-{digest}"
