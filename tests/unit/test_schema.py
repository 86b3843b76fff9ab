"""The JSON Schemas editors read: generated from the loaders' own definitions, shipped as
generated, and they accept what the loaders accept and flag the typos the loaders refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lab.scenario import schema
from lab.spec.topologies import TOPOLOGIES

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
