"""Scenario YAML -> ``Scenario``; and a scenario + flavour/version -> its labs.

Errors name the file, the line and the key, like lab specs (they share
``lab.spec.yamlfile.load_yaml`` and ``Origins``). Overrides under ``lab.set`` and
``given.set`` are spec keys, so a bad one is reported at its line in the
scenario file with the spec's own message.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lab.errors import SpecError
from lab.model.topology import Lab
from lab.omnibus.release import OLDEST_SUPPORTED, Version
from lab.resources import data_dir
from lab.scenario.definition import (
    ByRelease,
    Expect,
    Expected,
    LogExpect,
    Scenario,
    ScenarioLabs,
    Step,
)
from lab.scenario.patterns import PatternError, compile_pattern
from lab.scenario.pool import group_name, lab_key
from lab.scenario.steps import STEPS, TEMPLATE_RE, Ref, Registry, faults
from lab.spec.labspec import Field, build_lab, mapping, resolved_spec
from lab.spec.topologies import TOPOLOGIES, topology
from lab.spec.yamlfile import (
    Origins,
    apply_set,
    dotted_key,
    error_at,
    files_below,
    load_yaml,
    merge,
    read_user_file,
    record_all,
)

Path_ = tuple[str, ...]

_TEXT = Field(str, "text")
_PATTERN = Field((str, dict), "a regular expression, or release ranges to regular expressions")
_SETS = Field(dict, "a mapping of spec keys to values, e.g. nodes.gitaly1.secrets: own", True)
#: Each key's value type, checked by ``mapping`` and made into the JSON Schema.
SCENARIO_FIELDS: dict[str, Field] = {
    "name": Field(str, "a scenario name (lower-case letters, digits, - and _)"),
    "description": _TEXT, "guide": _TEXT,
    "flavors": Field(list, "a list of flavours out of: omnibus, sim"),
    "lab": Field(dict, "a mapping", True),
    "given": Field(dict, "a mapping", True),
    "steps": Field(list, "a list of steps"),
}
LAB_FIELDS: dict[str, Field] = {
    "topology": Field(None, nullable=True),
    "spec": Field(dict, "an inline lab spec (a mapping with nodes: ...)", True),
    "version": Field(None, nullable=True),  # its own message: quote it
    "set": _SETS,
}
GIVEN_FIELDS: dict[str, Field] = {"set": _SETS,
                                  "faults": Field(list, "a list like [stop: gitaly1]", True)}
EXPECT_FIELDS: dict[str, Field] = {"outcome": Field(None), "output": _PATTERN,
                                   "log": Field(dict, "a mapping")}
LOG_FIELDS: dict[str, Field] = {"node": Field(str, "a node name"), "pattern": _PATTERN}
LOG_KEYS = tuple(LOG_FIELDS)
FLAVORS = ("omnibus", "sim")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}\Z")
#: Arguments naming a part of the lab, checked once the lab is known (``_check_refs``).
LAB_REFS = (Ref.NODE, Ref.STORAGE, Ref.CLUSTER_GITALY)

class _Ctx:
    """Where we are in one file, to make errors that point at it."""

    def __init__(self, origins: Origins) -> None:
        self.origins = origins

    def line(self, path: Path_) -> int | None:
        return self.origins.of(path)[1]

    def fail(self, path: Path_, message: str) -> SpecError:
        return error_at(self.origins, path, message)

    def regex(self, value: Any, path: Path_) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a regular expression, got {value!r}")
        try:
            compile_pattern(value)
        except PatternError as exc:
            # As the runner shows a pattern: /.../, as written (line breaks escaped).
            shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise self.fail(path, f"/{shown}/ {exc}") from None
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
    data = mapping(value, path, ctx.origins, EXPECT_FIELDS)
    expected_raw = data.get("outcome", "success")
    if expected_raw not in (o.value for o in Expected):
        raise ctx.fail((*path, "outcome"), f"{expected_raw!r} is not one of: success, fail")
    expected = Expected(expected_raw)
    output, output_eras = _patterns(ctx, data["output"], (*path, "output")) \
        if "output" in data else (None, None)
    if expected is Expected.FAIL and output is None:
        raise ctx.fail(path, "a `fail` expectation needs an `output` pattern naming the "
                       "specific error, so the step cannot fail for the wrong reason")
    log = None
    if "log" in data:
        ldata = mapping(data["log"], (*path, "log"), ctx.origins, LOG_FIELDS)
        for k in LOG_KEYS:
            if k not in ldata:
                raise ctx.fail((*path, "log"), f"a log expectation needs {k!r}")
        if not isinstance(ldata["node"], str) or not ldata["node"]:
            raise ctx.fail((*path, "log", "node"), "expected a node name")
        pattern, log_eras = _patterns(ctx, ldata["pattern"], (*path, "log", "pattern"))
        log = LogExpect(str(ldata["node"]), pattern, log_eras)
    return Expect(expected, output, log, output_eras)


RANGE_RE = re.compile(r"^([0-9]+)\.([0-9]+)(?:(\+)|-([0-9]+)\.([0-9]+|x))?\Z")
RANGE_HELP = ("a release range: \"13.2+\" (13.2 and later), \"11.11-13.1\" (both series "
              "included), \"11.11-15.x\" (to the last 15.x) or \"13.1\" (that series)")


def _patterns(ctx: _Ctx, value: Any, path: Path_) -> tuple[str, ByRelease | None]:
    """A pattern, or a mapping of release ranges to patterns covering every release."""
    if not isinstance(value, dict):
        return ctx.regex(value, path), None
    ranges: list[tuple[Version, Version | None, str]] = []
    for key, pattern in value.items():
        m = RANGE_RE.match(str(key))
        if not m:
            raise ctx.fail((*path, str(key)), f"{key!r} is not {RANGE_HELP}")
        lo = Version(int(m[1]), int(m[2]), 0)
        hi: Version | None = None
        if not m[3]:
            if m[5] == "x":  # to the end of that major release: the next starts at N+1.0
                hi = Version(int(m[4]) + 1, 0, 0)
            else:
                last = (int(m[4]), int(m[5])) if m[4] else (lo.major, lo.minor)
                hi = Version(last[0], last[1] + 1, 0)
            if hi <= lo:
                raise ctx.fail((*path, str(key)), f"{key!r}: the range ends before it starts")
        ranges.append((lo, hi, ctx.regex(pattern, (*path, str(key)))))
    ranges.sort(key=lambda r: r[0])
    oldest = Version.parse(OLDEST_SUPPORTED)
    if not ranges or ranges[0][0] > oldest:
        raise ctx.fail(path, f"the release ranges must start at {oldest.series} or before, so "
                       "every release has its pattern")
    for (_, hi, _), (lo, _, _) in itertools.pairwise(ranges):
        if hi is None or hi != lo:
            raise ctx.fail(path, "the release ranges must follow each other without gap or "
                           f"overlap (one ends, the next starts at {lo.series})")
    if ranges[-1][1] is not None:
        raise ctx.fail(path, "the last release range must be open (\"X.Y+\"), so a newer "
                       "release has its pattern")
    eras = ByRelease(tuple(ranges))
    return eras.newest, eras


def _step(ctx: _Ctx, value: Any, path: Path_, steps: Registry,
          allowed: tuple[str, ...]) -> Step:
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
    kind = steps[name]
    raw = value[name]
    if not isinstance(raw, dict):
        raw = {kind.args[0].name: raw}
    args = mapping(raw, apath, ctx.origins,
                   {a.name: Field(a.kind, a.what) for a in kind.args})
    for arg in kind.args:
        if arg.name not in args:
            if arg.required:
                raise ctx.fail(apath, f"{name} needs {arg.name!r} ({arg.what})")
            continue
        if not arg.check(args[arg.name]):
            raise ctx.fail((*apath, arg.name), f"expected {arg.what}, got {args[arg.name]!r}")
    ordered = tuple((a.name, args[a.name]) for a in kind.args if a.name in args)
    # What the lab must have, checked once the lab is known (``resolve_labs``).
    lab_names = tuple((a.name, a.ref.value) for a in kind.args
                  if a.ref in LAB_REFS and a.name in args)
    return Step(name, ordered, _expect(ctx, value.get("expect"), (*path, "expect")),
                ctx.line(path), lab_names)


def _refs(step: Step, steps: Registry, ref: Ref) -> list[str]:
    """The values of ``step``'s arguments that name a ``ref``."""
    return [str(step.arg(a.name)) for a in steps[step.kind].args
            if a.ref is ref and step.arg(a.name) is not None]


