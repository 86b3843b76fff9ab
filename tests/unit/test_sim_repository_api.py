"""The sim's repository REST routes and its Gitaly services in one process, no Docker.

The sim Gitaly (unix socket, token auth, real git, stub hooks) and the sim app's HTTP
handler run in threads; python-gitlab and plain requests check GitLab's shapes,
status codes and pagination headers, and the answers when Gitaly refuses or is gone.
"""

from __future__ import annotations

import importlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import gitlab
import pytest
import requests

TOKEN = "gitaly-token-0123456789"
ADMIN = "admin-token-0123456789"
HOOK = """#!/bin/sh
cat >/dev/null
if [ -f "{deny}" ]; then echo "GitLab: $(cat "{deny}")" >&2; exit 1; fi
"""


def _sim_modules() -> dict[str, ModuleType]:
    """The sim's modules this test drives, by their short names."""
    return {name.rpartition(".")[2]: importlib.import_module(f"labsim.{name}")
            for name in ("common.simconfig", "gitaly.gitaly_client", "gitaly.gitaly_server",
                         "web.app_server")}


class Sim:
    def __init__(self, tmp: Path) -> None:
        mods = _sim_modules()
        self.mods = mods
        self.log_dir = mods["simconfig"].LOG_DIR
        mods["simconfig"].LOG_DIR = str(tmp / "log")
        hooks = tmp / "hooks"
        hooks.mkdir()
        self.deny = tmp / "deny"
        for name in ("pre-receive", "post-receive"):
            (hooks / name).write_text(HOOK.format(deny=self.deny if name == "pre-receive"
                                                  else tmp / "never"))
            (hooks / name).chmod(0o755)
        mods["gitaly_server"].HOOKS_DIR = str(hooks)
        self.socket = tmp / "gitaly.sock"
        for folder in ("s0", "s1"):  # made by Omnibus' reconfigure, never by Gitaly
            (tmp / folder).mkdir()
        self.gitaly = mods["gitaly_server"].serve({
            "token": TOKEN, "storages": {"default": str(tmp / "s0"), "storage1": str(tmp / "s1")},
            "socket_path": str(self.socket), "listen_addr": "", "tls_listen_addr": ""})
        app = mods["app_server"]
        handler = type("Handler", (app.Handler,), {})
        handler.app = {"external_url": "http://gitlab", "monitoring_whitelist": [],
                       "shell_secret": "x"}
        self.handler = handler
        self.use_token(TOKEN)
        handler.projects = app.Projects(str(tmp / "projects.json"))
        (tmp / "tokens.json").write_text(json.dumps({"tokens": [{"token": ADMIN}]}))
        handler.tokens = app.Tokens(str(tmp / "tokens.json"))
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default) per test.
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def use_token(self, token: str) -> None:
        storages = {name: {"address": f"unix:{self.socket}", "token": token}
                    for name in ("default", "storage1")}
        self.handler.storages = self.mods["gitaly_client"].storages({"storages": storages})

    def client(self) -> gitlab.Gitlab:
        return gitlab.Gitlab(self.url, private_token=ADMIN, keep_base_url=True)

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}/api/v4/{path}", params=params,
                            headers={"PRIVATE-TOKEN": ADMIN}, timeout=10)

    def close(self) -> None:
        self.mods["simconfig"].LOG_DIR = self.log_dir
        self.http.shutdown()
        self.http.server_close()
        self.gitaly.stop(0).wait()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    running = Sim(tmp_path)
    try:
        yield running
    finally:
        running.close()


def _project(sim: Sim, files: int = 0) -> Any:
    project = sim.client().projects.create({"name": "demo", "repository_storage": "storage1"})
    for i in range(files):
        project.files.create({"file_path": f"f{i:02}.txt", "branch": "main",
                              "content": f"{i}\n", "commit_message": f"file {i}"})
    return project


