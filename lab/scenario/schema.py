"""JSON Schemas of a lab spec and a scenario file, for editors (yaml-language-server).

Generated from the definitions the loaders check, never written by hand: the keys of
each mapping (``lab.spec.labspec.*_KEYS``, ``lab.scenario.load.*_KEYS``), the choices
(the model's enums, the built-in topologies), and the step kinds with their argument
names (the step registry, ``lab.scenario.steps.STEPS``). A key the loader does not take
is flagged by the editor as the loader would refuse it, and so is a value of the wrong
type (each key's ``Field``: the type ``mapping`` checks, and whether empty means unset;
a step argument's ``Arg.kind``). Finer checks (ranges, patterns, names) stay the
loader's, with file, line and key.

The package ships the generated files (``lab/schemas/``); ``tests`` check they are what
``spec_schema``/``scenario_schema`` give, and ``python3 -m lab.scenario.schema`` rewrites
them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from lab.model.topology import Edition, Engine, Flavor, Install, Role, SecretsPolicy
from lab.scenario import load
from lab.scenario.steps import STEPS, Registry, faults
from lab.spec import labspec
from lab.spec.labspec import Field
from lab.spec.topologies import TOPOLOGIES

DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SPEC_FILE = "lab-spec.schema.json"
SCENARIO_FILE = "scenario.schema.json"

Schema = dict[str, Any]


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number",
               list: "array", dict: "object"}


def _choice(values: Iterable[str] | type[Enum]) -> Schema:
    if isinstance(values, type):
        return {"enum": [str(v.value) for v in values]}
    return {"enum": list(values)}


def _field(field: Field, known: Schema | None = None) -> Schema:
    """A value's schema: its field's type (``null`` too where empty means unset), and
    what ``known`` adds (choices, items)."""
    out: Schema = {}
    if field.kind is not None:
        kinds = field.kind if isinstance(field.kind, tuple) else (field.kind,)
        types = [_JSON_TYPES[k] for k in kinds] + (["null"] if field.nullable else [])
        out["type"] = types[0] if len(types) == 1 else types
    out.update(known or {})
    if field.nullable and "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _object(fields: Mapping[str, Field], known: Mapping[str, Schema] | None = None) -> Schema:
    known = known or {}
    return {"type": "object", "additionalProperties": False,
            "properties": {k: _field(f, known.get(k)) for k, f in fields.items()}}


def _spec_body() -> Schema:
    storage = {"anyOf": [{"type": "string"}, _object(labspec.STORAGE_FIELDS)]}
    node = _object(labspec.NODE_FIELDS, {
        "roles": {"items": _choice(Role)},
        "secrets": _choice(SecretsPolicy),
        "install": _choice(Install),
        "storages": {"items": storage},
        "tls_san": {"items": {"type": "string"}},
        "gitaly_nodes": {"items": {"type": "string"}},
        "publish": {"additionalProperties": {"type": "integer"}},
    })
    return _object(labspec.LAB_FIELDS, {
        "topology": _choice(sorted(TOPOLOGIES)),
        "version": {"type": ["string", "null"]},
        "edition": _choice(Edition),
        "flavor": _choice(Flavor),
        "engine": _choice(Engine),
        "swarm": _object(labspec.SWARM_FIELDS),
        "nodes": {"additionalProperties": node},
    })


def spec_schema() -> Schema:
    """The schema of a lab spec (`lab up -f FILE`)."""
    return {"$schema": DRAFT, "title": "gitlab-testlab lab spec", **_spec_body()}


def _step(name: str, steps: Registry, expect: Schema) -> Schema:
    fields = {a.name: Field(a.kind, a.what) for a in steps[name].args}
    first = _field(fields[steps[name].args[0].name])
    # `push: p1` sets the first argument; a mapping names them.
    value = {"anyOf": [first, _object(fields)]} if first.get("type") != "object" \
        else _object(fields)
    return {"type": "object", "required": [name], "additionalProperties": False,
            "properties": {name: value, "expect": expect}}


def scenario_schema(steps: Registry = STEPS) -> Schema:
    """The schema of a scenario file (`lab run FILE`, pytest's scenario items)."""
    outcome = {"enum": ["success", "fail"]}
    expect = {"anyOf": [outcome, _object(load.EXPECT_FIELDS, {
        "outcome": outcome, "log": _object(load.LOG_FIELDS)})]}
    step = {"anyOf": [_step(name, steps, expect) for name in sorted(steps)]}
    fault = {"anyOf": [_step(name, steps, {}) for name in sorted(faults(steps))]}
    return {"$schema": DRAFT, "title": "gitlab-testlab scenario",
            **_object(load.SCENARIO_FIELDS, {
                "flavors": {"items": _choice(Flavor)},
                "lab": _object(load.LAB_FIELDS, {"topology": _choice(sorted(TOPOLOGIES)),
                                                 "version": {"type": ["string", "null"]},
                                                 "spec": _spec_body()}),
                "given": _object(load.GIVEN_FIELDS, {"faults": {"items": fault}}),
                "steps": {"items": step},
            })}


def rendered() -> dict[str, str]:
    """File name -> the text of each shipped schema."""
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n"
            for name, schema in ((SPEC_FILE, spec_schema()),
                                 (SCENARIO_FILE, scenario_schema()))}


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (SCHEMA_DIR / name).write_text(text)


if __name__ == "__main__":
    main()
