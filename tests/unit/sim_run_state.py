"""A sim node's run-state files in a test's own folder, and a port something listens on,
for the tests of the sim's short-lived tools (`gitlab-ctl status`, `gitlab-healthcheck`,
`service gitlab`), which read labsim.common.runstate; and PID 1's supervisor writing its
files there. Each module makes fixtures of them
(``run_dir = pytest.fixture(sim_run_state.run_dir)``)."""

from __future__ import annotations

import ctypes
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from labsim.common import runstate
from labsim.node import supervisor

FILES = (("STATE", "services.json"), ("STOPPED", "stopped.json"), ("RUNTIME", "config.json"),
         ("RESTART_FAILED", "restart-failed.txt"))


def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, file in FILES:
        monkeypatch.setattr(runstate, name, str(tmp_path / file))
    return tmp_path


def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


class Proc:
    """A service process as the supervisor sees it: ``code`` None while it runs."""

    def __init__(self, pid: int, code: int | None = None) -> None:
        self.pid, self.code = pid, code

    def poll(self) -> int | None:
        return self.code


def supervisor_here(tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[supervisor.Supervisor]:
    """PID 1's supervisor writing its service state in ``tmp_path``; the
    process is put back as it was (its SIGCHLD handler, the orphans' parent)."""
    monkeypatch.setattr(supervisor, "STATE", str(tmp_path / "services.json"))
    before = signal.getsignal(signal.SIGCHLD)
    made = supervisor.Supervisor()
    try:
        yield made
    finally:
        signal.signal(signal.SIGCHLD, before)
        ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, set by adopt_orphans
