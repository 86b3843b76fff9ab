"""JSON Schemas of a lab spec and a scenario file, for editors (yaml-language-server).

Generated from the definitions the loaders check, never written by hand: the keys of
each mapping (``lab.spec.labspec.*_KEYS``, ``lab.scenario.load.*_KEYS``), the choices
(the model's enums, the built-in topologies), and the step kinds with their argument
names (the step registry, ``lab.scenario.steps.STEPS``). A key the loader does not take
is flagged by the editor as the loader would refuse it. Values are checked by the loader
itself (with file, line and key), so a value's schema here is a choice list or nothing.

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
from lab.spec.topologies import TOPOLOGIES

DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SPEC_FILE = "lab-spec.schema.json"
SCENARIO_FILE = "scenario.schema.json"

Schema = dict[str, Any]


def _choice(values: Iterable[str] | type[Enum]) -> Schema:
    if isinstance(values, type):
        return {"enum": [str(v.value) for v in values]}
    return {"enum": list(values)}


def _object(keys: Iterable[str], known: Mapping[str, Schema] | None = None) -> Schema:
    known = known or {}
    return {"type": "object", "additionalProperties": False,
            "properties": {k: known.get(k, {}) for k in keys}}


def _spec_body() -> Schema:
    storage = {"anyOf": [{"type": "string"}, _object(labspec.STORAGE_KEYS)]}
    node = _object(labspec.NODE_KEYS, {
        "roles": {"anyOf": [_choice(Role), {"type": "array", "items": _choice(Role)}]},
        "secrets": _choice(SecretsPolicy),
        "install": _choice(Install),
        "storages": {"type": "array", "items": storage},
    })
    return _object(labspec.LAB_KEYS, {
        "topology": _choice(sorted(TOPOLOGIES)),
        "edition": _choice(Edition),
        "flavor": _choice(Flavor),
        "engine": _choice(Engine),
        "swarm": _object(labspec.SWARM_KEYS),
        "nodes": {"type": "object", "additionalProperties": node},
    })


def spec_schema() -> Schema:
    """The schema of a lab spec (`lab up -f FILE`)."""
    return {"$schema": DRAFT, "title": "gitlab-testlab lab spec", **_spec_body()}


def _step(name: str, steps: Registry, expect: Schema) -> Schema:
    args = _object(a.name for a in steps[name].args)
    # `push: p1` sets the first argument; a mapping names them.
    value = {"anyOf": [{"type": ["string", "number", "boolean", "array"]}, args]}
    return {"type": "object", "required": [name], "additionalProperties": False,
            "properties": {name: value, "expect": expect}}


def scenario_schema(steps: Registry = STEPS) -> Schema:
    """The schema of a scenario file (`lab run FILE`, pytest's scenario items)."""
    expect = {"anyOf": [{"enum": ["success", "fail"]}, _object(load.EXPECT_KEYS, {
        "outcome": {"enum": ["success", "fail"]}, "log": _object(load.LOG_KEYS)})]}
    step = {"anyOf": [_step(name, steps, expect) for name in sorted(steps)]}
    fault = {"anyOf": [_step(name, steps, {}) for name in sorted(faults(steps))]}
    return {"$schema": DRAFT, "title": "gitlab-testlab scenario",
            **_object(load.SCENARIO_KEYS, {
                "flavors": {"type": "array", "items": _choice(Flavor)},
                "lab": _object(load.LAB_KEYS, {"topology": _choice(sorted(TOPOLOGIES)),
                                               "spec": _spec_body(),
                                               "set": {"type": "object"}}),
                "given": _object(load.GIVEN_KEYS, {"set": {"type": "object"},
                                                   "faults": {"type": "array",
                                                              "items": fault}}),
                "steps": {"type": "array", "items": step},
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
