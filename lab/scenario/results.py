"""What a scenario run produced: per-step results, evidence of a failure, the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """How a scenario ended (pytest's word and values)."""

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
    outcome: Outcome
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
        return self.outcome in (Outcome.PASSED, Outcome.SKIPPED)
