"""`service gitlab restart` on a sim node installed from source (labsim.node.service): it
returns once PID 1's new services listen, fails with the reason when they could not start
on the node's files, and is missing on an Omnibus node."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sim_run_state

from lab.omnibus.release import Version
from labsim.common import runstate, simconfig, sourceconfig
from labsim.node import ctl, service, supervisor

listener = pytest.fixture(sim_run_state.listener)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(ctl, "WAIT_UP_POLL", 0.005)
    return sim_run_state.run_dir(tmp_path, monkeypatch)


def _gitaly_node(port: int) -> dict[str, object]:
    return {"gitaly": {"socket_path": "", "listen_addr": f"127.0.0.1:{port}",
                       "tls_listen_addr": ""}, "install": "source"}


def _pid1(monkeypatch: pytest.MonkeyPatch, on_signal: Callable[[], object]) -> list[int]:
    """PID 1 stand-in: ``on_signal`` runs in a thread when the script signals it."""
    sent: list[int] = []

    def kill(pid: int, sig: int) -> None:
        if sig == 0:
            return  # alive
        sent.append(pid)
        threading.Timer(0.02, on_signal).start()

    monkeypatch.setattr(os, "kill", kill)
    return sent


def test_restart_returns_once_the_new_services_listen(
        run_dir: Path, listener: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "config.json").write_text(json.dumps(_gitaly_node(listener)))
    (run_dir / "services.json").write_text(json.dumps({"gitaly": {"pid": 10, "started": 1}}))
    new = {"gitaly": {"pid": 11, "started": 2}}
    sent = _pid1(monkeypatch, lambda: (run_dir / "services.json").write_text(json.dumps(new)))
    monkeypatch.setattr(service, "installed_from_source", lambda: True)
    assert service.main(["restart"]) == 0
    assert sent == [1]
    assert json.loads((run_dir / "services.json").read_text()) == new
    assert capsys.readouterr().out == "GitLab and all its components are up and running.\n"


def test_restart_fails_with_the_reason_pid_1_left(
        run_dir: Path, listener: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "config.json").write_text(json.dumps(_gitaly_node(listener)))
    before = json.dumps({"gitaly": {"pid": 10, "started": 1}})
    (run_dir / "services.json").write_text(before)
    # An earlier failure's file is not this restart's answer.
    (run_dir / "restart-failed.txt").write_text("old\n")

    def fail() -> None:
        (run_dir / "restart-failed.txt").write_text("load config: config_path: bad\n")
        (run_dir / "services.json").write_text("{}")

    _pid1(monkeypatch, fail)
    assert service.restart(timeout=5) == 1
    assert capsys.readouterr().err == "GitLab did not start: load config: config_path: bad\n"


def test_restart_gives_up_when_nothing_listens(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    deaf = int(closed.getsockname()[1])
    closed.close()
    (run_dir / "config.json").write_text(json.dumps(_gitaly_node(deaf)))
    (run_dir / "services.json").write_text(json.dumps({"gitaly": {"pid": 10, "started": 1}}))
    new = json.dumps({"gitaly": {"pid": 11, "started": 2}})
    _pid1(monkeypatch, lambda: (run_dir / "services.json").write_text(new))
    assert service.restart(timeout=0.3) == 1
    assert "did not come up within 0.3 s" in capsys.readouterr().err


@pytest.mark.parametrize(("environ", "source"), [
    (b"PATH=/bin\0GITLAB_TESTLAB_INSTALL=source\0", True),
    (b"PATH=/bin\0GITLAB_TESTLAB_INSTALL=omnibus\0", False),
    (b"PATH=/bin\0", False),
])
def test_only_a_source_node_has_the_script(tmp_path: Path, environ: bytes,
                                           source: bool) -> None:
    path = tmp_path / "environ"
    path.write_bytes(environ)
    assert service.installed_from_source(str(path)) is source
    assert not service.installed_from_source(str(tmp_path / "missing"))


def test_an_omnibus_node_answers_as_without_the_script(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(service, "installed_from_source", lambda: False)
    assert service.main(["restart"]) == 1
    assert capsys.readouterr().err == "gitlab: unrecognized service\n"


def test_pid_1_leaves_a_source_node_stopped_on_files_it_cannot_read(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "STATE", runstate.STATE)
    sup = supervisor.Supervisor()
    stopped: list[str] = []
    monkeypatch.setattr(sup, "stop_all", lambda: stopped.append("all"))
    monkeypatch.setattr(supervisor, "release", lambda: Version(19, 3, 0))
    monkeypatch.setattr(supervisor, "log", lambda message: None)

    def unreadable(version: Version) -> dict[str, object]:
        raise sourceconfig.SourceConfigError("load config: config_path: bad")

    monkeypatch.setattr(supervisor, "load_source", unreadable)
    restarted: list[str] = []
    monkeypatch.setattr(sup, "restart_services", lambda: restarted.append("yes"))
    supervisor.restart_source(sup)
    assert stopped == ["all"]
    assert not restarted
    assert (run_dir / "restart-failed.txt").read_text() == "load config: config_path: bad\n"
    assert json.loads((run_dir / "services.json").read_text()) == {}

    # Readable again: the failure file goes and the services start from the new files.
    monkeypatch.setattr(supervisor, "load_source", lambda version: {"gitaly": None})
    written: list[dict[str, object]] = []
    monkeypatch.setattr(simconfig, "write_runtime", written.append)
    supervisor.restart_source(sup)
    assert restarted == ["yes"]
    assert written == [{"gitaly": None}]
    assert not (run_dir / "restart-failed.txt").exists()


def test_status_says_whether_every_service_listens(
        run_dir: Path, listener: int, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "installed_from_source", lambda: True)
    (run_dir / "config.json").write_text(json.dumps(_gitaly_node(listener)))
    (run_dir / "services.json").write_text(json.dumps({"gitaly": {"pid": os.getpid(),
                                                                  "started": 1}}))
    assert service.main(["status"]) == 0
    (run_dir / "services.json").write_text("{}")
    assert service.main(["status"]) == 3
    assert capsys.readouterr().out.splitlines() == [
        "GitLab and all its components are up and running.", "GitLab is not running."]