def _check_aliases(ctx: _Ctx, scenario_steps: tuple[Step, ...], steps: Registry) -> None:
    defined: set[str] = set()
    for i, step in enumerate(scenario_steps):
        path = ("steps", str(i), step.kind)
        used = _refs(step, steps, Ref.PROJECT) + [
            alias for text in _refs(step, steps, Ref.PROJECT_PATH)
            for alias in TEMPLATE_RE.findall(text)]
        for alias in used:
            if alias not in defined:
                raise ctx.fail(path, f"project {alias!r} is not created by an earlier "
                               "create_project step")
        for alias in _refs(step, steps, Ref.NEW_PROJECT):
            if not ALIAS_RE.match(alias):
                arg = next(a.name for a in steps[step.kind].args if a.ref is Ref.NEW_PROJECT)
                raise ctx.fail((*path, arg), f"invalid project alias {alias!r} "
                               "(lower-case letters, digits and -, at most 20)")
            defined.add(alias)


def parse_scenario(text: str, source: str, *, steps: Registry = STEPS) -> Scenario:
    """Parse one scenario file's text (no lab resolution; see ``resolve_labs``).

    ``steps``: the step kinds the file may use (tests pass a registry of their own).
    """
    origins = Origins()
    data = load_yaml(text, source, origins, not_a_mapping="a scenario must be a mapping of "
                     "keys (name, lab, given, steps, ...)")
    ctx = _Ctx(origins)
    mapping(data, (), ctx.origins, SCENARIO_FIELDS)
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
    labd = mapping(data.get("lab"), ("lab",), ctx.origins, LAB_FIELDS)
    topo = labd.get("topology")
    if topo is not None and (not isinstance(topo, str) or topo not in TOPOLOGIES):
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
    given = mapping(data.get("given"), ("given",), ctx.origins, GIVEN_FIELDS)
    faults_raw = given.get("faults") or []
    if not isinstance(faults_raw, list):
        raise ctx.fail(("given", "faults"), "expected a list like [stop: gitaly1]")
    faults_ = tuple(_step(ctx, f, ("given", "faults", str(i)), steps, faults(steps))
                    for i, f in enumerate(faults_raw))
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ctx.fail(("steps",), "a scenario needs a list of steps")
    parsed = tuple(_step(ctx, s, ("steps", str(i)), steps, tuple(steps))
                   for i, s in enumerate(steps_raw))
    _check_aliases(ctx, parsed, steps)
    # Keep the inline spec's own origins, re-rooted, so its errors point into this file.
    spec_origins = {p[2:]: v for p, v in origins.places.items() if p[:2] == ("lab", "spec")}
    return Scenario(
        name=name, source=source, description=str(data.get("description", "")).strip(),
        guide=str(data.get("guide", "")).strip(),
        base_sets=_sets(ctx, labd.get("set"), ("lab", "set")),
        given_sets=_sets(ctx, given.get("set"), ("given", "set")),
        given_faults=faults_, steps=parsed, topology=topo,
        spec={"data": spec or {}, "origins": spec_origins},
        version=version, flavors=tuple(flavors),
    )


