"""The fault verb table: each verb runs its engine primitive; each fault has an undo."""

from __future__ import annotations

from typing import Any

import pytest

from lab.engine import docker as dk
from lab.errors import BadInput
from lab.lifecycle import faults
from lab.lifecycle.faults import VERBS, NodeTarget


def test_each_verb_runs_its_engine_primitive(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, ...]] = []
    for name in ("stop", "start", "restart", "pause", "unpause", "disconnect", "connect"):
        monkeypatch.setattr(dk, name, lambda *a, _n=name, **k: seen.append((_n, *a, k)))
    target = NodeTarget("gitaly1", "ctr", lambda: "net")
    for verb in VERBS.values():
        verb.run(target)
    assert seen == [("stop", "ctr", {}), ("pause", "ctr", {}),
                    ("disconnect", "net", "ctr", {}), ("start", "ctr", {}),
                    ("unpause", "ctr", {}),
                    ("connect", "net", "ctr", {"aliases": ["gitaly1"]}),
                    ("restart", "ctr", {})]


def test_every_fault_is_undone_by_a_verb_that_waits_for_the_lab() -> None:
    assert faults.faults() == ("stop", "pause", "disconnect")
    for name in faults.faults():
        undo = VERBS[VERBS[name].undo or ""]
        assert not undo.is_fault
        assert undo.ready_after


def test_an_unknown_verb_names_the_known_ones() -> None:
    with pytest.raises(BadInput, match="unknown fault verb 'kill'; known: stop, pause"):
        faults.verb("kill")
