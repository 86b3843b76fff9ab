"""The sim supervisor's spares: a restarted service's next process, imported ahead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labsim.node import supervisor

SERVICE = '''
import os, sys, time
IMPORTED_AT = time.time()
def main() -> int:
    with open(os.environ["FAKE_OUT"], "a") as fh:
        fh.write(f"{os.getpid()} served\\n")
    time.sleep(30)
    return 0
'''


@pytest.fixture
def fake_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fake_service.py").write_text(SERVICE)
    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(root)]))
    out = tmp_path / "served"
    monkeypatch.setenv("FAKE_OUT", str(out))
    monkeypatch.setitem(supervisor.PROGRAMS, "gitaly", "fake_service")
    return out


def spare(*lines: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-P", "-m", "labsim.node.spare", "fake_service"],
                          input=b"".join(lines), capture_output=True, timeout=30, check=False)


def test_a_spare_serves_only_when_told_to(fake_service: Path) -> None:
    unused = spare()
    assert unused.returncode == 0, unused.stderr
    assert not fake_service.exists()


def test_a_restarted_service_starts_from_its_spare(fake_service: Path) -> None:
    sup = supervisor.Supervisor()
    try:
        sup.start("gitaly")
        first = sup.children["gitaly"].pid
        assert "gitaly" not in sup.spares  # a first start makes none: it may never restart
        sup.stop(["gitaly"])
        sup.start("gitaly")
        sup.spare_due["gitaly"] = time.time()  # as restart_services leaves it
        sup.make_spares()
        waiting = sup.spares["gitaly"].pid
        sup.stop(["gitaly"])
        sup.start("gitaly")
        assert sup.children["gitaly"].pid == waiting
        assert "gitaly" not in sup.spares
        deadline = time.time() + 20
        while time.time() < deadline and (
                not fake_service.exists() or str(waiting) not in fake_service.read_text()):
            time.sleep(0.05)
        assert f"{waiting} served" in fake_service.read_text()
        assert first != waiting
    finally:
        sup.stop(list(sup.children))
        sup.drop_spares()
    assert not sup.spares
