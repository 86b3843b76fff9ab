"""A parsed scenario: frozen data, no side effects (``load`` builds it, ``runner`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lab.model.topology import Lab


class Expected(StrEnum):
    """What a step is expected to do (the YAML's ``expect: {outcome: ...}``)."""

    SUCCESS = "success"
    FAIL = "fail"


@dataclass(frozen=True)
class LogExpect:
    node: str
    pattern: str


@dataclass(frozen=True)
class Expect:
    expected: Expected = Expected.SUCCESS
    output: str | None = None  # a regex searched in the step's output
    log: LogExpect | None = None

    def describe(self) -> str:
        text = self.expected.value
        if self.output:
            text += f", output matching /{self.output}/"
        if self.log:
            text += f", {self.log.node} log matching /{self.log.pattern}/"
        return text


@dataclass(frozen=True)
class Step:
    kind: str  # a name in the step registry (``lab.scenario.steps.STEPS``)
    # Arguments, already validated for the kind by the registry's schema.
    args: tuple[tuple[str, Any], ...]
    expect: Expect
    line: int | None = None
    # (argument, "node" | "storage"): arguments naming a part of the lab, checked
    # against the lab once it is resolved.
    names: tuple[tuple[str, str], ...] = ()

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.args if k not in ("files", "data"))
        return f"{self.kind}({shown})"


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str  # the file, for messages and test ids
    description: str
    guide: str  # what the guide says that this proves, in our words
    base_sets: tuple[tuple[str, Any, int | None], ...]  # (key, value, line): shared by the group
    given_sets: tuple[tuple[str, Any, int | None], ...]  # this scenario's mutations
    given_faults: tuple[Step, ...]  # applied after the mutations, undone afterwards
    steps: tuple[Step, ...]
    topology: str | None = None
    spec: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    version: str | None = None
    flavors: tuple[str, ...] = ("omnibus", "sim")


@dataclass(frozen=True)
class ScenarioLabs:
    """The group's base lab and the lab this scenario runs on (base + given)."""

    base: Lab
    target: Lab
    changes: tuple[str, ...]  # "nodes.gitaly1.secrets: shared -> own", for evidence
