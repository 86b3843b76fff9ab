"""A command handed to a process that has its modules loaded (labsim.common.handover), as
`gitlab-ctl reconfigure` is to the sim's PID 1: the command runs on the caller's own
streams, environment and directory, its exit code comes back, and where the server does
not take the request the caller runs the command itself."""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labsim.common import handover, handover_server
from labsim.node import ctl, supervisor


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "ctl.sock")
    sock = handover_server.listen(path)
    yield path, sock
    sock.close()


def _serve(sock: socket.socket, run: handover_server.Command, timeout: float = 5) -> int:
    """PID 1's part: accept one request, fork, wait for the child; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([sock], [], [], 0.1)
        pid = handover_server.serve_one(sock, run)
        if pid:
            os.waitpid(pid, 0)
            return pid
    raise AssertionError("no request came")


def _ask_in_thread(path: str, argv: list[str]) -> tuple[threading.Thread, list[int | None]]:
    got: list[int | None] = []
    thread = threading.Thread(target=lambda: got.append(handover.ask(path, argv, "gitlab-ctl")))
    thread.start()
    return thread, got


def test_the_command_runs_in_a_fork_on_the_callers_streams(
        listener: tuple[str, socket.socket], capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path, sock = listener
    monkeypatch.setenv("GITLAB_SIM_PROBE", "from the caller")
    monkeypatch.chdir(tmp_path)

    kept_r, kept_w = os.pipe()  # as PID 1's end of a spare's stdin

    def run(argv: list[str]) -> int:
        print(f"{argv} {os.environ['GITLAB_SIM_PROBE']} {os.getcwd()} {os.getpid()}")
        print("to stderr", file=sys.stderr)
        try:
            os.fstat(kept_w)
            print("PID 1's fd is open here", file=sys.stderr)
        except OSError:
            pass
        return 3

    thread, got = _ask_in_thread(path, ["reconfigure"])
    child = _serve(sock, run)
    thread.join(5)
    assert got == [3]
    out, err = capfd.readouterr()
    assert out == f"['reconfigure'] from the caller {tmp_path} {child}\n"
    assert err == "to stderr\n"
    os.close(kept_r)
    os.close(kept_w)


@pytest.mark.parametrize(("ending", "code", "printed"), [
    (SystemExit(5), 5, ""),
    (SystemExit(), 0, ""),
    (SystemExit("usage: gitlab-ctl"), 1, "usage: gitlab-ctl"),
    (RuntimeError("boom"), 1, "RuntimeError: boom"),
])
def test_an_exit_or_an_uncaught_exception_is_the_exit_code(
        listener: tuple[str, socket.socket], capfd: pytest.CaptureFixture[str],
        ending: BaseException, code: int, printed: str) -> None:
    path, sock = listener

    def run(argv: list[str]) -> int:
        raise ending

    thread, got = _ask_in_thread(path, ["reconfigure"])
    _serve(sock, run)
    thread.join(5)
    assert got == [code]
    assert printed in capfd.readouterr().err


def test_without_pid_1_listening_the_caller_runs_it_itself(tmp_path: Path) -> None:
    assert handover.ask(str(tmp_path / "none.sock"), ["reconfigure"], "gitlab-ctl") is None
    # A socket file left by an earlier boot, with nobody behind it.
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left:
        left.bind(str(stale))
    assert handover.ask(str(stale), ["reconfigure"], "gitlab-ctl") is None


def test_a_request_pid_1_cannot_read_is_not_taken(
        listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        client.sendall(handover.encode(handover.Request(["reconfigure"], {}, "/")))  # no streams
        client.shutdown(socket.SHUT_WR)
        select.select([sock], [], [], 5)
        assert handover_server.serve_one(sock, lambda argv: 0) == 0
        assert client.recv(1) == b""  # no TAKEN: the caller would run the command itself


def test_gitlab_ctl_sends_only_a_reconfigure_to_pid_1(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    ran: list[list[str]] = []

    def ask(path: str, argv: list[str], who: str) -> int | None:
        asked.append(argv)
        return None if len(asked) > 1 else 7

    monkeypatch.setattr(handover, "ask", ask)
    monkeypatch.setattr(ctl, "run", lambda argv: ran.append(argv) or 0)
    assert ctl.main(["reconfigure"]) == 7  # PID 1's child ran it
    assert ctl.main(["reconfigure"]) == 0  # not taken: run here
    assert ctl.main(["status"]) == 0
    assert asked == [["reconfigure"], ["reconfigure"]]
    assert ran == [["reconfigure"], ["status"]]


def test_a_signal_wakes_pid_1_at_once() -> None:
    sup = supervisor.Supervisor()
    threading.Timer(0.05, lambda: sup.ask("want_restart")).start()
    t0 = time.monotonic()
    sup.wait(5)
    assert sup.want_restart
    assert time.monotonic() - t0 < 1
    # The wake-up was read: the next wait lasts its timeout.
    t0 = time.monotonic()
    sup.wait(0.2)
    assert time.monotonic() - t0 >= 0.19


def test_pid_1_runs_gitlab_ctls_own_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctl, "run", lambda argv: 9 if argv == ["reconfigure"] else 0)
    assert supervisor.run_ctl(["reconfigure"]) == 9


def test_a_request_survives_its_wire_form() -> None:
    request = handover.Request(["gitaly-ssh", "git-upload-pack", "", "a=b"],
                               {"A": "x=y", "EMPTY": "", "BYTES": "\udcff"}, "/r")
    back = handover.decode(handover.encode(request))
    assert (back.argv, back.env, back.cwd) == (request.argv, request.env, request.cwd)
    for broken, why in ((b"/r\0two\0", "not a request"), (b"/r", "not a request"),
                        (b"/r\x002\0only-one", "1 arguments, not 2")):
        with pytest.raises(ValueError, match=why):
            handover.decode(broken)
