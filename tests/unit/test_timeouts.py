"""pytest-timeout as this project configures it: a hung test fails alone, with its teardown
run, also under pytest-xdist; tests on real Omnibus images get a longer limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import conftest
import pytest
from conftest import OMNIBUS_TEST_TIMEOUT, ROOT

HUNG = '''
import os, time
from pathlib import Path
import pytest

@pytest.fixture
def lab():
    yield
    Path(os.environ["TEARDOWN_MARK"]).write_text("torn down")

def test_hangs(lab):
    time.sleep(120)

def test_next():
    pass
'''


@pytest.mark.slow
def test_a_hung_test_fails_alone_and_is_torn_down_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG)
    mark = tmp_path / "teardown"
    # This project's pytest settings (the method among them), a 2 s limit, one xdist worker.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
         str(tmp_path), "-p", "no:cacheprovider", "-n", "1", "--timeout", "2", "-q",
         str(tmp_path / "test_hung.py")],
        cwd=tmp_path, env={**os.environ, "TEARDOWN_MARK": str(mark)},
        capture_output=True, text=True, timeout=100)
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout + proc.stderr
    assert "Timeout (>2.0s) from pytest-timeout" in proc.stdout
    assert "1 failed, 1 passed" in proc.stdout
    assert "crashed" not in proc.stdout  # the worker lived on ("thread" would kill it)
    assert mark.read_text() == "torn down"


class Item:
    def __init__(self, *markers: str, timeout: float | None = None) -> None:
        self.markers: dict[str, Any] = {m: getattr(pytest.mark, m) for m in markers}
        if timeout is not None:
            self.markers["timeout"] = pytest.mark.timeout(timeout)

    def get_closest_marker(self, name: str) -> Any:
        mark = self.markers.get(name)
        return mark.mark if mark is not None else None

    def add_marker(self, mark: Any) -> None:
        self.markers[mark.name] = mark


class Config:
    def __init__(self, **options: Any) -> None:
        self.options = options

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


def limits(config: Config, *items: Item) -> list[float | None]:
    conftest.pytest_collection_modifyitems(config, list(items))  # type: ignore[arg-type]
    marks = [i.get_closest_marker("timeout") for i in items]
    return [m.args[0] if m is not None else None for m in marks]


def test_omnibus_tests_get_the_omnibus_limit() -> None:
    assert OMNIBUS_TEST_TIMEOUT >= 3600
    sim = Config(lab_flavor="sim")
    assert limits(sim, Item(), Item("omnibus"), Item("omnibus", timeout=5)) == [
        None, OMNIBUS_TEST_TIMEOUT, 5]
    # --lab-flavor omnibus: every test (scenarios too) boots Omnibus.
    assert limits(Config(lab_flavor="omnibus"), Item(), Item("slow")) == [
        OMNIBUS_TEST_TIMEOUT, OMNIBUS_TEST_TIMEOUT]
    # --timeout on the command line wins.
    assert limits(Config(lab_flavor="omnibus", timeout=30.0), Item("omnibus")) == [None]


def test_the_project_limit_and_method(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) == 600
    assert pytestconfig.getini("timeout_method") == "signal"
