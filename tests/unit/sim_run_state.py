"""A sim node's run-state files in a test's own folder, and a port something listens on:
for the tests of the sim's short-lived tools (`gitlab-ctl status`, `gitlab-healthcheck`,
`service gitlab`), which read labsim.common.runstate. Each module makes fixtures of them
(``run_dir = pytest.fixture(sim_run_state.run_dir)``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from labsim.common import runstate

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