def test_files_round_trip_with_gitlab_shapes(sim: Sim) -> None:
    project = _project(sim)
    created = sim.client().http_post(
        f"/projects/{project.id}/repository/files/docs%2Fa.md",
        post_data={"branch": "main", "content": "aGk=", "encoding": "base64",
                   "commit_message": "Add a"})
    assert created == {"file_path": "docs/a.md", "branch": "main"}
    got = sim.get(f"projects/{project.id}/repository/files/docs%2Fa.md", ref="main")
    body = got.json()
    assert got.status_code == 200
    assert set(body) == {"file_name", "file_path", "size", "encoding", "content",
                         "content_sha256", "ref", "blob_id", "commit_id", "last_commit_id",
                         "execute_filemode"}
    assert (body["file_name"], body["content"], body["size"]) == ("a.md", "aGk=", 2)
    assert got.headers["X-Gitlab-Blob-Id"] == body["blob_id"]
    missing_ref = sim.get(f"projects/{project.id}/repository/files/docs%2Fa.md")
    assert (missing_ref.status_code, missing_ref.json()) == (400, {"error": "ref is missing"})
    with pytest.raises(gitlab.GitlabCreateError) as exists:
        project.files.create({"file_path": "docs/a.md", "branch": "main", "content": "x",
                              "commit_message": "again"})
    assert (exists.value.response_code, exists.value.error_message) == (
        400, "A file with this name already exists")
    project.files.delete("docs/a.md", branch="main", commit_message="Remove a")
    gone = sim.get(f"projects/{project.id}/repository/files/docs%2Fa.md", ref="main")
    assert (gone.status_code, gone.json()) == (404, {"message": "404 File Not Found"})
    with pytest.raises(gitlab.GitlabCreateError) as no_branch:
        project.files.create({"file_path": "b.md", "branch": "nope", "content": "x",
                              "commit_message": "b"})
    assert no_branch.value.error_message == (
        "You can only create or edit files when you are on a branch")


def test_pagination_headers_as_gitlab_sends_them(sim: Sim) -> None:
    project = _project(sim, files=5)
    tree = sim.get(f"projects/{project.id}/repository/tree", per_page=2, page=2)
    assert [e["name"] for e in tree.json()] == ["f02.txt", "f03.txt"]
    headers = tree.headers
    assert (headers["X-Total"], headers["X-Total-Pages"], headers["X-Page"],
            headers["X-Per-Page"], headers["X-Next-Page"], headers["X-Prev-Page"]) == (
        "5", "3", "2", "2", "3", "1")
    base = f"http://gitlab/api/v4/projects/{project.id}/repository/tree"
    assert headers["Link"] == ", ".join([
        f'<{base}?id={project.id}&page=1&per_page=2>; rel="prev"',
        f'<{base}?id={project.id}&page=3&per_page=2>; rel="next"',
        f'<{base}?id={project.id}&page=1&per_page=2>; rel="first"',
        f'<{base}?id={project.id}&page=3&per_page=2>; rel="last"'])
    # Commits: no totals, and a full page always announces a next one (commits.rb).
    commits = sim.get(f"projects/{project.id}/repository/commits", per_page=5)
    assert "X-Total" not in commits.headers
    assert commits.headers["X-Next-Page"] == "2"
    assert 'rel="last"' not in commits.headers["Link"]
    assert [c.title for c in project.commits.list(get_all=True, per_page=2)] == [
        f"file {i}" for i in range(4, -1, -1)]


def test_branches_tags_and_commit_actions(sim: Sim) -> None:
    project = _project(sim, files=1)
    commit = project.commits.create({"branch": "topic", "start_branch": "main",
                                     "commit_message": "Move and add", "actions": [
                                         {"action": "move", "file_path": "g.txt",
                                          "previous_path": "f00.txt"},
                                         {"action": "create", "file_path": "h.txt",
                                          "content": "h\n"}]})
    assert commit.parent_ids == [project.commits.get("main").id]
    assert project.files.raw("g.txt", ref="topic") == b"0\n"
    branches = {b.name: b for b in project.branches.list(get_all=True)}
    assert (branches["main"].protected, branches["main"].default) == (True, True)
    assert (branches["topic"].protected, branches["topic"].merged) == (False, False)
    project.branches.create({"branch": "old", "ref": "main"})
    project.files.create({"file_path": "new.txt", "branch": "main", "content": "n",
                          "commit_message": "ahead"})
    assert project.branches.get("old").merged is True
    with pytest.raises(gitlab.GitlabCreateError) as bad_ref:
        project.branches.create({"branch": "x", "ref": "no-such-ref"})
    assert bad_ref.value.error_message == "Invalid reference name: no-such-ref"
    tag = project.tags.create({"tag_name": "v1", "ref": "topic", "message": "One"})
    assert (tag.message, tag.commit["id"], tag.created_at is not None) == (
        "One", commit.id, True)
    lightweight = project.tags.create({"tag_name": "v0", "ref": "main"})
    assert (lightweight.message, lightweight.created_at) == ("", None)
    project.tags.delete("v0")
    assert [t.name for t in project.tags.list(get_all=True)] == ["v1"]
    project.branches.delete("topic")
    with pytest.raises(gitlab.GitlabGetError):
        project.branches.get("topic")


def test_hook_refusal_is_the_api_message(sim: Sim) -> None:
    project = _project(sim, files=1)
    sim.deny.write_text("You are not allowed to push code to this project.")
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        project.files.create({"file_path": "x.txt", "branch": "main", "content": "x",
                              "commit_message": "x"})
    assert (refused.value.response_code, refused.value.error_message) == (
        400, "You are not allowed to push code to this project.")


