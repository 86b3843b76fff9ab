"""Gitaly Cluster on the sim: `lab up cluster` is ready, the cluster scenarios pass on one
reused lab, Praefect's subcommands answer with their texts, and the legacy dialect (13.3)
runs too. docs/fidelity.md "Gitaly Cluster (Praefect): sources" says where each
expectation comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_helpers import docker, lab_name
from test_lifecycle import engine, lab_cli, sim_image  # noqa: F401  (fixtures)

from lab.lifecycle.handle import attach
from lab.omnibus import praefect

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
# Each runs on the default release's lab; cluster-database-stopped pins its own release.
ON_ONE_LAB = ["cluster-push-clone", "cluster-gitaly-stopped", "cluster-external-token-mismatch",
              "cluster-storage-name-mismatch",
              "cluster-gitaly-own-secrets"]


def test_sim_image_with_the_database_stays_under_250_mb(sim_image: str) -> None:  # noqa: F811
    size = int(docker("image", "inspect", "-f", "{{.Size}}", sim_image).stdout.strip())
    assert size < 250 * 10**6, size


def test_cluster_is_ready_and_its_scenarios_pass_on_one_lab(
        lab_home: Path, sim_image: str) -> None:  # noqa: F811
    name = lab_name("cluster")
    up = lab_cli("up", "cluster", "--flavor", "sim", "--name", name, "--timeout", "240")
    assert up.returncode == 0, up.stderr
    try:
        running = attach(name)
        ping = running.exec("praefect", praefect.praefect_cmd("sql-ping"), check=False)
        assert (ping.returncode, ping.stdout) == (0, "praefect sql-ping: OK\n"), ping.stderr
        again = running.exec("praefect", praefect.praefect_cmd("sql-migrate"), check=False)
        assert again.stdout == "praefect sql-migrate: all migrations are up\n", again.stderr
        dial = running.exec("praefect", praefect.praefect_cmd("dial-nodes"), check=False)
        assert dial.returncode == 0, dial.stdout + dial.stderr
        assert dial.stdout.count("SUCCESS: node configuration is consistent!") == 3

        ran = lab_cli("run", "--lab", name, "--json",
                      *(str(LIBRARY / f"{s}.yaml") for s in ON_ONE_LAB))
        results = json.loads(ran.stdout)["scenarios"]
        assert {r["name"]: r["status"] for r in results} == \
            {s: "passed" for s in ON_ONE_LAB}, ran.stdout[-4000:]

        # Every repository made above is on every node, up to date: nothing to report.
        loss = running.exec("praefect", praefect.praefect_cmd("dataloss"), check=False)
        assert loss.stdout == "Virtual storage: default\n  All repositories are available!\n"
    finally:
        lab_cli("down", name)


def test_database_stopped_and_the_legacy_dialect(lab_home: Path,
                                                 sim_image: str) -> None:  # noqa: F811
    ran = lab_cli("run", "--json", str(LIBRARY / "cluster-database-stopped.yaml"))
    results = json.loads(ran.stdout)["scenarios"]
    assert [r["status"] for r in results] == ["passed"], ran.stdout[-4000:]
    # praefect['virtual_storages'] and praefect['database_*'] (13.3.0's keys).
    legacy = lab_cli("run", "--json", "--version", "13.3.0",
                     str(LIBRARY / "cluster-push-clone.yaml"))
    results = json.loads(legacy.stdout)["scenarios"]
    assert [r["status"] for r in results] == ["passed"], legacy.stdout[-4000:]
