"""A service's next processes, imported once: a fork server (``Supervisor.make_spares``).

A sim service spends most of its start importing (gRPC, the service's modules: 0.15 s of
CPU for Gitaly, more for the web server), while a reconfigure that restarts it waits. The
supervisor starts this process after the service's first restart: it imports the
service's module, then waits on stdin. Each ``go`` line forks a process that runs the
service's ``main`` (which reads the runtime config then, not now), and the process's PID
is written to the report file descriptor. Every later restart of the service is a fork,
where each one used to import afresh. End of input ends the server.

The fork is made twice, so that the service's parent exits at once and the service
becomes a child of PID 1, the supervisor, which waits for it as for any service it
started. Importing gRPC starts no thread and no channel (checked: one thread after the
import), so a fork has a clean gRPC to start with.

Usage: python3 -P -m labsim.node.spare MODULE REPORT_FD
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from types import ModuleType


def _run_service(module: ModuleType, report: int) -> None:
    """In the fork: become the service, then exit with its code (never returns)."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # the server's stdin is the supervisor's pipe, not the service's
        os.close(null)
        os.close(report)
        result = module.main()
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:  # a service's crash is printed, as Python prints an exec'd one's
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def spawn(module: ModuleType, report: int) -> int:
    """Fork the service (through a middle process that exits at once); its PID."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:  # whatever happens here, this process must not go back to the server's loop
            os.close(r)
            service = os.fork()
            if service == 0:
                os.close(w)
                _run_service(module, report)
            os.write(w, f"{service}\n".encode())
        finally:
            os._exit(0)  # nothing written: the server reports 0, the supervisor starts it
    os.close(w)
    with os.fdopen(r, "rb") as told:
        pid = int(told.read().strip() or b"0")
    os.waitpid(middle, 0)
    return pid


def main(argv: list[str]) -> int:
    module = importlib.import_module(argv[0])
    report = int(argv[1])
    while True:
        line = sys.stdin.buffer.readline()
        if line.strip() != b"go":
            return 0  # end of input (or anything else): no more restarts wanted
        os.write(report, f"{spawn(module, report)}\n".encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
