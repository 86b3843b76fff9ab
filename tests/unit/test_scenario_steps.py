"""The step registry: a new step kind or fault verb is one entry, loaded and run like the rest."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.engine.run import Redactor, Result
from lab.errors import SpecError
from lab.lifecycle.faults import VERBS, NodeTarget, Verb
from lab.model.topology import Lab
from lab.scenario.load import parse_scenario
from lab.scenario.results import Outcome
from lab.scenario.runner import run_scenarios
from lab.scenario.steps import KINDS, STEPS, Arg, Run, StepKind, faults, verb_kinds

TOKEN = "glpat-0123456789abcdef0123"


@dataclass
class FakeLab:
    """Just enough of a LabHandle for the runner; ``act`` goes through a verb table
    the way ``RunningLab.act`` does."""

    lab: Lab
    path: Path
    verbs: dict[str, Verb] = field(default_factory=lambda: dict(VERBS))
    calls: list[tuple[str, ...]] = field(default_factory=list)
    redactor: Redactor = field(default_factory=Redactor)
    http_url = "http://127.0.0.1:1"
    admin_token = TOKEN

    def __post_init__(self) -> None:
        self.name = self.lab.name

    def act(self, node: str, verb: str) -> None:
        self.verbs[verb].run(NodeTarget(node, f"container-{node}", lambda: "network"))

    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result:
        self.calls.append(("exec", node, *cmd))
        return Result(cmd, 0, "ok\n", "")

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        return ""

    def apply(self, new_lab: Lab, **kw: Any) -> list[str]:
        self.lab = new_lab
        return []

    def wait_ready(self, **kw: Any) -> None:
        self.calls.append(("wait_ready",))

    def down(self, *, purge: bool = False) -> None:
        self.calls.append(("down",))


def _run(tmp_path: Path, text: str, steps: dict[str, StepKind],
         verbs: dict[str, Verb] | None = None) -> tuple[Any, list[FakeLab]]:
    labs: list[FakeLab] = []

    def up(lab: Lab) -> FakeLab:
        labs.append(FakeLab(lab, tmp_path / lab.name, **({"verbs": verbs} if verbs else {})))
        return labs[-1]

    scenario = parse_scenario(textwrap.dedent(text), "toy.yaml", steps=steps)
    (result,) = run_scenarios([scenario], up=up, connect=lambda running: None, steps=steps)
    return result, labs


TOY = """\
    lab: {topology: scaled}
    steps:
      - shout: {text: hello, times: 2}
        expect: {outcome: success, output: 'HELLO HELLO'}
      - shout: bye
"""


def _shout(run: Run, step: Any) -> tuple[bool, str]:
    return True, " ".join([str(step.arg("text")).upper()] * int(step.arg("times", 1)))


SHOUT = StepKind("shout", (Arg("text", lambda v: isinstance(v, str), "some text", True),
                           Arg("times", lambda v: isinstance(v, int), "a count")), _shout)


def test_a_new_step_kind_is_one_entry(tmp_path: Path) -> None:
    steps = {**STEPS, SHOUT.name: SHOUT}
    result, _ = _run(tmp_path, TOY, steps)
    assert result.outcome is Outcome.PASSED, result.message
    assert [s.label for s in result.steps] == ["shout(text=hello, times=2)", "shout(text=bye)"]
    assert [s.output for s in result.steps] == ["HELLO HELLO", "BYE"]


def test_the_registry_validates_the_new_kind(tmp_path: Path) -> None:
    # Without the entry the kind is unknown; with it, its schema is enforced.
    with pytest.raises(SpecError, match=r"toy\.yaml:3: steps\.0\.shout: unknown step 'shout'"):
        parse_scenario(textwrap.dedent(TOY), "toy.yaml")
    steps = {**STEPS, SHOUT.name: SHOUT}
    with pytest.raises(SpecError, match=r"steps\.0\.shout\.times: expected a count, got 'x'"):
        parse_scenario("lab: {topology: scaled}\nsteps:\n  - shout: {text: a, times: x}\n",
                       "toy.yaml", steps=steps)
    with pytest.raises(SpecError, match=r"steps\.0\.shout: shout needs 'text' \(some text\)"):
        parse_scenario("lab: {topology: scaled}\nsteps:\n  - shout: {times: 1}\n",
                       "toy.yaml", steps=steps)


def test_a_new_fault_verb_is_one_entry(tmp_path: Path) -> None:
    done: list[tuple[str, str]] = []

    def primitive(name: str) -> Any:
        return lambda target: done.append((name, target.node))

    # "freeze" injures a node, "thaw" undoes it: one entry each in a copy of the verb table.
    verbs = {**VERBS, "freeze": Verb("freeze", primitive("freeze"), undo="thaw"),
             "thaw": Verb("thaw", primitive("thaw"), ready_after=True)}
    steps = {**KINDS, **verb_kinds(verbs)}
    assert "freeze" in faults(steps)
    assert "thaw" not in faults(steps)
    result, (lab,) = _run(tmp_path, """\
        lab: {topology: scaled}
        given:
          faults: [freeze: gitaly1]
        steps:
          - exec: {node: gitlab, cmd: ['true']}
          - freeze: gitlab
        """, steps, verbs)
    assert result.outcome is Outcome.PASSED, result.message
    assert [s.label for s in result.steps] == [
        "given freeze(node=gitaly1)", "exec(node=gitlab, cmd=['true'])", "freeze(node=gitlab)"]
    # Undone after the scenario, in the order they were done, then the lab is waited for.
    assert done == [("freeze", "gitaly1"), ("freeze", "gitlab"), ("thaw", "gitaly1"),
                    ("thaw", "gitlab")]
    assert lab.calls[-2:] == [("wait_ready",), ("down",)]


def test_given_faults_take_only_verbs_that_have_an_undo() -> None:
    with pytest.raises(SpecError, match=r"given\.faults\.0\.restart: unknown step 'restart'; "
                       r"valid steps: stop, pause, disconnect"):
        parse_scenario("lab: {topology: scaled}\ngiven:\n  faults: [restart: gitaly1]\n"
                       "steps: [{api: /x}]\n", "f.yaml")


def test_wait_lets_the_given_seconds_pass_and_takes_only_0_to_600(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.scenario import steps as steps_module

    slept: list[float] = []
    monkeypatch.setattr(steps_module.time, "sleep", slept.append)
    text = "lab: {topology: scaled}\nsteps:\n  - wait: 11\n  - wait: {seconds: 0.5}\n"
    result, _ = _run(tmp_path, text, STEPS)
    assert result.outcome is Outcome.PASSED, result.message
    assert slept == [11.0, 0.5]
    assert [s.output for s in result.steps] == ["waited 11 s", "waited 0.5 s"]
    for bad in ("601", "-1", "true", "soon"):
        with pytest.raises(SpecError, match=r"toy\.yaml:3: steps\.0\.wait\.seconds: expected "
                           r"a number of seconds from 0 to 600"):
            parse_scenario(f"lab: {{topology: scaled}}\nsteps:\n  - wait: {bad}\n", "toy.yaml")
