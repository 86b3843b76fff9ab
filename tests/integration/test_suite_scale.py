"""Suites at scale on real sim labs: a mixed-era release matrix, evidence on failure.

Each test runs `lab run` under a private LAB_HOME (swept afterwards by the
``lab_home`` fixture), so a user's labs are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, skip_or_fail

from lab.engine import docker as dk

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
LAB_CMD = [sys.executable, "-c", "from lab.cli.main import main; main()"]
# Four config dialects: the guide's era (11.x), legacy gitaly keys, gitaly['configuration'],
# repositories_storages.
MATRIX = "11.11.8,15.9.8,17.11.7,19.3.0"


@pytest.fixture
def sim_image(lab_home: Path) -> str:
    try:
        dk.check_reachable()
    except Exception as exc:
        skip_or_fail(f"no reachable Docker Engine ({exc})")
    from lab.engine.images import build_images

    return build_images()


def lab_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAB_CMD, "run", *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def test_a_mixed_era_matrix_passes(sim_image: str, tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "shared-secrets-push-clone.yaml"
    res = lab_run(str(scenario), "--version", MATRIX, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert [(s["release"], s["status"]) for s in data["scenarios"]] == [
        (v, "passed") for v in MATRIX.split(",")]
    assert len({s["lab"] for s in data["scenarios"]}) == len(MATRIX.split(","))  # one per release


def test_collect_on_failure_bundles_the_failed_state_then_restores(
        sim_image: str, tmp_path: Path) -> None:
    # Wrong on purpose: the push is rejected (own secrets), but we claim it succeeds.
    broken = tmp_path / "wrong-claim.yaml"
    broken.write_text(textwrap.dedent("""\
        description: claims a push succeeds without shared secrets (it does not)
        lab: {topology: scaled}
        given:
          set: {nodes.gitaly1.secrets: own}
        steps:
          - create_project: p1
          - push: p1
        """))
    # The run puts a lab's base-state scenarios first (plan.by_state): this one changes an
    # inert key, so it runs after the broken one, on the same lab, with gitaly1's shared
    # secrets back.
    after = tmp_path / "after.yaml"
    after.write_text(textwrap.dedent("""\
        description: pushes with shared secrets after the failed scenario's own secrets
        lab: {topology: scaled}
        given:
          set: {nodes.gitlab.omnibus_config: "# after the failed scenario"}
        steps:
          - create_project: p2
          - push: p2
          - clone: p2
        """))
    res = lab_run(str(broken), str(after), "--collect-on-failure", "--json", "--junit",
                  "junit.xml", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    first, second = json.loads(res.stdout)["scenarios"]
    assert (first["name"], second["name"]) == ("wrong-claim", "after")
    assert first["status"] == "failed"
    bundle = Path(first["bundle"])
    assert bundle.parent == tmp_path / "lab-evidence"
    assert f"evidence bundle of the failed lab (lab collect): {bundle}" in res.stderr
    assert f'name="lab_collect_bundle" value="{bundle}"' in (tmp_path / "junit.xml").read_text()
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        hashes = tar.extractfile(next(n for n in names if n.endswith("secret-hashes.md")))
        assert hashes is not None
        rows = [ln for ln in hashes.read().decode().splitlines()
                if ln.startswith("| gitlab_shell.secret_token |")]
    # The failed state, inside the running containers too: gitaly1 had its own secrets.
    assert len(rows) == 2
    assert all(row.endswith("**NO** |") for row in rows), rows
    # ...and restored: the next scenario on the same lab passes with shared secrets.
    assert second["status"] == "passed", second
    assert second["lab"] == first["lab"]
