"""/etc/init.d/gitlab for the sim: `service gitlab restart|status` on a node installed from source.

The source install guide (doc/install/installation.md) installs lib/support/init.d/gitlab
as /etc/init.d/gitlab, and after a change to config.toml or gitlab.yml an admin restarts
GitLab with `sudo service gitlab restart` (doc/administration/restart_gitlab.md,
installations from source). Here the restart is PID 1's (SIGUSR1: labsim.node.supervisor
``restart_source``), which reads the node's files again; the script returns once the new
services listen, or fails with the reason they could not start. An Omnibus node has no
such script: it answers as a missing one does.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from lab.omnibus.source_layout import INSTALL_ENV
from labsim.common import runstate
from labsim.node import ctl

USAGE = "Usage: service gitlab {start|stop|restart|reload|status}"
#: How long a restart may take before the script gives up (the real one waits 30 s for pids).
RESTART_TIMEOUT = 30.0


def installed_from_source(environ: str = "/proc/1/environ") -> bool:
    """PID 1's environment says so (``service`` runs its scripts with a cleared one)."""
    try:
        with open(environ, "rb") as fh:
            entries = fh.read().split(b"\0")
    except OSError:
        return False
    want = f"{INSTALL_ENV}=source".encode()
    return any(e.strip() == want for e in entries)


def up() -> bool:
    """Every service PID 1 runs is alive and listens (at least one runs)."""
    try:
        state = json.loads(runstate.state_text())
        node = runstate.read_runtime()
    except (OSError, ValueError):
        return False
    if not state:
        return False
    return all(ctl.alive(entry) and ctl.listening(name, node) for name, entry in state.items())


def restart(timeout: float = RESTART_TIMEOUT) -> int:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(runstate.RESTART_FAILED)
    before = ctl.signal_restart()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(runstate.RESTART_FAILED) as fh:
                print(f"GitLab did not start: {fh.read().strip()}", file=sys.stderr)
            return 1
        except FileNotFoundError:
            pass
        if runstate.state_text() != before and up():
            print("GitLab and all its components are up and running.")
            return 0
        time.sleep(ctl.WAIT_UP_POLL)
    print(f"GitLab did not come up within {timeout:g} s: see the node's log.", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if not installed_from_source():
        print("gitlab: unrecognized service", file=sys.stderr)
        return 1
    command = argv[0] if argv else ""
    if command in ("restart", "reload", "force-reload"):
        return restart()
    if command == "status":
        if up():
            print("GitLab and all its components are up and running.")
            return 0
        print("GitLab is not running.")
        return 3
    if command in ("start", "stop"):
        print(f"service gitlab {command}: not played by the sim (restart and status are)",
              file=sys.stderr)
        return 1
    print(USAGE)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