def parse_scenario_file(path: Path, *, steps: Registry = STEPS) -> Scenario:
    """Read and parse a scenario file (its labs are resolved by ``plan.expand``)."""
    return parse_scenario(read_user_file(Path(path), "scenario file"), str(path), steps=steps)


def load_scenario(path: Path, *, flavor: str = "sim", version: str | None = None) -> Scenario:
    """Read, parse and resolve a scenario file, so every schema error surfaces here."""
    scenario = parse_scenario_file(path)
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
            out += sorted(f for f in files_below(p, "the scenario folder")
                          if f.suffix in (".yaml", ".yml") and f.is_file())
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
           sets: Iterable[tuple[str, Any, int | None]], engine: str = "compose") -> Lab:
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
    data["engine"] = engine
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


def _check_refs(scenario: Scenario, lab: Lab) -> None:
    nodes = {n.name for n in lab.nodes}
    known = {Ref.NODE.value: nodes, Ref.STORAGE.value: set(lab.storages),
             Ref.CLUSTER_GITALY.value: {n.name for n in lab.cluster_gitaly_nodes}}
    steps: list[tuple[Path_, Step]] = [(("given", "faults", str(i)), s)
                                       for i, s in enumerate(scenario.given_faults)]
    steps += [(("steps", str(i)), s) for i, s in enumerate(scenario.steps)]

    def fail(step: Step, path: Path_, message: str) -> SpecError:
        return SpecError(message, source=scenario.source, line=step.line, key=dotted_key(path))

    for where, step in steps:
        for arg, what in step.names:
            value = step.arg(arg)
            if value in known[what]:
                continue
            listed = ", ".join(sorted(known[what]))
            if what == Ref.CLUSTER_GITALY:
                raise fail(step, (*where, step.kind, arg),
                           f"{value!r} is not a Gitaly node behind a Praefect" + (
                               f" in this lab; those are: {listed}" if listed else
                               ": this lab has no Praefect (topology: cluster has one)"))
            raise fail(step, (*where, step.kind, arg), f"no {what} {value!r} in this lab; "
                       f"{what}s: {listed}")
        log = step.expect.log
        if log is not None and log.node not in nodes:
            raise fail(step, (*where, "expect", "log", "node"),
                       f"no node {log.node!r} in this lab; nodes: {', '.join(sorted(nodes))}")


