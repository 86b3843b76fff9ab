"""A sim node's up lines: PID 1 logs its services once they are up, and when they change;
readiness reads them in the container's log instead of exec'ing `gitlab-ctl status`."""

from __future__ import annotations

import pytest
import sim_run_state
from sim_run_state import Proc

from lab.omnibus.sim_node import CHANGING, services_said, up_line
from labsim.node import ctl, supervisor  # ctl: the module supervisor asks by name

DOCKER = "2026-12-07T15:16:37.123456789Z"  # `docker logs -t`'s stamp before the node's own


def test_the_last_line_says_which_services_are_up() -> None:
    assert up_line(["sshd", "gitaly"]) == "services up: gitaly, sshd"
    log = (f"{DOCKER} 2026-12-07T15:16:37 wrapper: started gitaly (pid 9)\n"
           f"{DOCKER} 2026-12-07T15:16:37 wrapper: services up: gitaly, sshd\n")
    assert services_said(log) == {"gitaly", "sshd"}
    # Without the engine's stamp too (the node's own log file).
    assert services_said("2026-12-07T15:16:37 wrapper: services up: gitlab-workhorse\n") \
        == {"gitlab-workhorse"}
    changed = log + f"{DOCKER} 2026-12-07T15:16:38 wrapper: {CHANGING}\n"
    assert services_said(changed) == frozenset()
    assert services_said(changed + f"{DOCKER} 2026-12-07T15:16:39 wrapper: "
                         "services up: gitaly, puma, sshd\n") == {"gitaly", "puma", "sshd"}


@pytest.mark.parametrize("log", [
    "",
    f"{DOCKER} 2026-12-07T15:16:37 wrapper: started sshd (pid 7)\n",
    # Another program's line, even one that quotes PID 1's words, says nothing.
    f'{DOCKER} 2026-12-07T15:16:37 puma: 127.0.0.1 "GET /x wrapper: services up: puma"\n',
    f"{DOCKER} 2026-12-07T15:16:37 puma: wrapper: services up: puma\n",
    f"{DOCKER} 2026-12-07T15:16:37 wrapper: services up: puma; rm\n",
])
def test_a_log_without_an_up_line_says_nothing(log: str) -> None:
    assert services_said(log) is None


sup = pytest.fixture(sim_run_state.supervisor_here)


def test_pid1_logs_up_once_status_would_say_so_and_a_change_once(
        sup: supervisor.Supervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr(supervisor, "log", said.append)
    answers = [3, 0]
    monkeypatch.setattr(ctl, "status", lambda only, quiet: answers.pop(0))
    sup.children = {"sshd": Proc(7), "gitaly": Proc(9), "puma": Proc(10, code=1)}  # type: ignore[dict-item]
    sup.started = {"sshd": 1.0, "gitaly": 2.0, "puma": 2.0}
    sup.mark_up()
    assert said == []  # nothing changed since the last line: status is not asked
    sup.write_state()
    sup.mark_up()  # status says a service is down
    assert said == []
    sup.mark_up()
    # What runs: the one that ended is not named.
    assert said == ["services up: gitaly, sshd"]
    sup.mark_up()  # said: status is not asked again (answers would run out)
    sup.write_state()  # a service started or restarted: the line no longer holds
    sup.unmark()  # said once however often the loop sees a change
    assert said == ["services up: gitaly, sshd", "services changing"]
    answers.append(0)
    sup.mark_up()
    assert said[-1] == "services up: gitaly, sshd"
    assert services_said("\n".join(f"2026-12-07T15:16:37 wrapper: {s}" for s in said)) \
        == {"gitaly", "sshd"}


def test_pid1_outlives_a_failing_up_line(sup: supervisor.Supervisor,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """PID 1's end is the container's: an up line it cannot make is logged, and readiness
    asks `gitlab-ctl status` instead."""
    said: list[str] = []
    monkeypatch.setattr(supervisor, "log", said.append)

    def broken(only: str | None, quiet: bool) -> int:
        raise KeyError("listen_addr")
    monkeypatch.setattr(ctl, "status", broken)
    sup.children, sup.started = {}, {}
    sup.write_state()
    sup.mark_up()
    assert said == ["up line: KeyError: 'listen_addr'"]
    sup.mark_up()  # said once, not every tick
    assert len(said) == 1

