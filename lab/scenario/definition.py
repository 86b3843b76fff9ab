"""A parsed scenario: frozen data, no side effects (``load`` builds it, ``runner`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from lab.model.topology import Lab
from lab.omnibus.release import Version


class Expected(StrEnum):
    """What a step is expected to do (the YAML's ``expect: {outcome: ...}``)."""

    SUCCESS = "success"
    FAIL = "fail"


@dataclass(frozen=True)
class ByRelease:
    """A pattern per release range, as a scenario writes ``{"11.11-13.1": a, "13.2+": b}``:
    (first release, first release after it or None for open, pattern), in order, covering
    every supported release without gaps (checked when the file is loaded)."""

    ranges: tuple[tuple[Version, Version | None, str], ...]

    def at(self, release: Version) -> str:
        for lo, hi, pattern in self.ranges:
            if lo <= release and (hi is None or release < hi):
                return pattern
        return self.ranges[-1][2]

    @property
    def newest(self) -> str:
        return self.ranges[-1][2]


@dataclass(frozen=True)
class LogExpect:
    node: str
    pattern: str
    eras: ByRelease | None = None  # the pattern by release; ``pattern`` is the chosen one


@dataclass(frozen=True)
class Expect:
    expected: Expected = Expected.SUCCESS
    output: str | None = None  # a regex searched in the step's output
    log: LogExpect | None = None
    # The output pattern by release (``output`` holds the one of the release it runs on:
    # the newest until ``at`` chose).
    output_eras: ByRelease | None = None

    def at(self, release: Version) -> Expect:
        """This expectation with the patterns of ``release`` chosen."""
        output = self.output_eras.at(release) if self.output_eras else self.output
        log = self.log
        if log is not None and log.eras is not None:
            log = replace(log, pattern=log.eras.at(release))
        return replace(self, output=output, log=log)

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
    # (argument, what it names: a ``lab.scenario.steps.Ref`` value, "node", "storage" or
    # "Gitaly node behind a Praefect"): arguments naming a part of the lab, checked
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

    def at(self, release: Version) -> Scenario:
        """The scenario as it runs on ``release``: each expectation's patterns of that release."""
        def step_at(step: Step) -> Step:
            return replace(step, expect=step.expect.at(release))
        return replace(self, steps=tuple(map(step_at, self.steps)),
                       given_faults=tuple(map(step_at, self.given_faults)))


@dataclass(frozen=True)
class ScenarioLabs:
    """The group's base lab and the lab this scenario runs on (base + given)."""

    base: Lab
    target: Lab
    changes: tuple[str, ...]  # "nodes.gitaly1.secrets: shared -> own", for evidence