def test_gitaly_failures_answer_as_gitlab(sim: Sim) -> None:
    project = _project(sim, files=1)
    sim.use_token("not-the-token")
    read = sim.get(f"projects/{project.id}/repository/files/f00.txt", ref="main")
    assert (read.status_code, read.json()) == (500, {"message": "500 Internal Server Error"})
    assert sim.get(f"projects/{project.id}/repository/branches").status_code == 500
    with pytest.raises(gitlab.GitlabCreateError) as write:
        project.files.create({"file_path": "x.txt", "branch": "main", "content": "x",
                              "commit_message": "x"})
    assert (write.value.response_code, write.value.error_message) == (
        400, "7:permission denied.")
    log = (Path(sim.mods["simconfig"].LOG_DIR) / "puma" / "current").read_text()
    assert "7:permission denied" in log


def test_repository_storage_move(sim: Sim, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The target Gitaly runs labsim.gitaly.gitaly_ssh (git's ext:: transport) as a subprocess.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    project = sim.client().projects.create({"name": "mover"})
    project.files.create({"file_path": "a.txt", "branch": "main", "content": "a\n",
                          "commit_message": "a"})
    disk_path = sim.handler.projects.find(str(project.id))["disk_path"]
    project.repository_storage = "storage1"
    project.save()
    # GitLab answers at once and moves in the background (a storage move worker).
    assert project.repository_storage == "default"
    deadline = time.monotonic() + 20
    while sim.client().projects.get(project.id).repository_storage != "storage1":
        assert time.monotonic() < deadline, "the move did not finish"
        time.sleep(0.1)
    assert project.files.raw("a.txt", ref="main") == b"a\n"
    assert (tmp_path / "s1" / disk_path / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (tmp_path / "s0" / disk_path).exists()


def test_users(sim: Sim) -> None:
    gl = sim.client()
    gl.auth()
    assert gl.user is not None
    assert (gl.user.username, gl.user.is_admin) == ("root", True)
    assert [u.username for u in gl.users.list(get_all=True)] == ["root"]
    assert gl.users.list(username="nobody") == []
    assert gl.users.get(1).name == "Administrator"
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gl.users.get(2)
    assert (missing.value.response_code, missing.value.error_message) == (
        404, "404 User Not Found")


def test_an_unexpected_exception_answers_as_grapes_catch_all(sim: Sim,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """GitLab's rescue_from :all: the plain 500 body; the exception only in the log."""
    def broken() -> list[Any]:
        raise KeyError("sim-bug")

    monkeypatch.setattr(sim.handler.projects, "all", broken)
    answer = sim.get("projects")
    assert (answer.status_code, answer.json()) == (500, {"message": "500 Internal Server Error"})
    log = (Path(sim.mods["simconfig"].LOG_DIR) / "puma" / "current").read_text()
    assert "KeyError: 'sim-bug'" in log


def test_the_web_server_leaves_its_loop_at_its_sigterm_without_polling_for_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A reconfigure that restarts the web server waits for the old one to end, and
    socketserver's loop notices a shutdown() only between two polls (0.5 s by default: a
    quarter of a second per restart on average, measured in `lab run`'s applies; a 20 ms
    poll made it wake 50 times a second while idle). SIGTERM's handler leaves the loop
    itself, at once."""
    app = _sim_modules()["app_server"]
    polls: list[float] = []
    handlers: dict[int, Any] = {}

    class Server:
        daemon_threads = False

        def __init__(self, address: tuple[str, int], handler: type) -> None:
            self.address = address

        def serve_forever(self, poll_interval: float = 0.5) -> None:
            polls.append(poll_interval)
            handlers[signal.SIGTERM](signal.SIGTERM, None)  # the signal comes while serving
            raise AssertionError("still serving after SIGTERM")

    monkeypatch.setattr(app, "ThreadingHTTPServer", Server)
    monkeypatch.setattr(app.signal, "signal", lambda sig, fn: handlers.__setitem__(sig, fn))
    monkeypatch.setattr(app.simconfig, "read_runtime", lambda: {
        "version": "17.11.7", "app": {"port": 8080, "external_url": "http://gitlab",
                                      "storages": {}}})
    projects, tokens = app.Projects, app.Tokens
    monkeypatch.setattr(app, "Projects", lambda: projects(str(tmp_path / "projects.json")))
    monkeypatch.setattr(app, "Tokens", lambda: tokens(str(tmp_path / "tokens.json")))
    # main() sets its request handler's class attributes: on a subclass, not for good.
    monkeypatch.setattr(app, "Handler", type("Handler", (app.Handler,), {}))
    assert app.main() == 0
    assert polls == [0.5]  # socketserver's own pace: nothing to look for between polls
    # Its own handler, then one that ignores a second SIGTERM while the first is handled.
    assert set(handlers) == {signal.SIGTERM}
    assert handlers[signal.SIGTERM] == signal.SIG_IGN
