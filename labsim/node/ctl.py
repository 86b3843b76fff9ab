"""gitlab-ctl for the sim: status, restart, reconfigure, stop, start, tail.

``status`` exits 0 only when every enabled service (or the named one) runs and
accepts connections, so it can serve as a container healthcheck.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from typing import Any

from lab.omnibus.source_layout import INSTALL_ENV
from labsim.common import runstate

# `status` runs as a healthcheck every few seconds and in every readiness round: it reads
# labsim.common.runstate only. The other commands import the supervisor (and with it the
# release tables) when they run.

# Services the sim folds into its one web process.
FOLDED = ("nginx", "gitlab-workhorse", "sidekiq", "rails")


def _addr_ok(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def _unix_ok(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(path)
            return True
    except OSError:
        return False


def listening(name: str, node: dict[str, Any]) -> bool:
    if name == "gitaly":
        conf = node["gitaly"]
        checks = [_unix_ok(conf["socket_path"])] if conf.get("socket_path") else []
        checks += [_addr_ok(conf[k]) for k in ("listen_addr", "tls_listen_addr") if conf[k]]
        return all(checks)
    if name == "praefect":
        conf = node["praefect"]
        return all(_addr_ok(conf[k]) for k in ("listen_addr", "tls_listen_addr") if conf[k])
    if name == "postgresql":
        return _addr_ok(f"127.0.0.1:{node['postgresql'].get('port') or 5432}")
    return _addr_ok(f"127.0.0.1:{node['app']['port']}")


def alive(entry: dict[str, Any] | None) -> bool:
    """The process of a services-file entry (``{"pid", "started"}``) still runs."""
    if not entry:
        return False
    try:
        os.kill(entry["pid"], 0)
    except OSError:
        return False
    return True


def status(only: str | None, *, quiet: bool = False) -> int:
    """``only``: a service name, folded services already mapped to the web server."""
    def say(line: str) -> None:
        if not quiet:
            print(line)

    try:
        with open(runstate.STATE) as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        # Before the wrapper started runsvdir there is no service at all.
        return 0
    try:
        node: dict[str, Any] | None = runstate.read_runtime()
    except (OSError, ValueError):
        node = None  # reconfigure has not run yet: only sshd is linked
    # omnibus-ctl lists services in name order.
    services = sorted(["sshd", *(runstate.enabled(node, web_service(node)) if node else [])])
    if only:
        # omnibus-ctl loops over the services it knows: a name it does not know (yet)
        # prints nothing and exits 0.
        services = [s for s in services if s == only]
    code = 0
    for name in services:
        entry = state.get(name)
        if alive(entry) and (name == "sshd" or (node is not None and listening(name, node))):
            say(f"run: {name}: (pid {entry['pid']}) {int(time.time() - entry['started'])}s")
        else:
            say(f"down: {name}: 0s, normally up")
            code = 3
    return code


def web_service(node: dict[str, Any] | None) -> str:
    """The web server's runit name, as reconfigure recorded it in the runtime config."""
    if node and node.get(runstate.WEB_SERVICE):
        return str(node[runstate.WEB_SERVICE])
    from labsim.node import supervisor  # no runtime config yet: the release's own

    return supervisor.web_service()


def _web_of_runtime() -> str:
    try:
        return web_service(runstate.read_runtime())
    except (OSError, ValueError):
        return web_service(None)


def signal_restart() -> str:
    """Ask PID 1 to restart the services; return the service state before it did."""
    before = runstate.state_text()
    os.kill(1, signal.SIGUSR1)
    return before


# Between looks at the services: a look reads two small files and connects to each listener,
# and a restarted sim service listens within a few tenths of a second.
WAIT_UP_POLL = 0.02


def wait_up(before: str, timeout: float = 30) -> int:
    deadline = time.time() + timeout
    # The old processes still listen until PID 1 replaced them: wait for new pids first.
    while runstate.state_text() == before and time.time() < deadline:
        time.sleep(WAIT_UP_POLL)
    while time.time() < deadline:
        if status(None, quiet=True) == 0:
            return 0
        time.sleep(WAIT_UP_POLL)
    return status(None)


def set_stopped(names: list[str], stopped: bool) -> None:
    current = runstate.stopped()
    current = current | set(names) if stopped else current - set(names)
    with open(runstate.STOPPED, "w") as fh:
        json.dump(sorted(current), fh)


def reconfigure() -> int:
    """Re-read gitlab.rb and the secrets; restart only the services whose configuration
    changed (as Chef's notifications do), start or stop the ones enabled or disabled."""
    from lab.omnibus.eras import RECONFIGURED
    from labsim.common import simconfig
    from labsim.node import supervisor

    try:
        old: dict[str, Any] | None = simconfig.read_runtime()
    except (OSError, ValueError):
        old = None
    try:
        node = supervisor.reconfigure()
    except simconfig.ConfigError as exc:
        print(f"gitlab Reconfigure failed (gitlab-testlab-sim):\n{exc}")
        return 1
    names = supervisor.restarts_for(old, node, supervisor.release())
    was = set(supervisor.enabled(old)) if old else set()
    code = 0
    if names or was != set(supervisor.enabled(node)):
        simconfig.log("wrapper", f"reconfigure restarts: {', '.join(names) or 'none'}")
        with open(supervisor.RESTART_ONLY, "w") as fh:
            json.dump(names, fh)
        code = wait_up(signal_restart())
    print(RECONFIGURED if code == 0 else "gitlab Reconfigure: services not up")
    return code


def main(argv: list[str]) -> int:
    """The command as the image runs it: a reconfigure goes to PID 1's fork
    (labsim.common.handover), which has its modules loaded; the rest runs here."""
    if argv[:1] == ["reconfigure"] and os.getpid() != 1:
        from labsim.common import handover

        code = handover.ask(runstate.CTL_SOCKET, argv, "gitlab-ctl (gitlab-testlab-sim)")
        if code is not None:
            return code
    return run(argv)


def run(argv: list[str]) -> int:
    """The command, in this process."""
    if os.environ.get(INSTALL_ENV, "").strip() == "source":  # as supervisor.from_source()
        # An installation from source has no Omnibus tools: it is restarted instead.
        print("gitlab-ctl: not found (this node is installed from source: no gitlab-ctl, "
              "no reconfigure; restart it to apply a change)", file=sys.stderr)
        return 127
    if not argv:
        print("usage: gitlab-ctl status|restart|reconfigure|stop|start|tail [SERVICE]")
        return 1
    command, rest = argv[0], argv[1:]
    service = (_web_of_runtime() if rest[0] in FOLDED else rest[0]) if rest else None
    if command == "status":
        return status(service)
    if command == "reconfigure":
        return reconfigure()
    if command in ("restart", "start", "stop"):
        names = [service] if service else ["gitaly", _web_of_runtime()]
        set_stopped(names, command == "stop")
        before = signal_restart()
        if command == "stop":
            time.sleep(1)
            for name in names:
                print(f"ok: down: {name}")
            return 0
        return wait_up(before)
    if command == "tail":
        from labsim.common import simconfig

        folder = simconfig.LOG_DIR
        names = [service] if service else sorted(os.listdir(folder))
        files = [os.path.join(folder, n, "current") for n in names]
        os.execvp("tail", ["tail", "-n", "50", "-F", *files])
    print(f"gitlab-ctl (gitlab-testlab-sim): unsupported command {command!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
