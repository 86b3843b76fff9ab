"""Output for machines: piped output is neither wrapped nor cut, and carries no source paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab.cli import images as cli_images
from lab.cli.main import cli

LONG = "/very/long/state/folder/" + "x" * 150 + "/labs/scaled/.lab/admin-token"

PRINTS = f"""
from rich.table import Table
from lab.cli.common import console
console.print("  admin token:  {LONG}  (user root; header PRIVATE-TOKEN)")
table = Table()
table.add_column("ports")
table.add_row("127.0.0.1:32768->80/tcp, 127.0.0.1:32769->8075/tcp, 127.0.0.1:32770->9999/tcp")
console.print(table)
"""


def test_piped_output_is_not_wrapped_or_cut() -> None:
    env = {**os.environ, "COLUMNS": "80"}  # CI runners set it too: a pipe is still a pipe
    out = subprocess.run([sys.executable, "-c", PRINTS], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert f"  admin token:  {LONG}  (user root; header PRIVATE-TOKEN)\n" in out
    assert "127.0.0.1:32768->80/tcp, 127.0.0.1:32769->8075/tcp, 127.0.0.1:32770->9999/tcp" \
        in out
    assert "…" not in out


def test_images_build_progress_has_no_source_path(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    def build(force: bool, progress: object) -> str:
        assert callable(progress)
        progress("building the base image")
        return "gitlab-testlab/sim:abc"

    monkeypatch.setattr(cli_images, "build_images", build)
    result = CliRunner().invoke(cli, ["images", "build"])
    assert result.exit_code == 0, result.output
    assert "building the base image" in result.output
    assert ".py:" not in result.output


REPORTING = ["up", "down", "status", "list", "gc", "doctor", "collect", "run"]


@pytest.mark.parametrize("name", REPORTING)
def test_every_reporting_command_has_json(name: str) -> None:
    import click

    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert "--json" in [opt for p in command.params for opt in getattr(p, "opts", [])]


def test_json_outputs_carry_a_schema_version(tmp_path: Path) -> None:
    import json

    env = {"LAB_HOME": str(tmp_path / "home")}
    for args in (["list", "--json"], ["run", "--list", "--json"]):  # no Docker needed
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout)["schema_version"] == 1, args


def _completions(args: list[str], incomplete: str) -> list[str]:
    from click.shell_completion import BashComplete

    return [c.value for c in BashComplete(cli, {}, "lab", "_LAB_COMPLETE")
            .get_completions(args, incomplete)]


def test_completion_of_lab_node_and_scenario_names(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.spec.labspec import SpecRequest, resolve
    from lab.store import state
    from lab.store.lab_folder import LabFolder

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    for name, topology in (("case-1", "sharded"), ("case-2", "scaled")):
        folder = LabFolder(state.lab_dir(name))
        folder.save_spec(resolve(SpecRequest(topology=topology, name=name)))
    assert set(state.lab_names()) == {"case-1", "case-2"}
    assert _completions(["down"], "") == ["case-1", "case-2"]
    assert _completions(["status"], "case-2") == ["case-2"]
    assert _completions(["logs", "--lab", "case-1"], "gitaly") == ["gitaly1", "gitaly2"]
    assert _completions(["exec", "--lab", "case-2"], "") == ["gitlab", "gitaly1"]
    assert _completions(["run", "--lab"], "case") == ["case-1", "case-2"]
    assert _completions(["run"], "gitaly-o")[0] == "gitaly-own-secrets"
    # Two labs and no --lab: which lab's nodes is unknown, so nothing (never an error).
    assert _completions(["logs"], "") == []


def test_a_lab_name_defaults_to_the_only_lab_or_your_only_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.cli.lifecycle import pick_lab
    from lab.errors import LabNotFound
    from lab.spec.labspec import SpecRequest, resolve
    from lab.store import ownership, state
    from lab.store.lab_folder import LabFolder

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    lab = resolve(SpecRequest(topology="scaled"))
    with pytest.raises(LabNotFound, match="no labs"):
        pick_lab(None)
    LabFolder(state.lab_dir("mine")).save_spec(lab)
    assert pick_lab(None) == "mine"
    assert pick_lab("other") == "other"
    # A run's own lab beside it (kept, or left by a killed run): still yours.
    LabFolder(state.lab_dir("sc-scaled-sim-007f5c")).save_spec(lab)
    ownership.mark_made("sc-scaled-sim-007f5c", "a" * 16, ownership.FOR_KEPT)
    assert pick_lab(None) == "mine"
    LabFolder(state.lab_dir("case-2")).save_spec(lab)
    with pytest.raises(LabNotFound, match=r"several labs exist \(case-2, mine, sc-"):
        pick_lab(None)


def test_lab_list_says_whose_each_lab_is_and_which_gc_removes() -> None:
    from lab.cli.lifecycle import whose
    from lab.lifecycle.status import LabSummary
    from lab.store import ownership

    def summary(purpose: str, held_by: str = "") -> LabSummary:
        return LabSummary("x", Path("/x"), "sim", "19.3.0", "scaled", 3, 3, "up",
                          purpose=purpose, held_by=held_by)

    assert whose(summary(ownership.FOR_YOU)) == "yours"
    assert whose(summary(ownership.FOR_KEPT)) == "a run's, kept"
    assert whose(summary(ownership.FOR_RUN)) == "a run's, ended (lab gc removes it)"
    assert whose(summary(ownership.FOR_RUN, "`lab run` 42")) == "a run's: `lab run` 42"
    assert whose(summary(ownership.FOR_START)) == "a start's, ended (lab gc removes it)"
