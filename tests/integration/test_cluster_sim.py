"""Gitaly Cluster on the sim: `lab up cluster` is ready, the cluster scenarios pass on one
reused lab, Praefect's subcommands answer with their texts, and the legacy dialect (13.3)
runs too. docs/fidelity.md "Gitaly Cluster (Praefect): sources" says where each
expectation comes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import docker, lab_name
from test_lifecycle import engine, lab_cli, sim_image  # noqa: F401  (fixtures)

from lab.lifecycle.handle import attach
from lab.omnibus import praefect

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]
# Each runs on the default release's lab (cluster-database-stopped is pinned to it).
ON_ONE_LAB = ["cluster-push-clone", "cluster-gitaly-stopped", "cluster-external-token-mismatch",
              "cluster-storage-name-mismatch",
              "cluster-gitaly-own-secrets", "cluster-database-stopped"]


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
        # The database layer's psql is safe to run again: the role keeps its password (the
        # ping below still connects) and the database is not made twice.
        setup = running.exec("praefect-db", praefect.database_setup_cmd(
            running.rendered.secrets.praefect_db_password), check=False)
        assert (setup.returncode, praefect.database_made(setup.stdout)) == (0, False), \
            setup.stdout + setup.stderr
        assert running.exec("praefect", praefect.praefect_cmd("sql-ping"),
                            check=False).returncode == 0
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
        _check_list_storages_and_accept_dataloss(running)
    finally:
        lab_cli("down", name)


def test_the_legacy_dialect_and_per_repository_routing(lab_home: Path,
                                                       sim_image: str) -> None:  # noqa: F811
    # praefect['virtual_storages'] and praefect['database_*'] (13.3.0's keys).
    legacy = lab_cli("run", "--json", "--version", "13.3.0",
                     str(LIBRARY / "cluster-push-clone.yaml"))
    results = json.loads(legacy.stdout)["scenarios"]
    assert [r["status"] for r in results] == ["passed"], legacy.stdout[-4000:]
    # 14.0 routes per repository; RepositoryExists before a project's creation is answered
    # from Praefect's database (not the router's NotFound), so projects can be made.
    first = lab_cli("run", "--json", "--version", "14.0.0",
                    str(LIBRARY / "cluster-push-clone.yaml"))
    results = json.loads(first.stdout)["scenarios"]
    assert [r["status"] for r in results] == ["passed"], first.stdout[-4000:]


def _check_list_storages_and_accept_dataloss(running: Any) -> None:
    """check, list-storages and accept-dataloss on the default release's live cluster."""
    def run(*args: str) -> Any:
        return running.exec("praefect", praefect.praefect_cmd(*args), check=False, timeout=120)

    listed = run("list-storages")
    assert (listed.returncode, listed.stdout) == (0, (
        "VIRTUAL_STORAGE\tNODE   \tADDRESS            \n"
        "default        \tgitaly1\ttcp://gitaly1:8075\t\n"
        "default        \tgitaly2\ttcp://gitaly2:8075\t\n"
        "default        \tgitaly3\ttcp://gitaly3:8075\t\n")), listed.stderr
    assert run("list-storages", "-virtual-storage", "nope").stdout == \
        "No virtual storages named nope.\n"

    quiet = run("check", "-q")
    lines = quiet.stdout.splitlines()
    assert lines[:4] == ["Checking praefect migrations...Passed",
                         "Checking gitaly node connectivity & disk access...Passed",
                         "Checking database read/write...Passed",
                         "Checking unavailable repositories...Passed"], quiet.stdout
    # The sim's Gitaly has no ClockSynced and the lab no NTP server: the clock check fails,
    # and it is fatal (docs/fidelity.md).
    assert lines[4].startswith("Checking clock synchronization...Failed (fatal) error: ")
    assert lines[5:] == ["", "1 check(s) failed, at least one was fatal."]
    assert (quiet.returncode, quiet.stderr.split(" ", 2)[-1]) == (1, "checks failed\n")
    verbose = run("check")
    assert ("Checking database read/write - checks if praefect can write/read to and from "
            "the database [fatal]\nsuccessfully read from database\n"
            "successfully wrote to database\nPassed\n") in verbose.stdout
    assert verbose.stdout.count("SUCCESS: node configuration is consistent!") == 3

    unknown = run("accept-dataloss", "-virtual-storage", "nope", "-repository", "x",
                  "-authoritative-storage", "gitaly1")
    assert (unknown.returncode, unknown.stderr) == (1, (
        "set authoritative storage: rpc error: code = InvalidArgument desc = "
        'unknown virtual storage: "nope"\n'))
    missing = run("accept-dataloss", "-virtual-storage", "default")
    assert missing.returncode == 1
    assert missing.stderr.endswith(
        'Required flags "repository, authoritative-storage" not set\n'), missing.stderr
    # sql-migrate runs while a cluster lab boots: the subcommands that only use the
    # database load no gRPC.
    loaded = running.exec("praefect", ["python3", "-P", "-c", (
        "import sys, labsim.praefect.cli; "
        "print([m for m in ('grpc', 'lab.gitalypb.server_pb2') if m in sys.modules])")])
    assert loaded.stdout.strip() == "[]"
    path = running.exec("praefect", ["python3", "-P", "-c", (
        "from labsim.common import simconfig; from labsim.praefect.store import Store; "
        "c = simconfig.read_runtime()['praefect']; "
        "print(Store(c['database']).all_repositories()[0][1])")]).stdout.strip()
    before = _generations(running, path)
    accepted = run("accept-dataloss", "-virtual-storage", "default", "-repository", path,
                   "-authoritative-storage", "gitaly2")
    assert (accepted.returncode, accepted.stdout, accepted.stderr) == (0, "", "")
    after = _generations(running, path)
    # The storage's generation goes to the repository's next one (SetAuthoritativeReplica).
    assert after["gitaly2"] == max(before.values()) + 1, (before, after)


def _generations(running: Any, path: str) -> dict[str, int]:
    out = running.exec("praefect", ["python3", "-P", "-c", (
        "import json, sys; from labsim.common import simconfig; "
        "from labsim.praefect.store import Store; "
        "c = simconfig.read_runtime()['praefect']; "
        "print(json.dumps(Store(c['database']).generations('default', sys.argv[1])))"), path])
    return dict(json.loads(out.stdout))
