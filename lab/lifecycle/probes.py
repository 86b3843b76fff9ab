"""Readiness probes for Omnibus nodes (the real image and the sim alike).

``ServicesProbe`` decides when a node's services are up: the container's log
since its start shows that reconfigure finished (omnibus-ctl prints ``gitlab
Reconfigured!`` after a successful Chef/Cinc run), and ``gitlab-ctl status``
lists the node's own services as ``run:``. Neither alone will do: the image's
wrapper starts runsvdir with ``sshd`` before reconfigure, so ``gitlab-ctl
status`` exits 0 with ``run: sshd`` and, for a service not set up yet, exits 0
saying nothing. What those outputs mean is lab.omnibus.node's; this module turns
it into readiness verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from lab.lifecycle.readiness import Verdict
from lab.omnibus.node import (
    ExecFn,
    Result,
    failure_line,
    last_stamp,
    parse_gitaly_check,
    reconfigure_phase,
    reconfigured,
    running_services,
    status_cmd,
)
from lab.omnibus.sim_node import services_said


def gitaly_check_status(res: Result, storages: Iterable[str]) -> Verdict:
    """Whether every one of ``storages`` passed the rake task (its exit code says nothing)."""
    found = parse_gitaly_check(res.stdout)
    wanted = list(storages)
    failed = [f"{s}: {found[s]}" for s in wanted if found.get(s)]
    missing = [s for s in wanted if s not in found]
    if failed:
        return Verdict(False, "gitlab:gitaly:check: " + "; ".join(failed))
    if missing:
        why = failure_line(res) if res.returncode != 0 or not found else "not checked"
        return Verdict(False, f"gitlab:gitaly:check: no result for {', '.join(missing)} ({why})")
    return Verdict(True, "gitlab:gitaly:check passed")



# (since: a timestamp from last_stamp, or None for "since the container started")
#   -> that part of the container's log, with Docker's timestamps.
LogFn = Callable[[str | None], str]


# While a sim node's log does not show its services up, `gitlab-ctl status` is asked at
# most this often, for what the wait shows (which service is down): the line alone says up.
STATUS_EVERY = 3.0


@dataclass
class ServicesProbe:
    """One node's "services up" check for one container start.

    Up means: its log since the start says ``gitlab Reconfigured!`` and
    ``gitlab-ctl status`` shows each of ``services`` as ``run:`` (with no ``services``,
    reconfigured is up). Reads the log on from where it stopped, so a long reconfigure
    output is read once.

    ``up_lines`` (a sim node): its PID 1 logs which services are up, by `gitlab-ctl
    status`'s own test, and when they change (lab.omnibus.sim_node); when its last such
    line names ``services``, the node is up, with no exec. Until then `gitlab-ctl
    status` runs every ``STATUS_EVERY`` seconds from reconfigure's end, to say which
    service is not up.
    """

    node: str
    exec_fn: ExecFn
    read_log: LogFn
    services: Sequence[str]
    up_lines: bool = False
    now: Callable[[], float] = field(default=time.monotonic, repr=False)
    done: bool = False
    since: str | None = field(default=None, repr=False)
    phase: str = field(default="", repr=False)
    asked: float | None = field(default=None, repr=False)
    seen: str = field(default="", repr=False)
    up: frozenset[str] | None = field(default=None, repr=False)

    def __call__(self) -> Verdict:
        if self.up_lines or not self.done:
            chunk = self.read_log(self.since)
            self.since = last_stamp(chunk) or self.since
            if not self.done:
                self.done = reconfigured(chunk)
                self.phase = reconfigure_phase(chunk) or self.phase
            said = services_said(chunk) if self.up_lines else None
            self.up = self.up if said is None else said
        if self.up is not None and set(self.services) <= self.up:
            return Verdict(True, "services up")
        if not self.done:
            where = f" ({self.phase})" if self.phase else ""
            return Verdict(False, f"reconfigure running{where}")
        if not self.services:
            return Verdict(True, "reconfigured")
        if self.up_lines:
            if self.asked is None:  # the line comes within a second of reconfigure's end
                self.asked = self.now()
            if self.now() - self.asked < STATUS_EVERY:
                return Verdict(False, self.seen or "services starting")
            self.asked = self.now()
        st = self.exec_fn(status_cmd(), 60)
        states = running_services(st.stdout)
        missing = [s for s in self.services if states.get(s) != "run"]
        if not missing:
            return Verdict(True, "services up")
        detail = ", ".join(f"{s} {states.get(s, 'not set up')}" for s in missing)
        self.seen = f"services not up ({detail})"
        return Verdict(False, self.seen)
