"""The state folder's lab claims: one process per lab name; a dead process holds none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.state import LabClaim

HOLD = ("import sys, time; from lab.state import LabClaim; "
        "assert LabClaim(sys.argv[1]).acquire(wait=False); print('held', flush=True); "
        "time.sleep(60)")


def test_a_claim_excludes_others_until_released(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    first, second = LabClaim("sc-a"), LabClaim("sc-a")
    assert first.acquire(wait=False)
    assert not second.acquire(wait=False)
    assert LabClaim("sc-b").acquire(wait=False)  # another name is another lab
    first.release()
    assert second.acquire(wait=False)
    second.release()


def test_a_killed_holder_leaves_the_lab_free(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, "sc-a"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        assert not LabClaim("sc-a").acquire(wait=False)
    finally:
        proc.kill()
        proc.wait()
    claim = LabClaim("sc-a")
    assert claim.acquire(wait=False)
    claim.release()
