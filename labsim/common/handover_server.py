"""The serving side of labsim.common.handover: a process that has a command's modules
loaded forks, and the child runs the command on the asker's streams.

Used by PID 1 for `gitlab-ctl reconfigure` (a reconfigure's own process spent 60-85 ms
of its 0.15-0.2 s importing the supervisor and the release tables; PID 1 has them
loaded since its boot reconfigure) and by a fork of Gitaly for the processes git starts
(labsim.gitaly.git_children).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from labsim.common.handover import MAX_REQUEST, STREAMS, TAKEN, Request, decode

Command = Callable[[list[str]], int]


def listen(path: str, *, blocking: bool = False) -> socket.socket:
    """The listening socket at ``path`` (one left by an earlier process is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)  # its owner's, as the commands it runs are
    sock.listen(16)
    sock.setblocking(blocking)
    return sock


def serve_one(listener: socket.socket, run: Command) -> int:
    """Accept one request and fork its child; the child's pid (0: nothing to serve).

    The parent only reads the request: whatever the command does happens in the child,
    so the server's loop goes on at once."""
    try:
        conn, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return 0
    fds: list[int] = []
    try:
        conn.setblocking(True)
        conn.settimeout(5)
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, STREAMS)
            if len(fds) != STREAMS:
                raise ValueError(f"{len(fds)} streams, not {STREAMS}")
            request = decode(data)
        except (OSError, ValueError):
            return 0  # not taken: the asker runs the command itself
        conn.sendall(TAKEN)
        pid = os.fork()
        if pid == 0:
            _child(conn, request, fds, run)
        return pid
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        conn.close()


def _child(conn: socket.socket, request: Request, fds: list[int], run: Command) -> NoReturn:
    code = 1
    try:
        # The server's handlers act on the server's state: here the signals do what they
        # would to the command's own process (PID 1's SIGCHLD handler writes to a pipe
        # whose descriptor number this child may reuse for a file of its own).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        # Only the streams and the answer stay open: a copy of PID 1's end of a spare's
        # stdin, say, would keep that spare from seeing its end of input.
        for name in os.listdir("/proc/self/fd"):
            if int(name) > 2 and int(name) != conn.fileno():
                with contextlib.suppress(OSError):
                    os.close(int(name))
        # New stream objects: the server's may hold buffered output or a lock of its own.
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (ended by os._exit)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(request.env)
        with contextlib.suppress(OSError):
            os.chdir(request.cwd or "/")
        code = run(list(request.argv))
    except SystemExit as exc:  # as Python exits: None is 0, a text is printed and 1
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # as an uncaught exception in its own process: printed, exit 1
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(bytes([code & 0xFF]))
        os._exit(0)
