"""SIGKILL, as a CI runner's timeout delivers it: whatever a killed `lab run` leaves, `lab gc`
finds and removes, folder included. Boots a sim lab, so marked slow."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hostile_docker import sim_image

from lab.engine import docker as dk
from lab.render.compose_file import LAB_LABEL
from lab.store import layout, state

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
__all__ = ["sim_image"]  # the fixture, used by name

LAB = [sys.executable, "-c", "from lab.cli.main import main; main()"]
# Boots a lab, then runs a step long enough to be killed in the middle of it.
SLOW = """\
lab: {topology: single}
steps:
  - exec: {node: gitlab, cmd: [sleep, "120"]}
"""


def leftovers(name: str) -> list[str]:
    labels = {LAB_LABEL: name}
    return ([f"container {c.name}" for c in dk.containers(labels)]
            + [f"network {n.name}" for n in dk.networks(labels)]
            + [f"volume {v.name}" for v in dk.volumes(labels)])


def test_a_sigkilled_lab_run_leaves_nothing_after_gc(lab_home: Path, sim_image: str,
                                                     tmp_path: Path) -> None:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(SLOW)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([*LAB, "run", str(scenario)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    name = ""
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            names = [n for n in state.lab_names() if n.startswith("sc-")]
            # Booted: its containers run and its `lab up` has finished (marker cleared).
            if names and leftovers(names[0]) and not (
                    state.lab_dir(names[0]) / layout.UP_MARKER).exists():
                name = names[0]
                break
            assert proc.poll() is None, "lab run ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("lab run never booted its lab")
        time.sleep(1)  # in the middle of the slow step
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # lab run and its children, as CI does
        proc.wait()
    assert leftovers(name)  # what the kill left
    listed = subprocess.run([*LAB, "list", "--json"], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert '"for": "run"' in listed.stdout
    gc = subprocess.run([*LAB, "gc"], capture_output=True, text=True, env=env, timeout=300,
                        check=False)
    assert gc.returncode == 0, gc.stderr
    assert "Traceback" not in gc.stdout + gc.stderr
    assert f"lab {name}: its `lab run` ended without removing it" in gc.stdout
    assert leftovers(name) == []
    assert not state.lab_dir(name).exists()
    assert state.lab_names() == []
