"""What Omnibus writes back into a node's folder, and the toolkit's answers (no Docker).

The secrets merge and the ownership walk are pure; the sim's copy of reconfigure's
file handling (supervisor.py) is imported directly, as test_sim_config does.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lab.lifecycle.folder import foreign_entries
from lab.lifecycle.timeouts import WAITS, default_timeout
from lab.model.topology import Flavor
from lab.omnibus.release import DEFAULT_VERSION, Version
from lab.render.secrets import merge_written_back
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import node_paths, write_lab
from lab.support.collect import LOG_DIR, log_files_cmd, split_tails


def test_merge_keeps_what_reconfigure_added_and_renders_over_it() -> None:
    rendered = {"gitlab_shell": {"secret_token": "new"},
                "gitlab_rails": {"secret_key_base": "s"}}
    on_disk = {"gitlab_shell": {"secret_token": "old"},
               "gitlab_rails": {"secret_key_base": "old-s",
                                "active_record_encryption_primary_key": ["k"]},
               "gitlab_kas": {"api_secret_key": "kas"}}
    merged = merge_written_back(rendered, on_disk)
    assert merged["gitlab_shell"] == {"secret_token": "new"}
    assert merged["gitlab_rails"] == {"secret_key_base": "s",
                                      "active_record_encryption_primary_key": ["k"]}
    assert merged["gitlab_kas"] == {"api_secret_key": "kas"}
    assert merge_written_back(rendered, ["not", "an", "object"]) == rendered


def test_rerender_merges_with_the_file_on_disk(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="19.3.0"))
    out = tmp_path / "lab"
    write_lab(lab, out, image="unused")
    path = out / node_paths("gitlab").secrets
    data = json.loads(path.read_text())
    data["gitlab_rails"]["active_record_encryption_primary_key"] = ["kept"]
    data["registry"] = {"http_secret": "kept"}
    path.write_text(json.dumps(data))
    write_lab(lab, out, image="unused")
    again = json.loads(path.read_text())
    assert again["gitlab_rails"]["active_record_encryption_primary_key"] == ["kept"]
    assert again["registry"] == {"http_secret": "kept"}
    assert again["gitlab_shell"] == data["gitlab_shell"]
    # --regenerate means new secrets: nothing from before is merged in.
    write_lab(lab, out, image="unused", regenerate=True)
    assert "registry" not in json.loads(path.read_text())


def test_foreign_entries_are_found_below_nodes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nodes" / "gitlab").mkdir(parents=True)
    key = tmp_path / "nodes" / "gitlab" / "ssh_host_rsa_key"
    key.write_text("x")
    monkeypatch.setattr(os, "getuid", lambda: 4242)  # everything here is "someone else's"
    found = foreign_entries(tmp_path)
    assert key in found
    assert tmp_path / "nodes" in found
    monkeypatch.setattr(os, "getuid", lambda: 0)  # root can re-render anything
    assert foreign_entries(tmp_path) == []


def test_each_flavour_has_its_own_timeout() -> None:
    assert WAITS[Flavor.OMNIBUS].lab_ready >= 1200
    omni = resolve(SpecRequest(topology="scaled", flavor="omnibus"))
    assert default_timeout(omni) == WAITS[Flavor.OMNIBUS].lab_ready
    from lab.scenario import pool

    assert pool.READY_TIMEOUT is None  # a scenario's waits last as long as `lab up`'s


def test_rotated_gz_logs_are_read_as_text(tmp_path: Path) -> None:
    logs = tmp_path / "log"
    (logs / "nginx").mkdir(parents=True)
    (logs / "nginx" / "current").write_text("a\nb\n")
    with gzip.open(logs / "nginx" / "gitlab_access.log.2.gz", "wt") as fh:
        fh.write("old 1\nold 2\n")
    cmd = log_files_cmd()
    assert cmd[3] == LOG_DIR
    cmd[3] = str(logs)  # the same script against a folder here
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    tails = {k.removeprefix(str(logs) + "/"): v for k, v in split_tails(
        out.replace(str(logs), LOG_DIR)).items()}
    assert tails == {"nginx/current": "a\nb\n", "nginx/gitlab_access.log.2": "old 1\nold 2\n"}


# --- the sim's copy of what reconfigure does to /etc/gitlab -----------------------------

@pytest.fixture(scope="module")
def supervisor() -> ModuleType:
    return importlib.import_module("labsim.node.supervisor")


def test_sim_manage_etc_is_read_from_gitlab_rb(supervisor: ModuleType) -> None:
    assert supervisor.manage_etc({})
    assert not supervisor.manage_etc({"manage_storage_directories": {"manage_etc": False}})
    assert supervisor.manage_etc({"manage_storage_directories": {"enable": False}})


def test_sim_rewrites_secrets_per_release(supervisor: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "gitlab-secrets.json"
    mine: dict[str, Any] = {"gitlab_shell": {"secret_token": "s"}, "custom": {"x": 1}}
    new = supervisor.rewrite_secrets(mine, Version.parse("19.3.0"), str(path))
    assert json.loads(path.read_text()) == new
    assert path.stat().st_mode & 0o777 == 0o600
    assert new["gitlab_shell"] == {"secret_token": "s"}  # what was there wins
    assert new["custom"] == {"x": 1}
    assert new["gitaly"]["gitlab_secret"] == "s"  # 17.5+: defaults to the shell secret
    assert len(new["gitlab_rails"]["active_record_encryption_primary_key"][0]) == 32
    assert "ci_jwt_signing_key" not in new["gitlab_rails"]
    assert {"gitlab_kas", "registry", "postgresql", "mailroom", "letsencrypt"} <= set(new)
    old = supervisor.rewrite_secrets({}, Version.parse("16.11.0"), str(path))
    assert "active_record_encryption_primary_key" not in old["gitlab_rails"]
    assert "ci_jwt_signing_key" in old["gitlab_rails"]
    assert "gitaly" not in old
    guide_era = supervisor.rewrite_secrets({}, Version.parse("12.10.14"), str(path))
    assert "gitlab_kas" not in guide_era  # attribute('gitlab_kas') came in 13.5
    assert "gitlab_kas" in old


def test_sim_release_comes_from_the_lab_else_the_release_file(
        supervisor: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "RELEASE"
    monkeypatch.setattr(supervisor, "RELEASE", str(release))
    monkeypatch.delenv(supervisor.simconfig.VERSION_ENV, raising=False)
    assert str(supervisor.release()) == DEFAULT_VERSION
    release.write_text("RELEASE_PACKAGE=gitlab-testlab-sim\nRELEASE_VERSION=14.0.12-ce.0\n")
    assert str(supervisor.release()) == "14.0.12"
    monkeypatch.setenv(supervisor.simconfig.VERSION_ENV, "17.11.7")  # what the lab renders
    assert str(supervisor.release()) == "17.11.7"
