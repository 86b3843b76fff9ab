"""Helpers for the sim integration tests: Docker probe, image, labelled cleanup."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable

import pytest
from conftest import skip_or_fail

from lab.engine.images import build_images
from lab.lifecycle.gc import sweep as sweep_labels
from lab.render.compose_file import LAB_LABEL


def docker(*args: str, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def require_docker() -> None:
    try:
        ok = docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        skip_or_fail("no reachable Docker Engine")


def sim_image() -> str:
    require_docker()
    return build_images()


def lab_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sweep(name: str) -> None:
    """Remove every container, network and volume labelled with this lab name."""
    sweep_labels({LAB_LABEL: name})


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
