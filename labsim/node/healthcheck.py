"""gitlab-healthcheck: GET the app's /-/health from inside the node (exit 0 only on 200).

It runs as the app node's Docker healthcheck every few seconds, so it reads the runtime
config through labsim.common.runstate and speaks HTTP/1.0 over a socket: urllib would
import http.client, email and ssl (about 40 ms of CPU per check) for one local GET.
"""

from __future__ import annotations

import socket
import sys

from labsim.common import runstate


def _args(argv: list[str]) -> tuple[bool, float]:
    """``--fail`` and ``--max-time N`` (seconds), the options of Omnibus' curl-based script."""
    fail, max_time = False, 10.0
    rest = iter(argv)
    for arg in rest:
        if arg == "--fail":
            fail = True
        elif arg == "--max-time":
            max_time = float(next(rest, "10"))
        elif arg.startswith("--max-time="):
            max_time = float(arg.partition("=")[2])
    return fail, max_time


def get(port: int, path: str, timeout: float) -> tuple[int, str]:
    """(status code, body) of ``GET path`` on localhost:``port``."""
    with socket.create_connection(("localhost", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[1].isdigit():
        raise OSError(f"not an HTTP answer: {head[:80]!r}")
    return int(status[1]), body.decode(errors="replace")


def main(argv: list[str]) -> int:
    try:
        fail, max_time = _args(argv)
    except ValueError:
        print("gitlab-healthcheck: --max-time takes a number of seconds")
        return 2
    try:
        app = runstate.read_runtime().get("app")
    except (OSError, ValueError):
        app = None
    if not app:
        print("gitlab-healthcheck: no app on this node")
        return 1
    url = f"http://localhost:{app['port']}/-/health"
    try:
        code, body = get(int(app["port"]), "/-/health", max_time)
    except OSError as exc:
        print(f"gitlab-healthcheck: {url}: {exc}")
        return 7
    if code != 200:
        print(f"gitlab-healthcheck: {url}: HTTP {code}")
        return 22 if fail else 0
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
