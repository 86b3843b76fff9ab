"""The state folder's lab claims: one process per lab name; a dead process holds none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.store.state import LabClaim

HOLD = ("import sys, time; from lab.store.state import LabClaim; "
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


def test_home_id_of_two_first_starts_is_one_whole_id(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from lab.store import ownership, state
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    final = state.labs_dir() / ".home-id"
    real_link = os.link
    seen: list[str] = []

    def racing_link(src: str, dst: str) -> None:
        # What a process starting at the same moment sees just before our id lands.
        seen.append(final.read_text() if final.exists() else "")
        final.write_text("0123456789abcdef\n")  # the other process got there first
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    assert ownership.home_id() == "0123456789abcdef"
    assert seen == [""]  # no half-written file under the final name before the link
    assert sorted(p.name for p in state.labs_dir().iterdir()) == [".home-id"]
    monkeypatch.setattr(os, "link", real_link)
    assert ownership.home_id() == "0123456789abcdef"


def test_home_id_made_by_threads_at_once_is_one_id(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Labs booted side by side run in threads of one process: each must get the one id.
    import threading

    from lab.store import ownership, state
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    start = threading.Barrier(8)
    got: list[str | None] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        start.wait()
        try:
            got.append(ownership.home_id())
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    for _round in range(20):
        (state.labs_dir() / ".home-id").unlink(missing_ok=True)
        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(set(got[-8:])) == 1
    assert sorted(p.name for p in state.labs_dir().iterdir()) == [".home-id"]
