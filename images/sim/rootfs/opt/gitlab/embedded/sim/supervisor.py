"""PID 1 of a sim node (/assets/wrapper): reconfigure, then run and watch the services.

Like the Omnibus wrapper it evaluates the config first and fails the container on
a bad gitlab.rb. Signals from gitlab-ctl: SIGUSR1 = restart services from the
current runtime config (reconfigure rewrites it first), SIGTERM = stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import simconfig

HERE = Path(__file__).resolve().parent
SERVICES = {"gitaly": "gitaly_server.py", "puma": "app_server.py"}
STATE = os.path.join(simconfig.RUN_DIR, "services.json")
STOPPED = os.path.join(simconfig.RUN_DIR, "stopped.json")


def log(message: str) -> None:
    simconfig.log("wrapper", message)


def enabled(node: dict[str, Any]) -> list[str]:
    wanted = [s for s, key in (("gitaly", "gitaly"), ("puma", "app")) if node.get(key)]
    try:
        with open(STOPPED) as fh:
            stopped = set(json.load(fh))
    except (OSError, ValueError):
        stopped = set()
    return [s for s in wanted if s not in stopped]


class Supervisor:
    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.want_restart = False
        self.want_stop = False

    def write_state(self) -> None:
        state = {name: {"pid": proc.pid, "started": self.started[name]}
                 for name, proc in self.children.items() if proc.poll() is None}
        with open(STATE + ".tmp", "w") as fh:
            json.dump(state, fh)
        os.replace(STATE + ".tmp", STATE)

    def start(self, name: str) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, str(HERE / SERVICES[name])], stdin=subprocess.DEVNULL)
        self.started[name] = time.time()
        log(f"started {name} (pid {self.children[name].pid})")

    def stop_all(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + 5
        for proc in self.children.values():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()

    def start_all(self) -> None:
        for name in enabled(simconfig.read_runtime()):
            self.start(name)
        self.write_state()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "want_stop", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "want_stop", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "want_restart", True))
        self.start_all()
        while not self.want_stop:
            time.sleep(0.2)
            self.reap()
            if self.want_restart:
                self.want_restart = False
                log("restarting services")
                self.stop_all()
                self.start_all()
            for name, proc in list(self.children.items()):
                # runit-style: a service that dies is started again.
                if proc.poll() is not None and time.time() - self.started[name] > 1:
                    log(f"{name} exited with {proc.returncode}; starting it again")
                    self.start(name)
                    self.write_state()
        log("stopping")
        self.stop_all()
        return 0

    def reap(self) -> None:
        # As PID 1 we also adopt orphans (e.g. git processes); collect them.
        try:
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                for proc in self.children.values():
                    if proc.pid == pid:
                        proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass


def reconfigure() -> dict[str, Any]:
    """Evaluate gitlab.rb + secrets and publish the runtime config (ConfigError on failure)."""
    for folder in (simconfig.STATE_DIR, simconfig.LOG_DIR):
        os.makedirs(folder, exist_ok=True)
    node = simconfig.load()
    simconfig.write_runtime(node)
    return node


def main() -> int:
    try:
        node = reconfigure()
    except simconfig.ConfigError as exc:
        message = ("gitlab Reconfigure failed (gitlab-testlab-sim):\n" + str(exc))
        print(message, flush=True)
        print(message, file=sys.stderr, flush=True)
        return 1
    roles = [s for s in ("gitaly", "app") if node.get(s)]
    log(f"gitlab-testlab-sim node up; roles: {', '.join(roles) or 'none'}")
    with open(STOPPED, "w") as fh:
        json.dump([], fh)
    return Supervisor().run()


if __name__ == "__main__":
    sys.exit(main())
