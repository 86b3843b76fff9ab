"""Shared test helpers: paths, deterministic secrets, skips that CI turns into failures."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from lab.lifecycle.gc import sweep
from lab.lifecycle.timeouts import WAITS
from lab.model.topology import Flavor, Lab
from lab.render.compose_file import DIR_LABEL
from lab.render.secrets import LabSecrets, ensure_secrets
from lab.store import state

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
#: pytest-timeout's limit for a test on real Omnibus images (pyproject's is sized for the
#: sim): one boot may use the toolkit's whole wait, and a test may boot and then restart.
OMNIBUS_TEST_TIMEOUT = 3 * WAITS[Flavor.OMNIBUS].lab_ready


def pytest_configure(config: pytest.Config) -> None:
    # Golden files rewritten in CI would make the golden tests pass whatever was rendered.
    if os.environ.get("CI") == "true" and "UPDATE_GOLDEN" in os.environ:
        raise pytest.UsageError(
            "UPDATE_GOLDEN is set and CI=true: CI compares rendered labs with the committed "
            "golden files in tests/golden and never rewrites them. Unset UPDATE_GOLDEN; to "
            "refresh golden files, run `UPDATE_GOLDEN=1 python3 -m pytest "
            "tests/unit/test_golden.py` on your machine and review the diff (README, "
            "Development).")


#: Tags a test put on the sim image that name a real one (gitlab/gitlab-ce:X-ce.0).
SIM_TAGS = pytest.StashKey[list[str]]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Nothing a test run leaves may pose as GitLab: `lab up --flavor omnibus` would boot
    # it, and a later real pull would be skipped because the tag is present.
    tags = session.config.stash.get(SIM_TAGS, [])
    if not tags:
        return
    from lab.engine import docker as dk

    left = [t for t in tags if dk.image_present(t)]
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ERROR: the test run left the sim image tagged as {left}; a "
                                "fixture that tags it must remove the tag", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Swarm tests run last: making and leaving a swarm reprograms the engine's networking,
    # and the session's labs (the plugin keeps them up for the scenario library) lost their
    # DNS when the swarm tests ran between python-gitlab's tests and the scenarios.
    items.sort(key=lambda item: getattr(getattr(item, "path", None), "name", "") == "test_swarm.py")
    # A --timeout on the command line or a test's own marker still wins.
    if config.getoption("timeout", None) is not None:
        return
    everything = config.getoption("lab_flavor", "sim") == Flavor.OMNIBUS
    for item in items:
        if (everything or item.get_closest_marker("omnibus")) \
                and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(OMNIBUS_TEST_TIMEOUT))


def skip_or_fail(reason: str) -> None:
    """Skip locally; in CI (CI=true) a missing prerequisite is a failure, not a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI is missing a prerequisite: {reason}")
    pytest.skip(reason)


def fixed_secrets(lab: Lab) -> LabSecrets:
    """Deterministic secrets: every token is a counter, so golden files are stable."""
    counter = itertools.count(1)

    def token_hex(n: int) -> str:
        return f"{next(counter):02x}".rjust(2 * n, "a")[: 2 * n]

    def rsa_pem() -> str:
        return ("-----BEGIN RSA PRIVATE KEY-----\nFIXED-FOR-GOLDEN-TESTS\n"
                "-----END RSA PRIVATE KEY-----\n")

    return ensure_secrets(lab, None, token_hex, rsa_pem)


@pytest.fixture
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state folder; whatever a failing test left running is swept after it."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    yield home
    # By directory label: never another lab, not even one with the same name.
    # Every folder counts, manifest or not: a test may have broken its lab's files.
    root = state.labs_dir()
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if folder.is_dir():
            sweep({DIR_LABEL: str(folder.resolve())})


def refuse_swarm_beside_labs(in_swarm: Callable[[], bool],
                             running_labs: Callable[[], Sequence[str]]) -> None:
    """Before a test makes a swarm: refuse while labs run on the engine (skip locally,
    fail in CI, where nothing else runs and a running lab is a leftover).

    Making and leaving a swarm reprograms the engine's networking (``docker_gwbridge``,
    iptables), and a running lab lost its DNS that way (the app could not resolve
    ``gitaly1``). On an engine already in a swarm nothing is made or left: no refusal.
    """
    if in_swarm():
        return
    labs = running_labs()
    if labs:
        skip_or_fail(f"labs are running on this engine ({', '.join(labs)}): making and "
                     "leaving a swarm reprograms the engine's networking and breaks their "
                     "DNS; take them down (`lab down NAME`) or run the swarm tests when no "
                     "lab is up")
