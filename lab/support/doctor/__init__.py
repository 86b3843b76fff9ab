"""`lab doctor`: is this host fit for a lab, and is a running lab wired the way the guide says?

Kept apart so the judging is testable without Docker:
- ``facts``: plain data about the host and the lab (no I/O);
- ``gather``: collects the facts (what Docker says, what is inside each container,
  what a Gitaly server answers);
- ``checks``: pure functions from facts to ``Check`` rows, each failure carrying a
  one-line hint in the words of GitLab's guide;
- ``format``: the table, the plain text and the JSON;
- ``wiring``: Omnibus and source nodes' files against each other (no Docker).

Secrets are compared by hash only, and every detail passes the lab's redactor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from lab.errors import LabError
from lab.lifecycle.contract import LabHandle
from lab.support.doctor.checks import Check, Level, Report, judge
from lab.support.doctor.facts import Gathered, HostFacts
from lab.support.doctor.format import format_table, format_text, gathered_json
from lab.support.doctor.gather import gather_host, gather_lab, node_states
from lab.support.doctor.wiring import wiring_report

__all__ = ["Check", "Gathered", "HostFacts", "LabHandle", "Level", "Report", "doctor",
           "format_table", "format_text", "gathered_json", "node_states"]


def doctor(handle: LabHandle | None, *,
           states: Mapping[str, str] | None = None) -> tuple[Report, Gathered]:
    """Run every check that applies: host only without a lab, all of them for a running one.

    ``states`` (node -> container state) saves asking Docker again when the caller has them.
    """
    if handle is None:
        g = Gathered(host=gather_host(None))
        return judge(None, g, None), g
    if states is None:
        try:
            states = node_states(handle.status())
        except LabError:  # Docker cannot be asked: every node counts as missing
            states = {}
    g = gather_lab(handle, states)
    report = judge(handle.name, g, handle.lab.app.name)
    # Nodes installed from source: their config.toml / gitlab.yml against the gitlab.rb
    # side, from the lab folder's files (empty for a lab of Omnibus nodes only).
    report = Report(report.lab, (*report.checks, *wiring_report(handle.path, handle.lab)))
    # Details quote what nodes said (a command's last line, a gitlab.rb the reader refused):
    # they pass the lab's redactor before anything shows them.
    return Report(report.lab, tuple(
        dataclasses.replace(c, detail=handle.redactor(c.detail), hint=handle.redactor(c.hint))
        for c in report.checks)), g
