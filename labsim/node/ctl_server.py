"""`gitlab-ctl reconfigure` run by a fork of PID 1, which has imported all it needs.

A reconfigure's own process spent 60-85 ms of its 0.15-0.2 s importing the supervisor
and the release tables, on every change a scenario applies. PID 1 has them loaded since
its boot reconfigure, so the command (labsim.node.ctl) hands its argv, environment and
standard streams to PID 1 over a Unix socket; PID 1 forks, the child runs the command
on those streams exactly as the command's own process would, sends its exit code back
and ends. Where PID 1 does not take the request (no listener yet: a boot before its
first reconfigure ended), the command runs in its own process as before.

Wire: the client sends one JSON object ``{"argv", "env", "cwd"}`` with its fds 0, 1 and 2
attached (SCM_RIGHTS); PID 1 answers TAKEN, then the child one byte, the exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

#: PID 1's first byte: it took the request (before it, the client may still run it itself).
TAKEN = b"+"
#: The most a request may hold (argv and environment of a `docker exec`).
MAX_REQUEST = 256 * 1024
STREAMS = 3

Command = Callable[[list[str]], int]


def listen(path: str) -> socket.socket:
    """The listening socket at ``path`` (one left by an earlier boot is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)  # root's, as gitlab-ctl is
    sock.listen(16)
    sock.setblocking(False)
    return sock


def serve_one(listener: socket.socket, run: Command) -> int:
    """Accept one request and fork its child; the child's pid (0: nothing to serve).

    The parent only reads the request: whatever the command does happens in the child,
    so PID 1's loop goes on at once."""
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
            request = _request(data, fds)
        except (OSError, ValueError):
            return 0  # not taken: the client runs the command itself
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


def _request(data: bytes, fds: list[int]) -> dict[str, Any]:
    if len(fds) != STREAMS:
        raise ValueError(f"{len(fds)} streams, not {STREAMS}")
    request = json.loads(data)
    if not (isinstance(request, dict) and isinstance(request.get("argv"), list)
            and all(isinstance(a, str) for a in request["argv"])
            and isinstance(request.get("env"), dict)):
        raise ValueError("not a gitlab-ctl request")
    return request


def _child(conn: socket.socket, request: dict[str, Any], fds: list[int],
           run: Command) -> NoReturn:
    code = 1
    try:
        # PID 1's handlers act on PID 1's state: here the signals do what they would to
        # the command's own process.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        # Only the streams and the answer stay open: a copy of PID 1's end of a spare's
        # stdin, say, would keep that spare from seeing its end of input.
        for name in os.listdir("/proc/self/fd"):
            if int(name) > 2 and int(name) != conn.fileno():
                with contextlib.suppress(OSError):
                    os.close(int(name))
        # New stream objects: PID 1's may hold buffered output or a lock of its own.
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (ended by os._exit)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        with contextlib.suppress(OSError, TypeError):
            os.chdir(request.get("cwd") or "/")
        code = run(list(request["argv"]))
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


def ask(path: str, argv: list[str]) -> int | None:
    """Run ``argv`` through PID 1; its exit code, or None where PID 1 did not take it
    (the caller runs the command itself)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
            request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
            socket.send_fds(sock, [json.dumps(request).encode()], list(range(STREAMS)))
            sock.shutdown(socket.SHUT_WR)
            if sock.recv(1) != TAKEN:
                return None
        except OSError:
            return None
        try:
            answer = sock.recv(1)
        except OSError:
            answer = b""
    if not answer:
        print("gitlab-ctl (gitlab-testlab-sim): the command ended without an exit code",
              file=sys.stderr)
        return 1
    return answer[0]
