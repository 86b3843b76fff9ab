"""The lab folder's Compose files on the real engine: the user's override is honoured."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import skip_or_fail

from lab import lifecycle
from lab.engine import docker as dk
from lab.render.labdir import RenderedLab
from lab.spec import SpecRequest, resolve

OVERRIDE = """\
services:
  gitaly1:
    environment:
      LAB_OVERRIDE_PROBE: "from the override"
    labels:
      org.example.owner: support
"""


@pytest.fixture
def sim_image() -> str:
    try:
        dk.client()
    except Exception as exc:
        skip_or_fail(f"no reachable Docker Engine ({exc})")
    from lab.engine.images import build_images

    return build_images()


@pytest.mark.docker
@pytest.mark.sim
@pytest.mark.slow
def test_up_merges_the_override_and_status_draws_the_lab(lab_home: Path, sim_image: str) -> None:
    def add_override(rendered: RenderedLab) -> None:
        (rendered.path / "docker-compose.override.yml").write_text(OVERRIDE)

    name = f"ovr-{uuid.uuid4().hex[:6]}"
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    with lifecycle.up(lab, name=name, timeout=180, prepare=add_override) as running:
        attrs = running.container("gitaly1").attrs
        assert "LAB_OVERRIDE_PROBE=from the override" in attrs["Config"]["Env"]
        assert attrs["Config"]["Labels"]["org.example.owner"] == "support"
        # The rendered labels are still there: down and gc still find the container.
        assert attrs["Config"]["Labels"]["io.gitlab-testlab.lab"] == name
        out = subprocess.run([sys.executable, "-c", "from lab.cli.main import main; main()",
                              "status", name, "--diagram"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert "```mermaid\nflowchart LR\n" in out.stdout
        assert "gRPC tcp://gitaly1:8075 (default, storage1)" in out.stdout
        assert "MISMATCH" not in out.stdout
