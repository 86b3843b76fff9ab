"""The GitLab REST API (requests) and real ``git`` over smart HTTP, bound to one lab.

Both return what happened (status or exit code plus output) instead of raising
on a refusal: a scenario's expectation decides whether a refusal is the point.
The admin token never reaches an argument list or an output: git gets it
through ``GIT_CONFIG_*`` environment variables and every output is redacted.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from lab.engine.run import Redactor, run
from lab.errors import EngineError, LabFailing, ToolMissing


class ApiError(LabFailing):
    """A GitLab API call the caller needed to succeed did not."""

    def __init__(self, response: ApiResponse) -> None:
        self.response = response
        super().__init__(f"GitLab API {response.method} {response.path} failed: "
                         f"{response.output}")


@dataclass(frozen=True)
class ApiResponse:
    method: str
    path: str
    status: int  # 0: no HTTP answer at all (connection refused, timeout)
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def data(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def output(self) -> str:
        """What an expectation's ``output`` pattern is matched against."""
        return f"HTTP {self.status} {self.text}".strip() if self.status else self.text


@dataclass(frozen=True)
class GitResult:
    argv: list[str]  # redacted
    returncode: int
    output: str  # stdout + stderr, redacted

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def repo_file_name_ok(name: str) -> bool:
    """``name`` is a file path inside a work tree: relative, no ``.``/``..``/empty parts, not
    in ``.git`` (a scenario's file names are data; ``.git/config`` or ``/etc/x`` would make the
    host run or write what the scenario says)."""
    parts = name.split("/")
    return bool(name) and "\0" not in name and "\\" not in name and all(
        p not in ("", ".", "..") and p.lower() != ".git" for p in parts)


def _in_work_tree(work: Path, name: str) -> Path | None:
    """``work/name`` when it stays in the work tree (links followed) and out of ``.git``."""
    if not repo_file_name_ok(name):
        return None
    root = work.resolve()
    target = (work / name).resolve()
    if not target.is_relative_to(root) or target == root:
        return None
    rel = target.relative_to(root)
    return None if rel.parts[0].lower() == ".git" else work / name


#: The admin's application settings (lib/api/settings.rb).
SETTINGS = "/api/v4/application/settings"


def project_ref(path_with_namespace_or_id: str | int) -> str:
    """The :id segment of a project URL: an id, or the URL-encoded full path."""
    return urllib.parse.quote(str(path_with_namespace_or_id), safe="")


