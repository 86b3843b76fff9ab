"""Hostile use of a shared engine: one lab name from two state folders, two starts at once,
`lab down` of a lab another process holds. Boots sim labs, so marked slow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import skip_or_fail

from lab.engine import docker as dk
from lab.render.compose_file import LAB_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]

LAB = [sys.executable, "-c", "from lab.cli.main import main; main()"]


def lab_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAB, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LAB_HOME": str(home), "COLUMNS": "250", **env})


def container_ids(name: str) -> set[str]:
    return {c.id for c in dk.containers({LAB_LABEL: name})}


@pytest.fixture
def homes(tmp_path: Path, sim_image: str) -> Iterator[tuple[Path, Path]]:
    a, b = tmp_path / "a", tmp_path / "b"
    yield a, b
    for home in (a, b):  # whatever a failed assertion left behind
        for folder in sorted((home / "labs").glob("*/manifest.json")):
            lab_cli(home, "down", folder.parent.name, "--purge")


@pytest.fixture
def sim_image() -> str:
    try:
        dk.check_reachable()
    except Exception as exc:
        skip_or_fail(f"no reachable Docker Engine ({exc})")
    from lab.engine.images import build_images

    return build_images()


def test_one_name_two_state_folders(homes: tuple[Path, Path]) -> None:
    a, b = homes
    name = f"same-{uuid.uuid4().hex[:6]}"
    first = lab_cli(a, "up", "single", "--name", name, "--timeout", "240")
    assert first.returncode == 0, first.stderr
    before = container_ids(name)
    assert before

    second = lab_cli(b, "up", "single", "--name", name)
    assert second.returncode == 2, second.stderr
    text = " ".join(second.stderr.split())
    assert str(a / "labs" / name) in text
    assert "Nothing was touched" in text
    assert "Traceback" not in text
    assert container_ids(name) == before  # not replaced
    assert not (b / "labs" / name).exists()

    # B can neither stop nor sweep A's lab.
    assert lab_cli(b, "down", name).returncode == 2
    gc = lab_cli(b, "gc")
    assert gc.returncode == 0
    assert name not in gc.stdout
    assert container_ids(name) == before

    # A `lab run` (here: a process holding the lab's claim) keeps `lab down` off it.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lab.store.state import LabClaim; "
         "assert LabClaim(sys.argv[1]).acquire(wait=False); print('held', flush=True); "
         "time.sleep(120)", name], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "LAB_HOME": str(a)})
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        down = lab_cli(a, "down", name)
        assert down.returncode == 2
        assert f"PID {holder.pid}" in " ".join(down.stderr.split())
        assert container_ids(name) == before
    finally:
        holder.kill()
        holder.wait()
    down = lab_cli(a, "down", name, "--purge")
    assert down.returncode == 0, down.stderr
    assert container_ids(name) == set()


def test_two_starts_of_one_name_at_once(homes: tuple[Path, Path]) -> None:
    a, _ = homes
    name = f"twice-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "LAB_HOME": str(a)}
    first = subprocess.Popen([*LAB, "up", "single", "--name", name, "--timeout", "240"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lock = a / "labs" / f".{name}.start"
        deadline = time.monotonic() + 60
        while not lock.is_file() or not lock.read_text().strip():
            assert time.monotonic() < deadline, "the first start never took its lock"
            assert first.poll() is None
            time.sleep(0.05)
        second = lab_cli(a, "up", "single", "--name", name)
        assert second.returncode == 2
        assert f"a start of lab '{name}' is in progress (PID {first.pid})" in \
            " ".join(second.stderr.split())
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert lab_cli(a, "down", name, "--purge").returncode == 0


def test_a_missing_tool_is_not_an_engine_failure(tmp_path: Path, sim_image: str) -> None:
    """With Docker up and the image there, a missing Compose tool is its own exit code
    (5), said before anything starts; Docker unreachable stays 3, bad input 2."""
    name = f"notool-{uuid.uuid4().hex[:6]}"
    res = lab_cli(tmp_path, "up", "single", "--name", name,
                  LAB_COMPOSE=str(tmp_path / "no-such-compose"))
    text = " ".join(res.stderr.split())
    assert res.returncode == 5, res.stderr
    assert "no Docker Compose tool found" in text
    assert "Traceback" not in text
    assert container_ids(name) == set()
    engine = lab_cli(tmp_path, "up", "single", "--name", name,
                     DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert engine.returncode == 3, engine.stderr
    bad = lab_cli(tmp_path, "up", "single", "--name", "Not A Name")
    assert bad.returncode == 2, bad.stderr
    assert container_ids(name) == set()


def test_a_failed_reconfigure_quoting_a_password_shows_no_password(
        tmp_path: Path, sim_image: str) -> None:
    """omnibus_config with a syntax error on a secret's line: the node's reconfigure
    fails and Ruby quotes the line (without its key); `lab up` prints the log tail. The
    password was in that output twice (exit 4)."""
    password = "Hunter2-" + uuid.uuid4().hex[:12]
    name = f"leak-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "acme.yaml"
    spec.write_text(f"name: {name}\ntopology: single\nnodes:\n  gitlab:\n    omnibus_config: |\n"
                    f"      gitlab_rails['db_password'] = '{password}' oops(\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "sentinel").write_text("x\n")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in ws.iterdir())
    try:
        res = subprocess.run([*LAB, "up", "-f", str(spec), "--timeout", "120"], cwd=ws,
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "LAB_HOME": str(tmp_path / "home"),
                                  "COLUMNS": "250"})
        text = res.stdout + res.stderr
        assert res.returncode == 4, text
        assert "syntax error" in text  # the log tail is there ...
        assert "[REDACTED]" in text
        assert password not in text  # ... without the password
        assert "Traceback" not in text
        assert sorted((p.name, p.stat().st_mtime_ns) for p in ws.iterdir()) == before
        assert container_ids(name) == set()  # a failed start takes its lab down
    finally:
        lab_cli(tmp_path / "home", "down", name, "--purge")
