"""The processes git starts for the sim's Gitaly (its hooks, gitaly-ssh), run by a fork of
Gitaly that has their modules loaded (labsim.common.handover).

Each of them spent 0.1 s of CPU, mostly importing (gRPC for gitaly-ssh; urllib, ssl and
the release tables for the hooks), about fifty times per release in the library; run
this way, a hook costs some 20 ms (its own small process, then a fork). Gitaly's module
imports them (so Gitaly's spare has them for every restart), and its process forks this
server first thing, while it has one thread and no gRPC object, so every child starts
from a clean gRPC (as labsim.node.spare). The server listens on the socket named in the
environment Gitaly gives git (``git_child.SOCKET_ENV``). What git, the pusher and the
internal API see is unchanged: the same streams, texts and exit codes. The server ends
when Gitaly, its parent, has gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import traceback
from collections.abc import Callable

from labsim.common import handover_server

# Loaded with Gitaly's module, so that Supervisor.make_spares' server has them ready for
# every restart of Gitaly, and this server's fork of it imports nothing.
from labsim.gitaly import gitaly_ssh, githook

#: How often the server looks whether Gitaly is still there (seconds).
PARENT_CHECK = 1.0


def entries() -> dict[str, Callable[[list[str]], int]]:
    """What git starts, by the name ``git_child`` is given: each runs on its arguments."""
    def ssh(argv: list[str]) -> int:
        sys.argv = [gitaly_ssh.__file__, *argv]
        return gitaly_ssh.main()

    return {"pre-receive": lambda argv: githook.main("pre-receive"),
            "post-receive": lambda argv: githook.main("post-receive"),
            "gitaly-ssh": ssh}


def socket_path(gitaly_pid: int) -> str:
    return os.path.join("/tmp", f"labsim-gitaly-{gitaly_pid}.sock")


def start() -> str | None:
    """Fork the server from Gitaly's process; the socket's path for git's environment, or
    None where there is no server (git's processes then run on their own, as before)."""
    gitaly = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return socket_path(gitaly)
    code = 0
    try:
        serve(socket_path(gitaly), gitaly)
    except BaseException:  # printed to Gitaly's log; git's processes fall back meanwhile
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(OSError):
            os.unlink(socket_path(gitaly))
        os._exit(code)


def serve(path: str, gitaly: int) -> None:
    """Run what clients ask for until ``gitaly`` is no longer this process's parent."""
    # A terminal's Ctrl-C or the supervisor's TERM is Gitaly's to act on, not its helper's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    runs = entries()

    def run(argv: list[str]) -> int:
        if not argv or argv[0] not in runs:
            print(f"gitaly (gitlab-testlab-sim): no such process {argv[:1]}", file=sys.stderr)
            return 1
        return runs[argv[0]](argv[1:])

    listener = handover_server.listen(path, blocking=True)
    while os.getppid() == gitaly:
        ready, _, _ = select.select([listener], [], [], PARENT_CHECK)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if ready:
            handover_server.serve_one(listener, run)
