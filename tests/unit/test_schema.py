"""The JSON Schemas editors read: generated from the loaders' own definitions, shipped as
generated, and they accept what the loaders accept and flag the typos the loaders refuse."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lab.errors import SpecError
from lab.scenario import load, schema
from lab.scenario.steps import STEPS
from lab.spec import labspec
from lab.spec.topologies import TOPOLOGIES
from lab.spec.yamlfile import Origins

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def test_the_shipped_files_are_what_the_definitions_give() -> None:
    for name, text in schema.rendered().items():
        assert (schema.SCHEMA_DIR / name).read_text() == text, (
            f"lab/schemas/{name} is stale: run `python3 -m lab.scenario.schema`")


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_built_in_scenario_is_valid(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), schema.scenario_schema())


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_every_built_in_topology_is_a_valid_spec(name: str) -> None:
    jsonschema.validate({"topology": name, **TOPOLOGIES[name]}, schema.spec_schema())


def _errors(data: Any, against: dict[str, Any]) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(against).iter_errors(data)]


def test_typos_the_loader_refuses_are_flagged() -> None:
    good = yaml.safe_load((LIBRARY / "gitaly-own-secrets.yaml").read_text())
    assert _errors({**good, "stesp": []}, schema.scenario_schema())
    assert _errors({**good, "steps": [{"pushh": "p1"}]}, schema.scenario_schema())
    assert _errors({**good, "steps": [{"push": {"projct": "p1"}}]}, schema.scenario_schema())
    assert _errors({**good, "flavors": ["omnibuss"]}, schema.scenario_schema())
    spec = {"topology": "scaled", "nodes": {"gitaly1": {"secret": "own"}}}
    assert _errors(spec, schema.spec_schema())
    assert _errors({"nodes": {"gitaly1": {"secrets": "mine"}}}, schema.spec_schema())
    assert _errors({"topology": "scaledd"}, schema.spec_schema())


# A value of another type than each JSON type names (bool is no integer, as in the loader).
WRONG = {str: 5, bool: "yes", int: "3", list: "x", dict: ["x"], (str, dict): 5,
         (int, float): "soon"}


def _readme_examples() -> list[Any]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return [yaml.safe_load(m[1]) for m in re.finditer(r"```yaml\n(.*?)```", readme, re.S)]


def test_the_readmes_spec_and_scenario_examples_are_valid() -> None:
    examples = [d for d in _readme_examples() if isinstance(d, dict) and
                ("steps" in d or "nodes" in d)]
    assert {"steps" in d for d in examples} == {True, False}  # both formats are shown
    for data in examples:
        against = schema.scenario_schema() if "steps" in data else schema.spec_schema()
        assert _errors(data, against) == []


def _spec_cases() -> list[tuple[tuple[str, ...], Any]]:
    cases: list[tuple[tuple[str, ...], Any]] = []
    for key, field in labspec.LAB_FIELDS.items():
        if field.kind is not None:
            cases.append(((key,), WRONG[field.kind]))
    for key, field in labspec.NODE_FIELDS.items():
        if field.kind is not None:
            node = {"gitaly_nodes": "praefect", "replication_factor": "praefect",
                    "storages": "gitaly1", "tls": "gitaly1"}.get(key, "gitlab")
            cases.append((("nodes", node, key), WRONG[field.kind]))
    for key, field in labspec.SWARM_FIELDS.items():
        cases.append((("swarm", key), WRONG[field.kind]))
    return cases


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    at = out
    for key in path[:-1]:
        at = at.setdefault(key, {})
    at[path[-1]] = value
    return out


@pytest.mark.parametrize(("path", "value"), _spec_cases(), ids=lambda v: str(v))
def test_a_wrongly_typed_spec_value_is_refused_by_schema_and_loader(
        path: tuple[str, ...], value: Any) -> None:
    good = {"topology": "cluster", **TOPOLOGIES["cluster"]}
    if path[0] == "swarm":
        good["engine"] = "swarm"
    assert _errors(good, schema.spec_schema()) == []
    labspec.build_lab(good, Origins())  # the base is good, so the loader refuses the value
    data = _put(good, path, value)
    assert _errors(data, schema.spec_schema()), f"{'.'.join(path)}: {value!r} passes"
    with pytest.raises(SpecError) as exc:
        labspec.build_lab(data, Origins())
    assert exc.value.key == ".".join(path)


def _scenario_cases() -> list[tuple[tuple[str, ...], Any]]:
    tables: list[tuple[tuple[str, ...], Mapping[str, labspec.Field]]] = [
        ((), load.SCENARIO_FIELDS), (("lab",), load.LAB_FIELDS),
        (("given",), load.GIVEN_FIELDS),
        (("steps", "0", "expect"), load.EXPECT_FIELDS),
        (("steps", "0", "expect", "log"), load.LOG_FIELDS)]
    for name, kind in STEPS.items():
        tables.append((("steps", "0", name),
                       {a.name: labspec.Field(a.kind, a.what) for a in kind.args}))
    return [((*where, key), WRONG[f.kind]) for where, fields in tables
            for key, f in fields.items() if f.kind is not None]


@pytest.mark.parametrize(("path", "value"), _scenario_cases(), ids=lambda v: str(v))
def test_a_wrongly_typed_scenario_value_is_refused_by_schema_and_loader(
        path: tuple[str, ...], value: Any) -> None:
    good: dict[str, Any] = {"lab": {"topology": "scaled"}, "steps": [{"push": "p1"}]}
    if path[:2] == ("steps", "0"):
        good["steps"] = [{path[2]: {}}] if path[2] != "expect" else \
            [{"push": "p1", "expect": {"outcome": "fail", "output": "x",
                                       "log": {"node": "gitlab", "pattern": "x"}}}]
    data = _put_list(good, path, value)
    assert _errors(data, schema.scenario_schema()), f"{'.'.join(path)}: {value!r} passes"
    with pytest.raises(SpecError) as exc:
        load.parse_scenario(yaml.safe_dump(data), "sc.yaml")
    assert exc.value.key == ".".join(path), exc.value


def _put_list(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    at: Any = out
    for key in path[:-1]:
        at = at[int(key)] if isinstance(at, list) else at.setdefault(key, {})
    at[path[-1]] = value
    return out
