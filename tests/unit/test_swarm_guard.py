"""The swarm tests' guard: no swarm is made while labs run on the engine (leaving it
reprograms the engine's networking and broke a running lab's DNS)."""

from __future__ import annotations

import pytest
from conftest import refuse_swarm_beside_labs


def _never() -> list[str]:
    raise AssertionError("the engine is already in a swarm: nothing to check")


def test_running_labs_skip_locally_and_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"labs are running .*\(cc, sc-scaled\)"):
        refuse_swarm_beside_labs(lambda: False, lambda: ["cc", "sc-scaled"])
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="breaks their DNS"):
        refuse_swarm_beside_labs(lambda: False, lambda: ["cc"])


def test_no_lab_or_an_existing_swarm_goes_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    refuse_swarm_beside_labs(lambda: False, lambda: [])
    refuse_swarm_beside_labs(lambda: True, _never)  # no swarm made, none left
