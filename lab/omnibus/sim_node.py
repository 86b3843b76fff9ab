"""What a sim node's PID 1 tells the toolkit without an exec (stdlib only: the sim image
imports it on every `gitlab-ctl status`).

Readiness asked each node `gitlab-ctl status` once per round, and a `docker exec` costs
some 60 ms of CPU before its command runs (runc's init in the container, dockerd and
containerd around it). The sim's PID 1 knows when its services are up: once `gitlab-ctl
status`'s own test passes it logs ``up_line`` (the services that run), and when one of
them stops, dies or restarts after that it logs ``CHANGING``. Readiness finds those lines
in the container's log, which it reads for ``gitlab Reconfigured!`` anyway
(``lab.lifecycle.probes.ServicesProbe``): a log read costs the engine about 2 ms of CPU,
where a file PID 1 wrote, read through the archive API, cost about 60 ms (dockerd
re-executes itself to tar it), measured on a 2-core machine. A real Omnibus node logs
neither; readiness asks its `gitlab-ctl status`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RUN_DIR = "/run/gitlab-sim"
#: PID 1's log lines, after the prefix every sim log line has ("<time> wrapper: ").
UP = "services up:"
CHANGING = "services changing"
# With or without the engine's own timestamp before the node's (``docker logs -t``).
# Compiled where it is read (re caches it): `gitlab-ctl status` imports this module and
# never reads a log.
_SAID = (rf"^(?:\S+Z )?\S+ wrapper: (?:{re.escape(UP)} (?P<names>[\w, -]*)"
         rf"|(?P<changing>{re.escape(CHANGING)}))$")


def up_line(services: Iterable[str]) -> str:
    """What PID 1 logs once ``services`` (all that run) accept connections."""
    return f"{UP} {', '.join(sorted(services))}"


def services_said(log_text: str) -> frozenset[str] | None:
    """What PID 1's last such line in ``log_text`` says: the services up (none while they
    are changing), or None when it has no such line."""
    said = list(re.finditer(_SAID, log_text, re.MULTILINE))
    if not said:
        return None
    last = said[-1]
    if last.group("changing"):
        return frozenset()
    return frozenset(n.strip() for n in last.group("names").split(",") if n.strip())