class GitLabClient:
    """A thin client for the REST slice the scenarios use."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._session = session or requests.Session()
        self._redact = Redactor()
        self._redact.add([token])

    def call(self, method: str, path: str, *, data: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None) -> ApiResponse:
        """One request; never raises for an HTTP status or a dead server."""
        url = self.base_url + "/" + path.lstrip("/")
        method = method.upper()
        try:
            resp = self._session.request(method, url, json=dict(data) if data else None,
                                         params=dict(params) if params else None,
                                         headers={"PRIVATE-TOKEN": self._token},
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            return ApiResponse(method, path, 0, self._redact(f"no answer from {url}: {exc}"))
        return ApiResponse(method, path, resp.status_code, self._redact(resp.text))

    def _checked(self, response: ApiResponse) -> Any:
        if not response.ok:
            raise ApiError(response)
        return response.data

    def current_user(self) -> dict[str, Any]:
        return dict(self._checked(self.call("GET", "/api/v4/user")))

    def create_project_raw(self, name: str, *, storage: str | None = None,
                           by_setting: bool = False) -> ApiResponse:
        """POST /projects. ``by_setting``: the release's projects API ignores
        ``repository_storage`` (CE before 12.9), so do what an admin does there: set the
        admin setting ``repository_storages`` to ``storage`` alone, create the project,
        put the setting back. A failed settings call is the answer returned."""
        data: dict[str, Any] = {"name": name, "path": name}
        if not storage:
            return self.call("POST", "/api/v4/projects", data=data)
        if not by_setting:
            return self.call("POST", "/api/v4/projects", data={**data,
                                                              "repository_storage": storage})
        before = self.call("GET", SETTINGS)
        if not before.ok:
            return before
        pinned = self.call("PUT", SETTINGS, data={"repository_storages": [storage]})
        if not pinned.ok:
            return pinned
        try:
            return self.call("POST", "/api/v4/projects", data=data)
        finally:
            kept = before.data.get("repository_storages") if isinstance(before.data, dict) else None
            self.call("PUT", SETTINGS, data={"repository_storages": kept or ["default"]})

    def create_project(self, name: str, *, storage: str | None = None,
                       by_setting: bool = False) -> dict[str, Any]:
        return dict(self._checked(self.create_project_raw(name, storage=storage,
                                                          by_setting=by_setting)))

    def get_project(self, ref: str | int) -> dict[str, Any]:
        return dict(self._checked(self.call("GET", f"/api/v4/projects/{project_ref(ref)}")))

    def delete_project(self, ref: str | int) -> ApiResponse:
        return self.call("DELETE", f"/api/v4/projects/{project_ref(ref)}")


class Git:
    """Real ``git`` against the lab's smart HTTP endpoint, one scratch directory per call."""

    def __init__(self, base_url: str, token: str, *, user: str = "root",
                 timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.timeout = timeout
        self._token = token
        self._redact = Redactor()
        self._redact.add([token, base64.b64encode(f"{user}:{token}".encode()).decode()])

    def url(self, path_with_namespace: str) -> str:
        return f"{self.base_url}/{path_with_namespace}.git"

    def _env(self) -> dict[str, str]:
        basic = base64.b64encode(f"{self.user}:{self._token}".encode()).decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update({
            # Only the header carries the credential: nothing in argv, the URL or .git/config.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            # The user's own git configuration must not change what the lab sees.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        })
        return env

    def _git(self, args: list[str], cwd: Path) -> GitResult:
        argv = ["git", "-c", "user.name=gitlab-testlab", "-c", "user.email=testlab@example.com",
                "-c", "init.defaultBranch=main", *args]
        try:
            res = run(argv, check=False, env=self._env(), cwd=str(cwd), timeout=self.timeout)
        except EngineError as exc:  # timeout
            return GitResult([self._redact(a) for a in argv], exc.returncode,
                             self._redact(exc.stderr))
        except ToolMissing as exc:  # no git binary: as a shell says it
            return GitResult([self._redact(a) for a in argv], 127, str(exc))
        output = (res.stdout + res.stderr).strip()
        return GitResult([self._redact(a) for a in argv], res.returncode, self._redact(output))

    def push(self, path_with_namespace: str, files: Mapping[str, str], *,
             message: str = "gitlab-testlab commit", branch: str = "main") -> GitResult:
        """Commit ``files`` on top of ``branch`` (if it exists yet) and push it."""
        url = self.url(path_with_namespace)
        with tempfile.TemporaryDirectory(prefix="lab-push-") as tmp:
            work = Path(tmp)
            result = self._git(["init", "-q", "."], work)
            if not result.ok:
                return result
            # An empty project has no branch to build on: then the push creates it.
            # Any other fetch failure shows up again, and is reported, in the push.
            if self._git(["fetch", "-q", url, branch], work).ok:
                self._git(["checkout", "-q", "FETCH_HEAD"], work)
            for name, content in files.items():
                target = _in_work_tree(work, name)
                if target is None:
                    return GitResult(["git", "push"], 2, f"file name {name!r} is not a path "
                                     "inside the repository (relative, no '..', not in .git)")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
            for args in (["add", "-A"], ["commit", "-q", "-m", message],
                         ["push", url, f"HEAD:refs/heads/{branch}"]):
                result = self._git(args, work)
                if not result.ok:
                    break
            return result

    def ls_remote(self, path_with_namespace: str) -> GitResult:
        """``git ls-remote``: one info/refs round trip through Workhorse to Gitaly."""
        with tempfile.TemporaryDirectory(prefix="lab-ls-") as tmp:
            return self._git(["ls-remote", self.url(path_with_namespace)], Path(tmp))

    def clone(self, path_with_namespace: str, dest: Path, *, branch: str = "main") -> GitResult:
        # The branch pushed to, not whatever HEAD the server advertises.
        return self._git(["clone", "-q", "-b", branch, self.url(path_with_namespace), str(dest)],
                         dest.parent)

    def clone_and_compare(self, path_with_namespace: str, expected: Mapping[str, str], *,
                          branch: str = "main") -> GitResult:
        """Clone and check that every expected file has exactly the expected content."""
        with tempfile.TemporaryDirectory(prefix="lab-clone-") as tmp:
            dest = Path(tmp) / "repo"
            result = self.clone(path_with_namespace, dest, branch=branch)
            if not result.ok:
                return result
            problems = []
            for name, content in expected.items():
                path = _in_work_tree(dest, name)
                if path is None or not path.is_file():
                    problems.append(f"{name}: missing from the clone")
                elif path.read_text() != content:
                    problems.append(f"{name}: content differs from what was pushed")
            if problems:
                return GitResult(result.argv, 1, "\n".join(["clone differs:", *problems]))
            names = ", ".join(sorted(expected)) or "no files"
            return GitResult(result.argv, 0, f"cloned; content matches ({names})")


@dataclass(frozen=True)
class GitLab:
    """The API client and the git helper for one lab (the pytest ``gitlab`` fixture)."""

    api: GitLabClient
    git: Git

    @classmethod
    def connect(cls, http_url: str, token: str) -> GitLab:
        return cls(GitLabClient(http_url, token), Git(http_url, token))
