"""The API client and the git helper: outputs, redaction, and real git round trips."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from lab.client import gitlab as gl
from lab.client.gitlab import ApiError, Git, GitLabClient, project_ref
from lab.engine.run import Result

TOKEN = "glpat-secret0123456789abcd"


class FakeSession:
    def __init__(self, status: int = 200, text: str = "{}", exc: Exception | None = None):
        self.status, self.text, self.exc = status, text, exc
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kw: Any) -> Any:
        self.requests.append((method, url, kw))
        if self.exc:
            raise self.exc
        return type("R", (), {"status_code": self.status, "text": self.text})()


def test_api_call_sends_the_token_header_and_reports_status() -> None:
    session = FakeSession(201, '{"id": 3, "path_with_namespace": "root/p"}')
    client = GitLabClient("http://127.0.0.1:9/", TOKEN, session=session)  # type: ignore[arg-type]
    data = client.create_project("p", storage="storage1")
    assert data["id"] == 3
    method, url, kw = session.requests[0]
    assert (method, url) == ("POST", "http://127.0.0.1:9/api/v4/projects")
    assert kw["headers"] == {"PRIVATE-TOKEN": TOKEN}
    assert kw["json"] == {"name": "p", "path": "p", "repository_storage": "storage1"}


def test_api_refusals_are_results_and_raise_only_when_asked() -> None:
    session = FakeSession(500, '{"message": "7:permission denied"}')
    client = GitLabClient("http://x", TOKEN, session=session)  # type: ignore[arg-type]
    resp = client.create_project_raw("p")
    assert not resp.ok
    assert resp.output == 'HTTP 500 {"message": "7:permission denied"}'
    with pytest.raises(ApiError, match="POST /api/v4/projects failed: HTTP 500"):
        client.create_project("p")


def test_api_dead_server_is_status_zero_and_redacted() -> None:
    session = FakeSession(exc=requests.ConnectionError(f"refused (token {TOKEN})"))
    client = GitLabClient("http://x", TOKEN, session=session)  # type: ignore[arg-type]
    resp = client.call("GET", "/api/v4/user")
    assert resp.status == 0
    assert TOKEN not in resp.output
    assert "[REDACTED]" in resp.output


def test_current_user_and_delete_project() -> None:
    # Documented fixture API (gitlab.api.current_user / delete_project).
    session = FakeSession(200, '{"id": 1, "username": "root"}')
    client = GitLabClient("http://x", TOKEN, session=session)  # type: ignore[arg-type]
    assert client.current_user() == {"id": 1, "username": "root"}
    resp = client.delete_project("root/my-proj")
    assert resp.ok
    assert [(m, u) for m, u, _ in session.requests] == [
        ("GET", "http://x/api/v4/user"), ("DELETE", "http://x/api/v4/projects/root%2Fmy-proj")]
    session.status = 401
    with pytest.raises(ApiError, match="GET /api/v4/user failed: HTTP 401"):
        client.current_user()
    assert not client.delete_project(7).ok


def test_project_ref_encodes_paths() -> None:
    assert project_ref("root/my-proj") == "root%2Fmy-proj"
    assert project_ref(7) == "7"


def test_git_never_puts_the_token_in_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(argv: list[str], **kw: Any) -> Result:
        seen.append((list(argv), dict(kw["env"])))
        return Result(list(argv), 0, "", f"remote: echo {TOKEN}")

    monkeypatch.setattr(gl, "run", fake_run)
    res = Git("http://127.0.0.1:9", TOKEN).push("root/p", {"a.txt": "x"})
    assert res.ok
    assert TOKEN not in res.output
    pushes = [a for a, _ in seen if "push" in a]
    assert pushes
    assert pushes[0][-2:] == ["http://127.0.0.1:9/root/p.git", "HEAD:refs/heads/main"]
    for argv, env in seen:
        assert not any(TOKEN in a for a in argv)
        assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
        assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
        assert env["GIT_TERMINAL_PROMPT"] == "0"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    repo = tmp_path / "srv" / "root" / "p.git"
    repo.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    return repo


def test_git_round_trip_on_a_real_repository(bare: Path) -> None:
    # file:// stands in for the lab's HTTP endpoint; the helper is the same.
    git = Git(f"file://{bare.parent.parent}", TOKEN)
    first = git.push("root/p", {"README.md": "one\n"})
    assert first.ok, first.output
    second = git.push("root/p", {"docs/two.txt": "two\n"})
    assert second.ok, second.output  # built on top of main, not a rejected new history
    both = {"README.md": "one\n", "docs/two.txt": "two\n"}
    res = git.clone_and_compare("root/p", both)
    assert res.ok
    assert res.output == "cloned; content matches (README.md, docs/two.txt)"
    bad = git.clone_and_compare("root/p", {"README.md": "changed\n", "gone.txt": ""})
    assert bad.returncode == 1
    assert bad.output.splitlines() == ["clone differs:",
                                       "README.md: content differs from what was pushed",
                                       "gone.txt: missing from the clone"]


def test_git_failure_carries_gits_message(tmp_path: Path) -> None:
    res = Git(f"file://{tmp_path}", TOKEN).clone_and_compare("root/none", {})
    assert res.returncode != 0
    assert "does not appear to be a git repository" in res.output or "not found" in res.output


@pytest.mark.parametrize("name", ["/ABSOLUTE", "../DOTDOT", "a/../../DOTDOT", ".git/config",
                                  "sub/.GIT/hooks/x", "./a", "a//b", ""])
def test_push_refuses_a_file_name_outside_the_work_tree(bare: Path, tmp_path: Path,
                                                        name: str) -> None:
    # A scenario's file names are data: `.git/config` with core.fsmonitor would make the
    # host run a command at `git add`, `/x` or `../x` would write outside the scratch folder.
    marker = tmp_path / "HOST-EXEC"
    content = f'[core]\n\tfsmonitor = "touch {marker}; false"\n'
    name = name.replace("ABSOLUTE", str(tmp_path / "ABSOLUTE").lstrip("/"))
    name = name.replace("DOTDOT", "../" * 8 + str(tmp_path / "DOTDOT").lstrip("/"))
    res = Git(f"file://{bare.parent.parent}", TOKEN).push("root/p", {name: content})
    assert not res.ok
    assert "not a path inside the repository" in res.output
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["srv"]


def test_push_never_writes_through_a_link_in_the_fetched_tree(bare: Path,
                                                              tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "out").symlink_to(tmp_path)
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                                 "link"], ["push", "-q", str(bare), "HEAD:refs/heads/main"]):
        subprocess.run(["git", *args], cwd=seed, check=True)
    res = Git(f"file://{bare.parent.parent}", TOKEN).push("root/p", {"out/LEAK": "x"})
    assert not res.ok
    assert not (tmp_path / "LEAK").exists()


def test_clone_never_reads_outside_the_clone(bare: Path, tmp_path: Path) -> None:
    git = Git(f"file://{bare.parent.parent}", TOKEN)
    assert git.push("root/p", {"README.md": "one\n"}).ok
    (tmp_path / "secret").write_text("s3cret\n")
    res = git.clone_and_compare("root/p", {"../../secret": "s3cret\n",
                                           str(tmp_path / "secret"): "s3cret\n"})
    assert res.returncode == 1
    assert "content differs" not in res.output


class ScriptedSession:
    """Answers each request in turn from a list of (status, body)."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Any]] = []

    def request(self, method: str, url: str, **kw: Any) -> Any:
        self.requests.append((method, url.rpartition("/api/v4")[2], kw.get("json")))
        status, text = self.answers.pop(0)
        return type("R", (), {"status_code": status, "text": text})()


