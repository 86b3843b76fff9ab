"""The processes git starts for the sim's Gitaly (hooks, gitaly-ssh), run by a fork of
Gitaly that has their modules loaded (labsim.gitaly.git_children)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labsim.gitaly import git_child, git_children

ROOT = Path(__file__).resolve().parents[2]
# Gitaly's place: forks the server, whose one entry here shows what the run got, then
# lives until its stdin closes. The entry is swapped in before the fork, where Gitaly's
# own are loaded.
GITALY = '''
import os, sys
from labsim.gitaly import git_children

def show(argv):
    seen = [" ".join(argv), os.getcwd(), os.environ.get("FAKE_SEEN", ""), str(os.getppid()),
            sys.stdin.read().strip()]
    print("|".join(seen))
    print("to stderr", file=sys.stderr)
    return int(os.environ.get("FAKE_EXIT", "0"))

git_children.entries = lambda: {"pre-receive": show}
print(git_children.start(), flush=True)
sys.stdin.read()
'''


def start_gitaly(cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A stand-in Gitaly and the path its server listens on, once it does."""
    gitaly = subprocess.Popen([sys.executable, "-P", "-c", GITALY], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, cwd=cwd,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert gitaly.stdout is not None
    path = gitaly.stdout.readline().decode().strip()
    assert path == git_children.socket_path(gitaly.pid)
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the server never listened"
        time.sleep(0.02)
    return gitaly, path


def stop(gitaly: subprocess.Popen[bytes]) -> None:
    assert gitaly.stdin is not None
    gitaly.stdin.close()
    gitaly.wait(timeout=20)


@pytest.fixture
def gitaly(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A stand-in Gitaly's PID and its server's socket."""
    proc, path = start_gitaly(tmp_path)
    try:
        yield proc.pid, path
    finally:
        stop(proc)


def child(name: str, *args: str, env: dict[str, str], cwd: Path,
          stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``name`` run as git runs it (``python3 -S``, git's environment)."""
    return subprocess.run([sys.executable, "-P", "-S", "-m", "labsim.gitaly.git_child", name,
                           *args], input=stdin, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), **env}, cwd=cwd, timeout=30,
                          check=False)


def test_the_server_runs_it_on_the_callers_streams_folder_and_environment(
        gitaly: tuple[int, str], tmp_path: Path) -> None:
    pid, path = gitaly
    repo = tmp_path / "repo.git"
    repo.mkdir()
    done = child("pre-receive", "a", "b c", env={git_child.SOCKET_ENV: path,
                                                 "FAKE_SEEN": "seen", "FAKE_EXIT": "3"},
                 cwd=repo, stdin="old new refs/heads/main\n")
    argv, cwd, seen, parent, stdin = done.stdout.strip().split("|")
    assert (argv, cwd, seen, stdin) == ("a b c", str(repo), "seen", "old new refs/heads/main")
    # Run by a child of the server, itself Gitaly's child: not by the caller's process.
    stat = Path(f"/proc/{parent}/stat").read_text()
    assert int(stat.rsplit(")", 1)[1].split()[1]) == pid
    assert done.stderr == "to stderr\n"
    assert done.returncode == 3


def test_a_name_the_server_does_not_run_fails_there(gitaly: tuple[int, str],
                                                    tmp_path: Path) -> None:
    done = child("post-update", env={git_child.SOCKET_ENV: gitaly[1]}, cwd=tmp_path)
    assert done.returncode == 1
    assert "no such process ['post-update']" in done.stderr


def test_the_server_ends_with_gitaly_and_takes_its_socket_along(tmp_path: Path) -> None:
    proc, path = start_gitaly(tmp_path)
    stop(proc)
    deadline = time.monotonic() + 10
    while os.path.exists(path):
        assert time.monotonic() < deadline, "the server outlived Gitaly"
        time.sleep(0.1)


def test_without_a_server_it_runs_in_the_callers_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(git_child, "here", lambda name, args: ran.append((name, args)) or 4)
    monkeypatch.delenv(git_child.SOCKET_ENV, raising=False)
    assert git_child.main(["pre-receive", "x"]) == 4
    monkeypatch.setenv(git_child.SOCKET_ENV, str(tmp_path / "gone.sock"))
    assert git_child.main(["post-receive"]) == 4
    assert ran == [("pre-receive", ["x"]), ("post-receive", [])]
