"""What a sim node's PID 1 keeps for the toolkit to read without an exec (stdlib only: the
sim image imports it on every `gitlab-ctl status`).

Readiness asked each node `gitlab-ctl status` once per round, and a `docker exec` costs
some 40 ms of CPU before its command runs (runc's init in the container, dockerd and
containerd around it: roughly an eighth of the seven-era run's CPU went to the execs
themselves, toolkit's and health checks', measured at stop 42). The sim's
PID 1 knows when its services are up: it writes them to ``UP_MARK`` by the same test as
`gitlab-ctl status`, and the toolkit reads that file through the engine's archive API,
which starts no process (``lab.lifecycle.layers``). A real Omnibus node has no such file;
readiness asks its `gitlab-ctl status`.
"""

from __future__ import annotations

import json

RUN_DIR = "/run/gitlab-sim"
#: JSON ``{"services": [...]}``: every service enabled on the node runs and accepts
#: connections (`gitlab-ctl status` would exit 0). PID 1 removes it when one stops, dies
#: or restarts, and at its own start: a file older than the container's start is a
#: previous run's.
UP_MARK = f"{RUN_DIR}/up.json"
#: Bytes the toolkit reads of it at most: a few service names.
UP_MARK_LIMIT = 4096


def up_services(data: bytes, mtime: str, started_at: str) -> frozenset[str] | None:
    """The services ``UP_MARK`` says are up, if the file (``data``, last written at
    ``mtime``, RFC 3339) belongs to the container's run that started at ``started_at``;
    None when it does not say (an earlier run's, unreadable, or another shape)."""
    from datetime import datetime  # here: `gitlab-ctl status` imports this module

    try:
        written = datetime.fromisoformat(mtime).timestamp()
        started = datetime.fromisoformat(started_at).timestamp()
        names = json.loads(data.decode())["services"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    if written < started or not isinstance(names, list) \
            or not all(isinstance(n, str) for n in names):
        return None
    return frozenset(names)
