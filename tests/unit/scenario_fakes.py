"""A fake lab and a fake GitLab for the scenario room's tests (no Docker).

The fake "world" answers like GitLab would for the lab state it is in, so the
built-in library runs without Docker and a negative scenario is shown to fail
when the failure has another cause.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lab.client.gitlab import ApiResponse, GitResult
from lab.engine.run import Redactor, Result
from lab.errors import EngineError, LabError
from lab.model.topology import Lab, SecretsPolicy
from lab.omnibus import eras
from lab.omnibus.release import UNBOUNDED

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
TOKEN = "glpat-0123456789abcdef0123"


@dataclass
class FakeLab:
    """A RunningLab stand-in whose behaviour follows its current ``Lab``."""

    lab: Lab
    path: Path
    calls: list[tuple[str, ...]] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)
    logs_by_node: dict[str, str] = field(default_factory=dict)
    repos: dict[str, str] = field(default_factory=dict)  # path on storage -> node:full path
    fail_start: bool = False
    health_waits: list[bool] = field(default_factory=list)  # docker_health of each wait
    # Each wait's services_of, setup_of, app_of (None: the whole lab).
    asked: list[tuple[tuple[str, ...] | None, ...]] = field(default_factory=list)
    # Knows no secret: the runner must add the admin token itself.
    redactor: Redactor = field(default_factory=Redactor)

    def __post_init__(self) -> None:
        self.name = self.lab.name
        self.path.mkdir(parents=True, exist_ok=True)
        self._manifest()

    def _manifest(self) -> None:
        nodes = {n.name: {"secrets_policy": n.secrets.value,
                          "shell_secret_sha256": "sha256:aaaa",
                          "gitaly_token_sha256": "sha256:bbbb", "tls": n.tls}
                 for n in self.lab.nodes}
        (self.path / "manifest.json").write_text(json.dumps({"nodes": nodes}))

    http_url = "http://127.0.0.1:1"
    admin_token = TOKEN

    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result:
        self.calls.append(("exec", node, *cmd))
        if node in self.stopped:
            raise EngineError(["exec", node], 1, f"container {node} is not running")
        if cmd[:2] == ["test", "-d"]:
            rc = 0 if f"{node}:{cmd[2]}" in self.repos.values() else 1
            return Result(cmd, rc, "", "")
        if "bash" in cmd:
            up = cmd[-2] not in self.stopped
            return Result(cmd, 0 if up else 1, "", "" if up else "Connection refused")
        return Result(cmd, 0, "ok\n", "")

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        return self.logs_by_node.get(node, "")

    def log(self, node: str, line: str) -> None:
        self.logs_by_node[node] = self.logs_by_node.get(node, "") + line + "\n"

    def act(self, node: str, verb: str) -> None:
        self.calls.append((verb, node))
        if verb == "start" and self.fail_start:
            raise LabError(f"cannot start {node}")
        if verb == "stop":
            self.stopped.add(node)
        if verb == "start":
            self.stopped.discard(node)

    def apply(self, new_lab: Lab, *, timeout: float = 0, progress: Any = None,
              wait_gitaly: bool = True, docker_health: bool = True) -> list[str]:
        changed = [n.name for n in new_lab.nodes if n != self.lab.node(n.name)]
        self.health_waits.append(docker_health)
        self.calls.append(("apply", ",".join(changed), str(wait_gitaly)))
        self.lab = new_lab
        self._manifest()
        return changed

    def wait_ready(self, *, timeout: float = 0, progress: Any = None,
                   wait_gitaly: bool = True, docker_health: bool = True,
                   services_of: Collection[str] | None = None,
                   setup_of: Collection[str] | None = None,
                   app_of: Collection[str] | None = None) -> None:
        self.calls.append(("wait_ready", str(wait_gitaly)))
        self.health_waits.append(docker_health)
        # What each wait asked about: None = the whole lab.
        self.asked.append(tuple(None if n is None else tuple(sorted(n))
                                for n in (services_of, setup_of, app_of)))

    def status(self) -> Any:
        return SimpleNamespace(nodes=[
            SimpleNamespace(node=n.name, ports={"80/tcp": "127.0.0.1:40000"} if n.is_app else {})
            for n in self.lab.nodes])

    def down(self, *, purge: bool = False) -> None:
        self.calls.append(("down",))


class FakeWorld:
    """API and git answers for the fake lab's current state (the sim's messages)."""

    def __init__(self, running: FakeLab, *, lose_projects: bool = False) -> None:
        self.running = running
        self.projects: dict[str, dict[str, Any]] = {}
        self.content: dict[str, dict[str, str]] = {}
        self.lose_projects = lose_projects
        self.ls_remotes: list[str] = []
        #: How many ls-remote calls fail after a restart (a channel still backing off).
        self.settle_failures = 0
        self.api = self
        self.git = self

    @property
    def gitaly(self) -> Any:
        return self.running.lab.node("gitaly1")

    def _gitaly_error(self) -> tuple[int, str] | None:
        """The gRPC code and details the app would meet calling Gitaly now."""
        lab = self.running.lab
        if "gitaly1" in self.running.stopped:
            return 14, "failed to connect to all addresses"
        if self.gitaly.gitaly_token is not None:
            return 7, "permission denied"
        if self.gitaly.tls and not lab.app.trust_ca:
            # The sim's own C core's words (Debian's grpcio 1.51.1), as the newest era shows them.
            return 14, ("failed to connect to all addresses; last error: UNKNOWN: ipv4:"
                        "172.18.0.3:9999: Ssl handshake failed: SSL_ERROR_SSL: error:0A000086:"
                        "SSL routines::certificate verify failed")
        if self.gitaly.tls and "gitaly1" not in self.gitaly.san_names:
            return 14, ("failed to connect to all addresses; last error: UNKNOWN: ipv4:"
                        "172.18.0.3:9999: Peer name gitaly1 is not in peer certificate")
        return None

    def _log_json(self, record: dict[str, Any]) -> None:
        self.running.log("gitlab", json.dumps(record, separators=(",", ":")))

    def _workhorse_failure(self, path: str, code: int, details: str) -> GitResult:
        # The texts real GitLab shows, from the one place the sim takes them too.
        answer = eras.workhorse_info_refs_failed(UNBOUNDED, code, details, "GET",
                                                 f"/{path}.git/info/refs")
        self._log_json(answer.log)
        return GitResult([], 128, f"remote: {answer.body.strip()}\nfatal: unable to access "
                         f"'http://127.0.0.1:1/{path}.git/': The requested URL returned error: "
                         f"{answer.status}")

    # API
    def call(self, method: str, path: str, *, data: Any = None, params: Any = None
             ) -> ApiResponse:
        files = re.match(r"/api/v4/projects/([^/]+)/repository/files/([^/?]+)(/raw)?", path)
        if files is None:
            return ApiResponse(method, path, 200, '{"username": "root"}')
        project, name = urllib.parse.unquote(files[1]), urllib.parse.unquote(files[2])
        if method == "POST":
            self.content.setdefault(project, {})[name] = data["content"]
            return ApiResponse(method, path, 201, json.dumps(
                {"file_path": name, "branch": data["branch"]}))
        return ApiResponse(method, path, 200, self.content[project][name])

    def create_project_raw(self, name: str, *, storage: str | None = None,
                           by_setting: bool = False) -> ApiResponse:
        err = self._gitaly_error()
        if err:
            code, details = err
            # The sim's own C core's debug string, shown as the lab's release shows it.
            debug = (f'UNKNOWN:{details} {{grpc_status:14, created_time:"2026"}}' if code == 14
                     else f'UNKNOWN:Error received from peer ipv4:172.18.0.3:8075 {{grpc_message:'
                          f'"{details}", grpc_status:{code}, created_time:"2026"}}')
            shown = eras.grpc_call_failure(self.running.lab.version, code, details, debug)
            if shown.stderr:
                self.running.log("gitlab", shown.stderr)
            failure = eras.project_exists_check_failed(code, shown.details, shown.debug,
                                                       self.running.lab.version)
            for _, record in failure.logs:
                self._log_json(record)
            for _, line in failure.lines:
                self.running.log("gitlab", line)
            return ApiResponse("POST", "/api/v4/projects", failure.status, failure.body_text())
        if not (by_setting or eras.api_takes_repository_storage(self.running.lab.version)):
            storage = None  # CE drops the parameter; the setting (default) places it
        pid = len(self.projects) + 1
        disk = eras.repository_disk_path(self.running.lab.version, pid, f"root/{name}")
        node = self.running.lab.storages[storage or "default"]
        spath = next(s for s in node.storages if s.name == (storage or "default"))
        self.running.repos[disk] = f"{node.name}:{spath.repositories_path}/{disk}"
        data = {"id": pid, "path_with_namespace": f"root/{name}",
                "repository_storage": storage or "default"}
        if not self.lose_projects:
            self.projects[f"root/{name}"] = data
        return ApiResponse("POST", "/api/v4/projects", 201, json.dumps(data))

    def get_project(self, ref: Any) -> dict[str, Any]:
        return self.projects[str(ref)]

    # git
    def push(self, path: str, files: dict[str, str], *, branch: str = "main") -> GitResult:
        if path not in self.projects:
            # The admin token in the output and the app's log: the runner must redact both.
            self.running.log("gitlab", f"puma: error: 404 for {path} (PRIVATE-TOKEN {TOKEN})")
            return GitResult([], 128, "remote: The project you were looking for could not be "
                             f"found.\nfatal: repository 'http://root:{TOKEN}@127.0.0.1:1/"
                             f"{path}.git' not found")
        err = self._gitaly_error()
        if err:
            return self._workhorse_failure(path, *err)
        if self.gitaly.secrets is not SecretsPolicy.SHARED:
            return GitResult([], 1, "remote: GitLab: 401 Unauthorized\n ! [remote rejected] "
                             "HEAD -> main (pre-receive hook declined)")
        if self.gitaly.internal_api_url is not None:
            return GitResult([], 1, "remote: GitLab: Internal API unreachable\n ! [remote "
                             "rejected] HEAD -> main (pre-receive hook declined)")
        self.content.setdefault(path, {}).update(files)
        return GitResult([], 0, "To http://127.0.0.1:1/x.git\n * [new branch] HEAD -> main")

    def clone_and_compare(self, path: str, expected: dict[str, str]) -> GitResult:
        err = self._gitaly_error()
        if err:
            return self._workhorse_failure(path, *err)
        ok = all(self.content.get(path, {}).get(k) == v for k, v in expected.items())
        names = ", ".join(sorted(expected)) or "no files"
        return GitResult([], 0 if ok else 1, f"cloned; content matches ({names})" if ok
                         else "differs")

    def ls_remote(self, path: str) -> GitResult:
        self.ls_remotes.append(path)
        if self.settle_failures:
            self.settle_failures -= 1
            return self._workhorse_failure(path, 14, "connection refused")
        err = self._gitaly_error()
        return self._workhorse_failure(path, *err) if err else GitResult([], 0, "refs")


def make(tmp_path: Path, *, lose_projects: bool = False) -> tuple[list[FakeLab], Any, Any]:
    labs: list[FakeLab] = []
    worlds: dict[int, FakeWorld] = {}

    def up(lab: Lab) -> FakeLab:
        fake = FakeLab(lab, tmp_path / lab.name)
        labs.append(fake)
        return fake

    def connect(running: FakeLab) -> FakeWorld:
        world = worlds.get(id(running))
        if world is None:
            world = worlds[id(running)] = FakeWorld(running, lose_projects=lose_projects)
        return world

    return labs, up, connect

