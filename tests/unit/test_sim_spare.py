"""The sim supervisor's fork servers: a restarted service's next processes, imported once."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labsim.node import supervisor

SERVICE = '''
import os, sys, time
IMPORTED_AT = time.time()
def main() -> int:
    with open(os.environ["FAKE_OUT"], "a") as fh:
        fh.write(f"{os.getpid()} served {IMPORTED_AT}\\n")
    if os.environ.get("FAKE_EXIT"):
        return int(os.environ["FAKE_EXIT"])
    time.sleep(30)
    return 0
'''
PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture
def fake_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fake_service.py").write_text(SERVICE)
    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(root)]))
    out = tmp_path / "served"
    monkeypatch.setenv("FAKE_OUT", str(out))
    monkeypatch.setitem(supervisor.PROGRAMS, "gitaly", "fake_service")
    return out


def spare(*lines: bytes) -> tuple[subprocess.CompletedProcess[bytes], list[int]]:
    """A fork server run on ``lines``, and the PIDs it reported."""
    told, tell = os.pipe()
    with os.fdopen(told, "rb") as reported:
        try:
            done = subprocess.run(
                [sys.executable, "-P", "-m", "labsim.node.spare", "fake_service", str(tell)],
                input=b"".join(lines), capture_output=True, timeout=30, check=False,
                pass_fds=(tell,))
        finally:
            os.close(tell)  # once: the server's copy is the only writer left
        return done, [int(pid) for pid in reported.read().split()]


def test_a_spare_serves_only_when_told_to(fake_service: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    unused, pids = spare()
    assert unused.returncode == 0, unused.stderr
    assert pids == []
    assert not fake_service.exists()
    # Told once, it forks one service (which ends at once here: it holds the output that
    # run() reads to its end), reports its PID and ends at the end of its input.
    monkeypatch.setenv("FAKE_EXIT", "0")
    told, pids = spare(b"go\n")
    assert told.returncode == 0, told.stderr
    [pid] = pids
    assert fake_service.read_text().split()[:2] == [str(pid), "served"]


@pytest.fixture
def sup(fake_service: Path) -> Iterator[supervisor.Supervisor]:
    """A supervisor in this test process, which it makes the parent of orphans (as PID 1
    is in a node) for as long as the test runs."""
    made = supervisor.Supervisor()
    try:
        yield made
    finally:
        made.stop(list(made.children))
        made.drop_spares()
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def served(out: Path, pid: int) -> str:
    """The line the fake service with ``pid`` wrote: its PID and when its module was imported."""
    deadline = time.time() + 20
    while time.time() < deadline:
        for line in out.read_text().splitlines() if out.exists() else []:
            if line.startswith(f"{pid} "):
                return line
        time.sleep(0.05)
    raise AssertionError(f"{pid} never served")


def test_restarts_after_the_first_fork_one_imported_server(
        sup: supervisor.Supervisor, fake_service: Path) -> None:
    sup.start("gitaly")
    first = sup.children["gitaly"].pid
    assert "gitaly" not in sup.spares  # a first start makes none: it may never restart
    sup.stop(["gitaly"])
    sup.start("gitaly")
    sup.spare_due["gitaly"] = time.time()  # as restart_services leaves it
    sup.make_spares()
    server = sup.spares["gitaly"].proc.pid
    pids, imports = [], set()
    for _ in range(2):
        sup.stop(["gitaly"])
        sup.start("gitaly")
        child = sup.children["gitaly"]
        assert isinstance(child, supervisor.Adopted)
        assert child.poll() is None
        pids.append(child.pid)
        imports.add(served(fake_service, child.pid).split()[-1])
    # Two processes, one import: the server's, which stays for the next restart.
    assert len({first, server, *pids}) == 4
    assert len(imports) == 1
    assert sup.spares["gitaly"].proc.pid == server
    # A stop ends the forked service and collects its exit status, as for a started one.
    child = sup.children["gitaly"]
    sup.stop(["gitaly"])
    assert child.returncode is not None
    sup.drop_spares()
    assert not sup.spares


def test_a_forked_service_that_ends_is_seen_with_its_code(
        sup: supervisor.Supervisor, fake_service: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXIT", "3")
    sup.start("gitaly")
    sup.spare_due["gitaly"] = time.time()
    sup.make_spares()
    sup.stop(["gitaly"])
    sup.start("gitaly")
    child = sup.children["gitaly"]
    assert isinstance(child, supervisor.Adopted)
    assert child.wait(20) == 3


def test_a_gone_server_falls_back_to_a_plain_start(sup: supervisor.Supervisor,
                                                     fake_service: Path) -> None:
    sup.start("gitaly")
    sup.spare_due["gitaly"] = time.time()
    sup.make_spares()
    sup.spares["gitaly"].proc.kill()
    sup.spares["gitaly"].proc.wait()
    sup.stop(["gitaly"])
    sup.start("gitaly")
    assert isinstance(sup.children["gitaly"], subprocess.Popen)
    assert "gitaly" not in sup.spares
