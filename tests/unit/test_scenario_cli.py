"""`lab run`: exit codes, bad files before any lab boots, JSON and JUnit output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab.cli import scenario as cli_scenario
from lab.cli.main import cli
from lab.errors import LabError
from lab.scenario.results import Outcome, ScenarioResult, StepResult

GOOD = "lab: {topology: scaled}\nsteps:\n  - api: /api/v4/user\n"


def test_bad_file_exits_2_with_file_line_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "  - pushh: p1\n")
    proc = subprocess.run([sys.executable, "-c", "from lab.cli.main import main; main()",
                           "run", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert f"{bad}:4: steps.1.pushh: unknown step 'pushh'" in proc.stderr.replace("\n", "")
    assert "Traceback" not in proc.stderr


def test_json_and_junit_and_exit_1_on_failure(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)

    def fake_run(planned: Any, **kw: Any) -> list[ScenarioResult]:
        step = StepResult("api(path=/api/v4/user)", 3, False, "HTTP 503 {}", 0.1,
                          "expected success, but the step failed")
        sc = planned[0].scenario
        return [ScenarioResult(sc.name, sc.source, Outcome.FAILED, 1.0,
                               (step,), "expected success, but the step failed")]

    monkeypatch.setattr(cli_scenario, "run_plan", fake_run)
    junit = tmp_path / "out" / "junit.xml"
    res = CliRunner().invoke(cli, ["run", str(tmp_path), "--json", "--junit", str(junit)])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False
    assert data["scenarios"][0]["name"] == "a"
    assert data["scenarios"][0]["steps"][0]["problem"] == "expected success, but the step failed"
    assert '<failure message="expected success, but the step failed">' in junit.read_text()


def test_results_are_left_in_each_labs_folder_for_collect(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "labs" / "sc-a" / ".lab").mkdir(parents=True)
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)

    def fake_run(planned: Any, **kw: Any) -> list[ScenarioResult]:
        # b's lab never booted (no folder): its result has nowhere to go, and no error.
        return [ScenarioResult("a", "a.yaml", Outcome.PASSED, 1.0, lab="sc-a"),
                ScenarioResult("b", "b.yaml", Outcome.ERROR, 1.0, message="boot failed",
                               lab="sc-b")]

    monkeypatch.setattr(cli_scenario, "run_plan", fake_run)
    res = CliRunner().invoke(cli, ["run", str(tmp_path)])
    assert res.exit_code == 1
    saved = json.loads((tmp_path / "home/labs/sc-a/.lab/last-run.json").read_text())
    assert [s["name"] for s in saved["scenarios"]] == ["a"]
    assert (tmp_path / "home/labs/sc-a/.lab/last-run.xml").is_file()
    assert not (tmp_path / "home/labs/sc-b").exists()


def test_versions_and_collect_on_failure_reach_the_runner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    (tmp_path / "a.yaml").write_text(GOOD)
    seen: dict[str, Any] = {}

    def fake_run(planned: Any, **kw: Any) -> list[ScenarioResult]:
        seen.update(kw, releases=[p.release for p in planned])
        return [ScenarioResult("a", "a.yaml", Outcome.PASSED, 1.0, release=str(p.release))
                for p in planned]

    monkeypatch.setattr(cli_scenario, "run_plan", fake_run)
    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.yaml"), "--version",
                                   "15.9.8,19.3.0", "--junit", str(tmp_path / "j.xml")])
    assert res.exit_code == 0, res.output
    assert seen["releases"] == ["15.9.8", "19.3.0"]
    assert seen["collect"] is None
    assert seen["jobs"] is None
    assert "scenarios x GitLab release" in res.stdout
    assert 'name="a[19.3.0]"' in (tmp_path / "j.xml").read_text()

    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.yaml"), "--collect-on-failure"])
    assert res.exit_code == 0, res.output
    assert callable(seen["collect"])
    assert seen["releases"] == [None]


def test_a_bad_version_list_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.yaml"), "--version", "15.9.8,16"])
    assert res.exit_code == 2
    assert "'16' is not a GitLab version" in res.output


def test_a_junit_path_that_cannot_be_written_exits_2_after_the_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    ran: list[int] = []

    def fake_run(planned: Any, **kw: Any) -> list[ScenarioResult]:
        ran.append(1)
        sc = planned[0].scenario
        return [ScenarioResult(sc.name, sc.source, Outcome.PASSED, 1.0, ())]

    monkeypatch.setattr(cli_scenario, "run_plan", fake_run)
    # A folder as --junit: refused before any lab boots.
    res = CliRunner().invoke(cli, ["run", str(tmp_path), "--junit", str(tmp_path)])
    assert res.exit_code == 2
    assert not ran
    # A file under a plain file: refused before any lab boots too.
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.yaml"), "--json",
                                   "--junit", str(blocker / "j.xml")])
    assert isinstance(res.exception, LabError)
    assert res.exception.exit_code == 2
    assert not ran
    assert f"cannot write the JUnit report {blocker / 'j.xml'}" in str(res.exception)

    # A write that fails only at the end (a full disk): the results are still shown.
    def full_disk(results: Any, path: Path, warnings: Any = ()) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_scenario, "write_junit", full_disk)
    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.yaml"), "--json",
                                   "--junit", str(tmp_path / "j.xml")])
    assert isinstance(res.exception, LabError)
    assert res.exception.exit_code == 2
    assert ran
    assert json.loads(res.stdout)["ok"] is True
    assert "No space left on device" in str(res.exception)


def test_sigterm_during_a_run_cleans_up_as_ctrl_c_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    (tmp_path / "a.yaml").write_text(GOOD)
    handlers: list[Any] = []

    def fake_run(planned: Any, **kw: Any) -> list[ScenarioResult]:
        handlers.append(signal.getsignal(signal.SIGTERM))
        return []

    monkeypatch.setattr(cli_scenario, "run_plan", fake_run)
    before = signal.getsignal(signal.SIGTERM)
    try:
        res = CliRunner().invoke(cli, ["run", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert res.exit_code == 0
    # Not the default (death, labs left up where `lab gc` does not look): Ctrl-C's path.
    assert callable(handlers[0])
    with pytest.raises(KeyboardInterrupt):
        handlers[0](signal.SIGTERM, None)


def test_list_shows_the_library_with_its_claims() -> None:
    from lab.resources import data_dir

    names = sorted(p.stem for p in data_dir("scenarios").glob("*.yaml"))
    res = CliRunner().invoke(cli, ["run", "--list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema_version"] == 1
    assert [s["name"] for s in data["scenarios"]] == names
    assert all(s["description"] and s["guide"] for s in data["scenarios"])
    res = CliRunner().invoke(cli, ["run", "--list"])
    assert "gitaly-own-secrets" in res.stdout
    assert "401" in res.stdout


def test_all_runs_the_whole_built_in_library(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.resources import data_dir

    seen: list[str] = []

    def fake_run(planned: Any, **kw: Any) -> list[ScenarioResult]:
        seen.extend(sorted({p.scenario.name for p in planned}))
        return []

    monkeypatch.setattr(cli_scenario, "run_plan", fake_run)
    res = CliRunner().invoke(cli, ["run", "--all"])
    assert res.exit_code == 0, res.output
    assert seen == sorted(p.stem for p in data_dir("scenarios").glob("*.yaml"))
    res = CliRunner().invoke(cli, ["run"])
    assert res.exit_code == 2
    assert "--all" in res.output
