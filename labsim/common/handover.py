"""A command's work handed to a process that has its modules loaded: the wire, and the
asking side (the serving side is labsim.common.handover_server).

A sim command spends most of its own process importing (the supervisor and the release
tables for `gitlab-ctl reconfigure`, gRPC for gitaly-ssh, urllib and ssl for Gitaly's
hooks) before a few milliseconds of work. Where a process that has them loaded listens
(PID 1 for gitlab-ctl, a fork of Gitaly for what git starts), the command sends its
argv, environment, working folder and standard streams there; that process forks, the
child runs the command on those streams exactly as the command's own process would and
sends the exit code back. Where nobody takes the request, the command runs in its own
process as before.

Wire: NUL-separated fields (the folder, the number of arguments, the arguments, then
NAME=value for the environment; none can hold a NUL) with fds 0, 1 and 2 attached
(SCM_RIGHTS); the server answers TAKEN, then the child one byte, the exit code.

This side imports only os, socket and sys: git's hooks run it under ``python3 -S``, where
each further import is milliseconds on every push.
"""

from __future__ import annotations

import os
import socket
import sys

#: The server's first byte: it took the request (before it, the asker may still run it).
TAKEN = b"+"
#: The most a request may hold (argv and environment of a `docker exec` or a git hook).
MAX_REQUEST = 256 * 1024
STREAMS = 3


class Request:
    """A command as its own process would have run it."""

    __slots__ = ("argv", "cwd", "env")

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.argv, self.env, self.cwd = argv, env, cwd


def encode(request: Request) -> bytes:
    fields = [request.cwd, str(len(request.argv)), *request.argv,
              *(f"{k}={v}" for k, v in request.env.items())]
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def decode(data: bytes) -> Request:
    """The request in ``data``; ValueError where it is not one."""
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) < 2 or not fields[1].isdigit():
        raise ValueError("not a request")
    count = int(fields[1])
    argv = fields[2:2 + count]
    if len(argv) != count:
        raise ValueError(f"{len(argv)} arguments, not {count}")
    env = dict(item.split("=", 1) for item in fields[2 + count:] if "=" in item)
    return Request(argv, env, fields[0])


def ask(path: str, argv: list[str], who: str) -> int | None:
    """Run ``argv`` through the server at ``path``; its exit code, or None where the server
    did not take it (the caller runs the command itself). ``who`` names the command in
    the message of a server that took it and ended without an answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
            request = Request(argv, dict(os.environ), os.getcwd())
            socket.send_fds(sock, [encode(request)], list(range(STREAMS)))
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
        print(f"{who}: the command ended without an exit code", file=sys.stderr)
        return 1
    return answer[0]
