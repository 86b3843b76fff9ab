"""A sim node's run state, as its short-lived tools read it: standard library only.

`gitlab-ctl status` and `gitlab-healthcheck` run every few seconds as Docker's
healthchecks. They read the files PID 1 and reconfigure keep here and import nothing else
of the sim's (lab.omnibus.sim_node, standard library only, names the folder), so a check
costs a Python start (about 20 ms) and not the release tables behind reconfigure (about
60 ms more, on every node of every lab, while the lab's nodes boot side by side on few
cores).
"""

from __future__ import annotations

import json
import os
from typing import Any

# Where PID 1 keeps them.
from lab.omnibus.sim_node import RUN_DIR as RUN_DIR

#: service -> {"pid", "started"} of what PID 1 runs (labsim.node.supervisor writes it).
STATE = os.path.join(RUN_DIR, "services.json")
#: The services `gitlab-ctl stop` stopped, which stay down until `gitlab-ctl start`.
STOPPED = os.path.join(RUN_DIR, "stopped.json")
#: Where PID 1 takes `gitlab-ctl reconfigure` requests (labsim.common.handover).
CTL_SOCKET = os.path.join(RUN_DIR, "ctl.sock")
#: Why the last `service gitlab restart` of a source node left its services stopped.
RESTART_FAILED = os.path.join(RUN_DIR, "restart-failed.txt")
#: The node's runtime config: gitlab.rb and the secrets as the sim's services read them.
RUNTIME = os.path.join(RUN_DIR, "config.json")
#: The runtime config's key for the runit name of the release's web server
#: (reconfigure writes it from lab.omnibus.dialect's default_web_server).
WEB_SERVICE = "web_service"


def read_runtime() -> dict[str, Any]:
    with open(RUNTIME) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def state_text() -> str:
    """The services file as it is now ('' before PID 1 wrote one): a restart shows in it."""
    try:
        with open(STATE) as fh:
            return fh.read()
    except OSError:
        return ""


def stopped() -> set[str]:
    try:
        with open(STOPPED) as fh:
            return {str(name) for name in json.load(fh)}
    except (OSError, ValueError):
        return set()


def enabled(node: dict[str, Any], web: str) -> list[str]:
    """The services the runtime config enables (``web``: the web server's runit name),
    less the ones `gitlab-ctl stop` stopped."""
    wanted = [s for s, key in (("postgresql", "postgresql"), ("gitaly", "gitaly"),
                                ("praefect", "praefect"), (web, "app")) if node.get(key)]
    down = stopped()
    return [s for s in wanted if s not in down]
