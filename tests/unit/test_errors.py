"""The exception tree: the class says the exit code, and the README's table says the same."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from lab.client.gitaly import GitalyError
from lab.client.gitlab import ApiError, ApiResponse
from lab.errors import (
    BadInput,
    DockerUnavailable,
    EngineError,
    EngineUnusable,
    ImageMissing,
    Incomplete,
    LabAlreadyUp,
    LabBusy,
    LabError,
    LabFailing,
    LabNotFound,
    LabOwnedElsewhere,
    NotReady,
    PortInUse,
    SpecError,
    ToolMissing,
)

ROOT = Path(__file__).resolve().parents[2]
BRANCHES = {BadInput: 2, EngineUnusable: 3, LabFailing: 4, ToolMissing: 5, Incomplete: 1}


def test_each_branch_has_its_own_exit_code() -> None:
    assert {cls.exit_code for cls in BRANCHES} == {1, 2, 3, 4, 5}
    for cls, code in BRANCHES.items():
        assert cls.exit_code == code, cls


@pytest.mark.parametrize(("error", "branch"), [
    (SpecError("bad", source="x.yaml", line=3, key="nodes"), BadInput),
    (LabNotFound("no lab"), BadInput),
    (PortInUse("port 8080 in use"), BadInput),
    (LabAlreadyUp("up"), BadInput),
    (LabOwnedElsewhere("another folder's"), BadInput),
    (LabBusy("in use by PID 1"), BadInput),
    (ToolMissing("ruby", "`ruby` is not installed"), ToolMissing),
    (EngineError(["docker", "ps"], 1, "boom"), EngineUnusable),
    (DockerUnavailable("not reachable"), EngineUnusable),
    (ImageMissing("no image"), EngineUnusable),
    (NotReady("gitaly1", "exited"), LabFailing),
    (ApiError(ApiResponse("GET", "/api/v4/user", 401, "401 Unauthorized")), LabFailing),
    (GitalyError("PERMISSION_DENIED", "permission denied"), LabFailing),
    (Incomplete("folder left"), Incomplete),
])
def test_each_error_sits_on_one_branch(error: LabError, branch: type[LabError]) -> None:
    assert isinstance(error, branch)
    assert error.exit_code == branch.exit_code
    others = [b for b in BRANCHES if b is not branch]
    assert not any(isinstance(error, b) for b in others), type(error)


def test_a_missing_tool_is_neither_bad_input_nor_the_engine() -> None:
    err = ToolMissing("mmdebstrap", "mmdebstrap is missing")
    assert err.tool == "mmdebstrap"
    assert not isinstance(err, BadInput | EngineUnusable)


def test_the_readme_table_lists_every_code() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = {int(m) for m in re.findall(r"^\| (\d) \|", table, re.MULTILINE)}
    assert codes == {0} | {cls.exit_code for cls in BRANCHES}
    for cls in BRANCHES:
        assert f"`{cls.__name__}`" in table, cls


def test_the_cli_exits_with_the_class_code(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main as cli_main

    for cls, code in BRANCHES.items():
        def boom(*_: object, _cls: type[LabError] = cls, **__: object) -> None:
            raise (_cls("tool", "x is not installed") if _cls is ToolMissing
                   else _cls("what went wrong"))
        monkeypatch.setattr(cli_main.cli, "main", boom)
        monkeypatch.setattr(sys, "argv", ["lab", "status"])
        with pytest.raises(SystemExit) as exited:
            cli_main.main()
        assert exited.value.code == code, cls
        err = capsys.readouterr().err
        assert "error:" in err
        assert "Traceback" not in err



def test_run_says_a_missing_program_is_a_missing_tool(tmp_path: Path) -> None:
    from lab.engine.run import run

    with pytest.raises(ToolMissing, match="`no-such-program-x1` is not installed") as err:
        run(["no-such-program-x1", "--version"])
    assert err.value.tool == "no-such-program-x1"
    # A missing working folder is no missing tool.
    with pytest.raises(EngineError, match="no such directory"):
        run(["true"], cwd=str(tmp_path / "gone"))


def test_building_images_without_mmdebstrap_is_a_missing_tool(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.engine import images

    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissing, match="apt-get install mmdebstrap") as err:
        images.build_base()
    assert err.value.tool == "mmdebstrap"


@pytest.mark.parametrize(("args", "said"), [
    (["--version", "abc"], "error: --version: 'abc' is not a GitLab version"),
    (["--version", "99.0.0"], "error: --version: GitLab 99.0.0 is newer than"),
])
def test_a_bad_option_value_names_the_option_once(args: list[str], said: str) -> None:
    """`lab render scaled --version abc` said "--version: version: ..."."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "lab", "render", "scaled", *args, "-o",
                           str(root / "nonexistent-never-written")], capture_output=True,
                          text=True, check=False, cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(said), proc.stderr


def test_an_option_as_source_is_not_followed_by_its_key_again() -> None:
    assert str(SpecError("bad", source="--name", key="name")) == "--name: bad"
    assert str(SpecError("bad", source="lab.yaml", line=3, key="name")) == "lab.yaml:3: name: bad"
    assert str(SpecError("bad", source="command line", key="nodes.x.tls")) == \
        "command line: nodes.x.tls: bad"