def test_create_project_by_setting_pins_the_storage_then_puts_the_setting_back() -> None:
    session = ScriptedSession((200, '{"repository_storages": ["default", "storage2"]}'),
                              (200, '{"repository_storages": ["storage1"]}'),
                              (201, '{"id": 3, "repository_storage": "storage1"}'),
                              (200, '{"repository_storages": ["default", "storage2"]}'))
    client = GitLabClient("http://x", TOKEN, session=session)  # type: ignore[arg-type]
    resp = client.create_project_raw("p", storage="storage1", by_setting=True)
    assert resp.status == 201
    assert session.requests == [
        ("GET", "/application/settings", None),
        ("PUT", "/application/settings", {"repository_storages": ["storage1"]}),
        ("POST", "/projects", {"name": "p", "path": "p"}),
        ("PUT", "/application/settings", {"repository_storages": ["default", "storage2"]})]


def test_create_project_by_setting_stops_when_the_setting_is_refused() -> None:
    session = ScriptedSession((200, '{"repository_storages": ["default"]}'),
                              (403, '{"message": "403 Forbidden"}'))
    client = GitLabClient("http://x", TOKEN, session=session)  # type: ignore[arg-type]
    resp = client.create_project_raw("p", storage="storage1", by_setting=True)
    assert resp.output == 'HTTP 403 {"message": "403 Forbidden"}'
    assert [m for m, _, _ in session.requests] == ["GET", "PUT"]

