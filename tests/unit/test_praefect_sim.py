"""The sim's Praefect, the parts that need neither Docker nor the image's database client:
what a Praefect or database node's gitlab.rb starts, the config.toml it writes, replica
paths, texts, and a scenario that stops two nodes before starting them again."""

from __future__ import annotations

import importlib
import textwrap
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from conftest import ROOT
from test_scenario_steps import _run
from test_sim_config import node as sim_node

from lab.scenario.results import Outcome
from lab.scenario.steps import STEPS

GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture
def simconfig() -> ModuleType:
    return importlib.import_module("labsim.common.simconfig")


@pytest.fixture
def pure() -> ModuleType:
    return importlib.import_module("labsim.praefect.pure")


@pytest.mark.parametrize("release", ["13.3.0", "19.3.0"])
def test_praefect_node_starts_praefect_from_either_dialect(
        simconfig: ModuleType, tmp_path: Path, release: str) -> None:
    text = (GOLDEN / f"cluster-{release}" / "nodes" / "praefect" / "gitlab.rb").read_text()
    got = sim_node(simconfig, tmp_path, text, version=release)
    assert (got["gitaly"], got["app"], got["postgresql"]) == (None, None, None)
    p = got["praefect"]
    assert p["listen_addr"] == "0.0.0.0:2305"
    assert p["token"].endswith("01")  # the external token
    assert p["database"]["host"] == "praefect-db"
    assert p["database"]["dbname"] == "praefect_production"
    nodes = p["virtual_storages"]["default"]
    assert [n["storage"] for n in nodes] == ["gitaly1", "gitaly2", "gitaly3"]
    assert {n["token"][-2:] for n in nodes} == {"09"}  # the internal token
    assert nodes[0]["address"] == "tcp://gitaly1:8075"


def test_database_node_runs_only_postgresql(simconfig: ModuleType, tmp_path: Path) -> None:
    text = (GOLDEN / "cluster-19.3.0" / "nodes" / "praefect-db" / "gitlab.rb").read_text()
    got = sim_node(simconfig, tmp_path, text, version="19.3.0")
    # roles(['postgres_role']): any role turns off the default services it does not name.
    assert (got["gitaly"], got["app"], got["praefect"]) == (None, None, None)
    assert got["postgresql"]["listen_address"] == "0.0.0.0"
    assert got["postgresql"]["md5_auth_cidr_addresses"] == ["0.0.0.0/0"]
    postgres = importlib.import_module("labsim.praefect.postgres")
    hba = postgres.hba(got["postgresql"]).splitlines()
    assert hba[1:] == ["local all all trust", "host all all 127.0.0.1/32 trust",
                       "host all all 0.0.0.0/0 md5"]


def test_gitaly_role_node_still_runs_gitaly(simconfig: ModuleType, tmp_path: Path) -> None:
    text = (GOLDEN / "cluster-19.3.0" / "nodes" / "gitaly1" / "gitlab.rb").read_text()
    got = sim_node(simconfig, tmp_path, text, version="19.3.0")
    assert got["gitaly"]["storages"] == {"gitaly1": "/var/opt/gitlab/git-data/repositories"}
    assert (got["praefect"], got["postgresql"]) == (None, None)


def test_config_toml_is_praefects_own_structure(pure: ModuleType, tmp_path: Path) -> None:
    conf = {"listen_addr": "0.0.0.0:2305", "tls_listen_addr": "", "token": 'ex"t',
            "database": {"host": "praefect-db", "port": "5432", "dbname": "praefect_production"},
            "replication_factor": {"default": 2},
            "virtual_storages": {"default": [
                {"storage": "gitaly1", "address": "tcp://gitaly1:8075", "token": "int"}]}}
    path = tmp_path / "praefect" / "config.toml"
    pure.write_config(conf, str(path))
    data = tomllib.loads(path.read_text())
    assert data["auth"]["token"] == 'ex"t'
    assert data["database"]["port"] == 5432
    (vs,) = data["virtual_storage"]
    assert (vs["name"], vs["default_replication_factor"]) == ("default", 2)
    assert vs["node"] == [{"storage": "gitaly1", "address": "tcp://gitaly1:8075",
                           "token": "int"}]
    assert path.stat().st_mode & 0o777 == 0o640


def test_replica_paths_are_praefects(pure: ModuleType) -> None:
    # sha256("1") = 6b86b273...; sha256("42") = 73475cb4...
    assert pure.replica_path(1) == "@cluster/repositories/6b/86/1"
    assert pure.replica_path(42) == "@cluster/repositories/73/47/42"


def test_grpc_codes_read_as_go_names_them(pure: ModuleType) -> None:
    assert pure.go_code(grpc.StatusCode.PERMISSION_DENIED) == "PermissionDenied"
    assert pure.go_code(grpc.StatusCode.UNAVAILABLE) == "Unavailable"
    assert pure.go_code(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert pure.go_code(grpc.StatusCode.OK) == "OK"


def test_starting_one_of_two_stopped_nodes_does_not_wait_for_the_lab(tmp_path: Path) -> None:
    # The lab can't be ready while another node the scenario stopped is down; the start
    # that brings the last one back waits.
    result, (lab,) = _run(tmp_path, textwrap.dedent("""\
        lab: {topology: scaled}
        steps:
          - stop: gitaly1
          - stop: gitlab
          - start: gitaly1
          - start: gitlab
        """), dict(STEPS), _recording_verbs())
    assert result.outcome is Outcome.PASSED, result.message
    assert "gitlab still down" in result.steps[2].output
    assert "lab ready" in result.steps[3].output
    assert lab.calls.count(("wait_ready",)) == 1  # after the last start only


def _recording_verbs() -> dict[str, Any]:
    from lab.lifecycle.faults import VERBS, Verb
    return {name: Verb(v.name, lambda target: None, undo=v.undo, ready_after=v.ready_after)
            for name, v in VERBS.items()}
