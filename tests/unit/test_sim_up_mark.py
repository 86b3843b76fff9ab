"""A sim node's up mark: PID 1 writes it once its services are up, readiness reads it
through the engine's archive API instead of exec'ing `gitlab-ctl status`."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sim_run_state
from sim_run_state import Proc

from lab.engine import docker as dk
from lab.errors import EngineError
from lab.omnibus.sim_node import up_services
from labsim.node import ctl, supervisor  # ctl: the module supervisor asks by name

STARTED = "2026-12-07T15:16:36.312920315Z"


def test_the_mark_of_this_run_names_its_services() -> None:
    data = json.dumps({"services": ["gitaly", "sshd"]}).encode()
    assert up_services(data, "2026-12-07T15:16:37.1Z", STARTED) == {"gitaly", "sshd"}


@pytest.mark.parametrize(("data", "mtime"), [
    # Written before the container's latest start: an earlier run's, not this one's.
    (b'{"services": ["gitaly"]}', "2026-12-07T15:16:36.2Z"),
    (b'{"services": "gitaly"}', "2026-12-07T15:16:37Z"),
    (b'{"services": [1]}', "2026-12-07T15:16:37Z"),
    (b'{"up": []}', "2026-12-07T15:16:37Z"),
    (b"not json", "2026-12-07T15:16:37Z"),
    (b"\xff\xfe", "2026-12-07T15:16:37Z"),
    (b'{"services": []}', ""),  # the engine gave no time
])
def test_a_mark_that_does_not_say_is_none(data: bytes, mtime: str) -> None:
    assert up_services(data, mtime, STARTED) is None


sup = pytest.fixture(sim_run_state.supervisor_here)


def test_pid1_marks_up_once_status_would_say_so_and_unmarks_on_a_change(
        sup: supervisor.Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mark = tmp_path / "up.json"
    answers = [3, 0]
    monkeypatch.setattr(ctl, "status", lambda only, quiet: answers.pop(0))
    sup.children = {"sshd": Proc(7), "gitaly": Proc(9), "puma": Proc(10, code=1)}  # type: ignore[dict-item]
    sup.started = {"sshd": 1.0, "gitaly": 2.0, "puma": 2.0}
    sup.mark_up()
    assert not mark.exists()  # nothing changed since the last mark: status is not asked
    sup.write_state()
    sup.mark_up()  # status says a service is down
    assert not mark.exists()
    sup.mark_up()
    # What runs: the one that ended is not named.
    assert json.loads(mark.read_text()) == {"services": ["gitaly", "sshd"]}
    sup.mark_up()  # marked: status is not asked again (answers would run out)
    sup.write_state()  # a service started or restarted: the mark no longer holds
    assert not mark.exists()
    answers.append(0)
    sup.mark_up()
    assert mark.exists()
    sup.unmark()
    assert not mark.exists()


def test_pid1_outlives_a_failing_mark(sup: supervisor.Supervisor, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """PID 1's end is the container's: a mark it cannot make is logged, and readiness asks
    `gitlab-ctl status` instead."""
    said: list[str] = []
    monkeypatch.setattr(supervisor, "log", said.append)

    def broken(only: str | None, quiet: bool) -> int:
        raise KeyError("listen_addr")
    monkeypatch.setattr(ctl, "status", broken)
    sup.children, sup.started = {}, {}
    sup.write_state()
    sup.mark_up()
    assert not (tmp_path / "up.json").exists()
    assert said == ["up mark: KeyError: 'listen_addr'"]
    sup.mark_up()  # said once, not every tick
    assert len(said) == 1


class FakeApi:
    def __init__(self, archive: bytes, stat: dict[str, Any] | None = None,
                 error: Exception | None = None) -> None:
        self.archive, self.stat, self.error = archive, stat, error

    def get_archive(self, container: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        if self.error is not None:
            raise self.error
        chunks = (self.archive[i:i + 100] for i in range(0, len(self.archive), 100))
        return chunks, self.stat or {}


class NotFound(Exception):
    status_code = 404


def tar_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def use(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    class Client:
        pass
    client = Client()
    client.api = api  # type: ignore[attr-defined]
    monkeypatch.setattr(dk, "_client", lambda: client)


def test_read_file_gives_the_bytes_and_the_engines_time(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"services": ["sshd"]}'
    use(monkeypatch, FakeApi(tar_of("up.json", data), {"size": len(data), "mode": 0o644,
                                                       "mtime": "2026-12-07T15:16:37Z"}))
    assert dk.read_file("c1", "/run/gitlab-sim/up.json", limit=4096) == dk.FileRead(
        data, "2026-12-07T15:16:37Z")


def test_read_file_refuses_what_is_not_one_small_file(monkeypatch: pytest.MonkeyPatch) -> None:
    big = b"x" * 30000
    use(monkeypatch, FakeApi(tar_of("up.json", big), {"size": len(big), "mode": 0o644}))
    assert dk.read_file("c1", "/x", limit=4096) is None
    # A folder (Go's os.ModeDir), however small it says it is.
    use(monkeypatch, FakeApi(tar_of("d", b""), {"size": 0, "mode": (1 << 31) | 0o755}))
    assert dk.read_file("c1", "/x", limit=4096) is None
    # More bytes than one small file's tar, whatever the stat said.
    use(monkeypatch, FakeApi(tar_of("up.json", big), {"size": 10, "mode": 0o644}))
    assert dk.read_file("c1", "/x", limit=4096) is None


def test_read_file_missing_is_none_and_other_errors_are_the_engines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeApi(b"", error=NotFound("no such file")))
    assert dk.read_file("c1", "/x", limit=4096) is None
    use(monkeypatch, FakeApi(b"", error=RuntimeError("engine hung up")))
    with pytest.raises(EngineError, match="engine hung up"):
        dk.read_file("c1", "/x", limit=4096)
