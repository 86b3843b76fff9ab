"""The lab pool: boot once, apply only changes, leave at base, claims across processes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scenario_fakes import LIBRARY, FakeLab, make

from lab.errors import Incomplete, LabError
from lab.model.topology import Lab, SecretsPolicy
from lab.scenario import pool
from lab.scenario.load import load_scenario, resolve_labs
from lab.scenario.pool import LabPool
from lab.scenario.runner import run_scenarios


def test_keep_leaves_labs_up_in_their_base_state(tmp_path: Path) -> None:
    labs, up, connect = make(tmp_path)
    sc = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    run_scenarios([sc], leave_at_base=True, up=up, connect=connect)
    (running,) = labs
    assert ("down",) not in running.calls
    assert running.calls[-1] == ("apply", "gitaly1", "True")
    assert running.lab.node("gitaly1").secrets is SecretsPolicy.SHARED




def test_a_failed_apply_is_reapplied_by_the_next_get(tmp_path: Path) -> None:
    labs, up, _connect = make(tmp_path)
    l2 = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml"))
    pool = LabPool(leave_at_base=True, up=up)
    pool.get(l2.base)
    (fake,) = labs
    real_apply = fake.apply
    failures = [LabError("node 'gitaly1' is not ready: exited")]

    def flaky_apply(new_lab: Lab, **kw: Any) -> list[str]:
        if failures:
            raise failures.pop()
        return real_apply(new_lab, **kw)

    fake.apply = flaky_apply  # type: ignore[method-assign]
    with pytest.raises(LabError, match="not ready"):
        pool.get(l2.base, l2.target)
    # The state is unknown now: even the base state is applied again, not assumed.
    assert pool.get(l2.base) is fake
    assert fake.calls[-1] == ("apply", "", "True")
    failures.append(LabError("not ready again"))
    with pytest.raises(LabError, match="again"):
        pool.get(l2.base, l2.target)
    pool.release(l2.base.name)  # leave_at_base: back to base, re-applied since the state is unknown
    assert fake.calls[-1] == ("apply", "", "True")
    assert ("down",) not in fake.calls
    assert len(labs) == 1




def test_default_up_waits_only_when_apply_changed_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.lifecycle import handle
    wanted = resolve_labs(load_scenario(LIBRARY / "tls-push.yaml")).base
    kept = {"state": resolve_labs(load_scenario(LIBRARY / "two-storages.yaml")).base}
    attached: list[FakeLab] = []

    def already_up(*a: Any, **k: Any) -> Any:
        raise handle.LabAlreadyUp("kept by an earlier --keep run")

    def attach(name: str) -> FakeLab:
        attached.append(FakeLab(kept["state"], tmp_path / name))
        return attached[-1]

    monkeypatch.setattr(handle, "up", already_up)
    monkeypatch.setattr(handle, "attach", attach)
    pool.default_up(wanted)  # the kept lab differs: apply restarts and waits by itself
    assert [c[0] for c in attached[-1].calls] == ["apply"]
    kept["state"] = wanted
    pool.default_up(wanted)  # nothing to apply: wait for the (maybe still starting) lab
    assert [c[0] for c in attached[-1].calls] == ["apply", "wait_ready"]


@dataclass
class FakeClaim:
    """A claim another run holds until ``busy`` is cleared; records what the pool does."""

    name: str
    events: list[str]
    busy: bool = False

    def acquire(self, *, wait: bool) -> bool:
        if self.busy and not wait:
            self.events.append(f"busy {self.name}")
            return False
        self.events.append(f"acquire {self.name} wait={wait}")
        return True

    def release(self) -> None:
        self.events.append(f"release {self.name}")


def test_a_lab_in_use_elsewhere_is_waited_for_and_claims_are_released(tmp_path: Path) -> None:
    labs, up, _connect = make(tmp_path)
    events: list[str] = []
    said: list[str] = []
    base = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    pool = LabPool(up=up, claim=lambda n: FakeClaim(n, events, busy=True), say=said.append)
    pool.get(base)
    # Claimed before the boot, by waiting once the quick try found it busy.
    assert events == [f"busy {base.name}", f"acquire {base.name} wait=True"]
    assert f"waiting: another run is using lab {base.name}" in said
    pool.close()
    assert events[-1] == f"release {base.name}"
    assert labs[0].calls[-1] == ("down",)


def test_a_failed_boot_releases_its_claim(tmp_path: Path) -> None:
    events: list[str] = []

    def up(lab: Lab) -> Any:
        raise LabError("image missing")

    base = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    pool = LabPool(up=up, claim=lambda n: FakeClaim(n, events))
    with pytest.raises(LabError):
        pool.get(base)
    assert events == [f"acquire {base.name} wait=False", f"release {base.name}"]


def test_a_pool_lets_go_of_its_labs_before_waiting_for_another(tmp_path: Path) -> None:
    labs, up, _connect = make(tmp_path)
    events: list[str] = []
    plain = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    cluster = resolve_labs(load_scenario(LIBRARY / "cluster-push-clone.yaml")).base
    pool = LabPool(up=up, max_labs=2,
                   claim=lambda n: FakeClaim(n, events, busy=n == cluster.name))
    pool.get(plain)
    pool.get(cluster)
    # Holding the plain lab while waiting for the cluster could deadlock with a
    # worker that holds the cluster and waits for the plain lab.
    assert events == [f"acquire {plain.name} wait=False", f"busy {cluster.name}",
                      f"release {plain.name}", f"acquire {cluster.name} wait=True"]
    assert labs[0].calls[-1] == ("down",)
    assert pool.names() == [cluster.name]
    pool.close()




def test_a_lab_that_cannot_be_cleaned_up_makes_close_incomplete(tmp_path: Path) -> None:
    # The scenarios ran; only the clean-up failed: exit 1 as for a failed check, not bad input.
    labs, up, _connect = make(tmp_path)
    pool = LabPool(up=up)
    pool.get(resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base)
    (fake,) = labs

    def down(*, purge: bool = False) -> None:
        raise LabError("the engine refused")

    fake.down = down  # type: ignore[method-assign]
    with pytest.raises(Incomplete, match=r"could not clean up labs:\n.*the engine refused"):
        pool.close()