def resolve_labs(scenario: Scenario, *, flavor: str = "sim",
                 version: str | None = None, engine: str = "compose") -> ScenarioLabs:
    """The group's base lab (topology + lab.set) and the target (+ given.set), on
    ``engine`` (compose, or swarm: the same lab as a stack)."""
    base = _build(scenario, flavor, version, scenario.base_sets, engine)
    target = _build(scenario, flavor, version, scenario.base_sets + scenario.given_sets, engine)
    _check_refs(scenario, target)
    name = group_name(base)
    base = dataclasses.replace(base, name=name)
    target = dataclasses.replace(target, name=name)
    return ScenarioLabs(base=base, target=target, changes=spec_changes(base, target))


def spec_changes(before_lab: Lab, after_lab: Lab) -> tuple[str, ...]:
    """What differs between two labs' specs, key by key: "nodes.gitaly1.secrets: a -> b"."""
    before, after = _flat(resolved_spec(before_lab)), _flat(resolved_spec(after_lab))
    return tuple(f"{k}: {before.get(k, '(unset)')} -> {after.get(k, '(unset)')}"
                 for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k))


def on_lab(scenario: Scenario, labs: ScenarioLabs, lab: Lab) -> ScenarioLabs:
    """The scenario's labs moved onto the existing lab ``lab`` (`lab run --lab NAME`): its
    ``given`` is applied to that lab and undone. Refused (SpecError) when the scenario's
    base lab is another lab (topology, ``lab.set``, version, flavour)."""
    if lab_key(labs.base) != lab_key(lab):
        differs = [c for c in spec_changes(lab, labs.base) if not c.startswith("name:")]
        raise SpecError(
            f"this scenario needs another lab than lab {lab.name!r} (GitLab {lab.version}, "
            f"{lab.flavor.value}): {'; '.join(differs) or 'another image'} (lab's value -> "
            "the scenario's); run it without --lab (it then boots a lab of its own), or on a "
            "lab started like it", source=scenario.source)
    return ScenarioLabs(base=lab, target=dataclasses.replace(labs.target, name=lab.name),
                        changes=labs.changes)
