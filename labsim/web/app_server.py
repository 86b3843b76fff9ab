"""The sim's app node: health probes, a REST slice, Git smart HTTP and the internal API.

Git traffic goes to the storage's Gitaly over gRPC with the v2 token, exactly the
path Workhorse takes; the internal API checks the header of this node's release
(Gitlab-Shared-Secret or the Gitlab-Shell-Api-Request JWT) against its own
gitlab_shell.secret_token. What each release answers when Gitaly fails comes from
lab_eras (lab/omnibus/eras.py), shared with the host's tests.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import ipaddress
import json
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from lab.omnibus import auth as lab_auth
from lab.omnibus import eras as lab_eras
from lab.omnibus.release import UNBOUNDED, Version
from labsim.common import simconfig
from labsim.gitaly import gitaly_client, gitaly_git_client
from labsim.web import api_repository

STORE = os.path.join(simconfig.STATE_DIR, "projects.json")
TOKENS = os.path.join(simconfig.STATE_DIR, "tokens.json")
GIT_PATH = re.compile(r"^/(?P<ns>[\w.-]+)/(?P<path>[\w.-]+?)(?:\.git)?"
                      r"/(?P<op>info/refs|git-upload-pack|git-receive-pack)$")


def log(message: str) -> None:
    simconfig.log("puma", message)


class Projects:
    """Project records, kept in memory and written through to JSON under /var/opt/gitlab
    (they survive restarts). This process is the file's only writer."""

    def __init__(self, path: str = STORE) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            with open(path) as fh:
                self.data: dict[str, Any] = json.load(fh)
        except (OSError, ValueError):
            self.data = {"next_id": 1, "projects": {}}

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".tmp", "w") as fh:
            json.dump(self.data, fh, indent=1)
        os.replace(self.path + ".tmp", self.path)

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(p) for p in self.data["projects"].values()]

    def find(self, ref: str) -> dict[str, Any] | None:
        with self.lock:
            projects: dict[str, dict[str, Any]] = self.data["projects"]
            if ref.isdigit():
                found = projects.get(ref)
                return dict(found) if found is not None else None
            ref = ref.removesuffix(".git")
            for project in projects.values():
                if project["path_with_namespace"] == ref:
                    return dict(project)
            return None

    def create(self, name: str, path: str, storage_name: str,
               make_repository: Callable[[str], None],
               rel: Version = UNBOUNDED, visibility: str = "private") -> dict[str, Any] | None:
        """The new project, or None when ``path`` is taken. ``make_repository(disk_path)``
        runs under the lock, so the id it is named after cannot be given out twice. The
        path on the storage is release ``rel``'s layout (eras.STORAGE_PATH: legacy, then hashed).
        ``disk_path`` stays in this store: the API's project entity has no such field."""
        with self.lock:
            if any(p["path"] == path for p in self.data["projects"].values()):
                return None
            project_id = int(self.data["next_id"])
            disk_path = lab_eras.repository_disk_path(rel, project_id, f"root/{path}")
            make_repository(disk_path)
            project = {
                "id": project_id, "name": name, "path": path,
                "path_with_namespace": f"root/{path}",
                "namespace": {"id": 1, "name": "root", "path": "root", "kind": "user",
                              "full_path": "root"},
                # None until Rails' root ref names a branch (root_ref, eras
                # PROJECT_DEFAULT_BRANCH); then kept, as Rails caches root_ref.
                "default_branch": None, "visibility": visibility,
                "repository_storage": storage_name, "disk_path": disk_path,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self.data["projects"][str(project_id)] = project
            self.data["next_id"] = project_id + 1
            self._save()
            return dict(project)

    def update(self, project_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            project: dict[str, Any] = self.data["projects"][str(project_id)]
            project.update(changes)
            self._save()
            return dict(project)

    def delete(self, project_id: int) -> None:
        with self.lock:
            self.data["projects"].pop(str(project_id), None)
            self._save()

    def repository_storages(self) -> list[str]:
        """The admin setting new projects are placed by (application_settings.
        repository_storages, ['default'] in a new installation), kept beside the projects
        as GitLab keeps both in its database."""
        with self.lock:
            return list(self.data.get("settings", {}).get("repository_storages", ["default"]))

    def set_repository_storages(self, names: list[str]) -> None:
        with self.lock:
            self.data.setdefault("settings", {})["repository_storages"] = list(names)
            self._save()


class Tokens:
    """tokens.json, which `gitlab-rails runner` writes from another process: read again
    only when the file changed (it is replaced by rename, so a new inode each time)."""

    def __init__(self, path: str = TOKENS) -> None:
        self.path = path
        self._seen: tuple[tuple[int, int], list[dict[str, Any]]] | None = None

    def entries(self) -> list[dict[str, Any]]:
        try:
            stat = os.stat(self.path)
        except OSError:
            return []
        key = (stat.st_mtime_ns, stat.st_ino)
        seen = self._seen
        if seen is not None and seen[0] == key:
            return seen[1]
        try:
            with open(self.path) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return []
        entries = data.get("tokens", []) if isinstance(data, dict) else []
        self._seen = (key, entries)
        return entries

    def valid(self, token: str) -> bool:
        if not token:
            return False
        today = time.strftime("%Y-%m-%d")
        return any(e.get("token") == token
                   and (not e.get("expires_at") or e["expires_at"] > today)
                   and not e.get("revoked") for e in self.entries())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gitlab-testlab-sim"
    sys_version = ""
    app: ClassVar[dict[str, Any]] = {}
    # Built once per process: `gitlab-ctl reconfigure` restarts this service.
    storages: ClassVar[dict[str, gitaly_client.Storage]] = {}
    projects: ClassVar[Projects]
    tokens: ClassVar[Tokens]
    release: ClassVar[Version] = UNBOUNDED

    # -- plumbing --------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log(f"{self.client_address[0]} {format % args}")

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def send(self, status: int, body: bytes, content_type: str,
             headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json(self, status: int, data: Any) -> None:
        self.send(status, lab_eras.rails_json(data).encode(), "application/json")

    def params(self, raw: bytes) -> dict[str, Any]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if not raw:
            return query
        if "json" in self.headers.get("Content-Type", ""):
            data = json.loads(raw)
            return {**query, **data} if isinstance(data, dict) else query
        return {**query, **dict(urllib.parse.parse_qsl(raw.decode()))}

    # -- routing ---------------------------------------------------------------

    def do_GET(self) -> None:
        self.route("GET")

    def do_HEAD(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def do_PUT(self) -> None:
        self.route("PUT")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def route(self, method: str) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path.startswith("/-/"):
                self.probe(path)
            elif path.startswith("/api/v4/internal/"):
                self.internal(method, path.removeprefix("/api/v4/internal/"))
            elif path.startswith("/api/v4/"):
                self.api(method, path.removeprefix("/api/v4/"))
            elif match := GIT_PATH.match(path):
                self.git(method, match)
            else:
                self.json(404, {"message": "404 Not Found"})
        except gitaly_client.GitalyCallError as exc:
            # Not rescued where it happened: Rails' generic answer to an exception.
            log(f"500 on {method} {path}: {exc}")
            self.json(500, {"message": lab_eras.API_INTERNAL_ERROR})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # a sim bug: answer like Rails would (the class in the log only)
            log(f"500 on {method} {path}: {traceback.format_exc()}")
            self.json(500, {"message": lab_eras.API_INTERNAL_ERROR})

    # -- health probes ---------------------------------------------------------

    def whitelisted(self) -> bool:
        client = ipaddress.ip_address(self.client_address[0])
        for entry in self.app["monitoring_whitelist"]:
            try:
                if client in ipaddress.ip_network(str(entry), strict=False):
                    return True
            except ValueError:
                continue
        return False

    def probe(self, path: str) -> None:
        if path not in ("/-/health", "/-/liveness", "/-/readiness") or not self.whitelisted():
            self.json(404, {"message": "404 Not Found"})
            return
        if path == "/-/health":
            self.send(200, b"GitLab OK", "text/plain")
            return
        result: dict[str, Any] = {"status": "ok", "master_check": [{"status": "ok"}]}
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if path == "/-/readiness" and query.get("all", ["0"])[0] in ("1", "true"):
            checks = []
            for name, storage in self.storages.items():
                try:
                    storage.server_info()
                    checks.append({"status": "ok", "labels": {"shard": name}})
                except gitaly_client.GitalyCallError as exc:
                    checks.append({"status": "failed", "message": str(exc),
                                   "labels": {"shard": name}})
            result["gitaly_check"] = checks
            if any(c["status"] != "ok" for c in checks):
                result["status"] = "failed"
        self.json(200 if result["status"] == "ok" else 503, result)

    # -- REST API ----------------------------------------------------------------

    def api_token(self) -> str:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        return (self.headers.get("PRIVATE-TOKEN") or "").strip()

    def root_ref(self, project: dict[str, Any]) -> str | None:
        """Project#default_branch: the one set (PUT, or found before), else what Gitaly's
        FindDefaultBranchName names now (None for a repository with no branch yet, or a
        Gitaly the app can't ask; lab.omnibus.eras PROJECT_DEFAULT_BRANCH)."""
        known = project.get("default_branch")
        if known:
            return str(known)
        storage = self.storages.get(str(project.get("repository_storage")))
        if storage is None:
            return None
        repo = gitaly_git_client.Repository(storage, project["disk_path"],
                                            f"project-{project['id']}",
                                            project["path_with_namespace"])
        try:
            found = lab_eras.project_default_branch(repo.default_branch())
        except gitaly_client.GitalyCallError:
            return None
        if found:
            self.projects.update(project["id"], {"default_branch": found})
        return found

    def project_json(self, project: dict[str, Any]) -> dict[str, Any]:
        """API::Entities::Project's fields the sim keeps: no ``disk_path`` (only the admin
        endpoint GET /projects/:id/storage, API::Entities::ProjectRepositoryStorage, has it)."""
        base = self.app["external_url"]
        shown = {k: v for k, v in project.items() if k != "disk_path"}
        return {**shown, "default_branch": self.root_ref(project),
                "http_url_to_repo": f"{base}/{project['path_with_namespace']}.git",
                "web_url": f"{base}/{project['path_with_namespace']}"}

    def api(self, method: str, path: str) -> None:
        raw = self.body() if method in ("POST", "PUT") else b""
        parts = path.strip("/").split("/")
        token = self.api_token()
        if not token and method == "GET" and parts[0] == "projects" and len(parts) <= 2:
            self.anonymous_projects(parts)
            return
        if not self.tokens.valid(token):
            self.json(401, {"message": "401 Unauthorized"})
            return
        if method == "GET" and parts == ["user"]:
            self.json(200, {**api_repository.ROOT_USER,
                            "web_url": f"{self.app['external_url']}/root"})
        elif method == "GET" and parts == ["version"]:
            self.json(200, {"version": simconfig.SERVER_VERSION, "revision": "sim"})
        elif parts[0] == "projects" and len(parts) == 1 and method == "POST":
            self.create_project(self.params(raw))
        elif parts[0] == "projects" and len(parts) == 1 and method == "GET":
            self.json(200, [self.project_json(p) for p in self.projects.all()])
        elif parts[0] == "projects" and len(parts) == 2:
            project = self.projects.find(urllib.parse.unquote(parts[1]))
            if project is None:
                self.json(404, {"message": "404 Project Not Found"})
            elif method == "GET":
                self.json(200, self.project_json(project))
            elif method == "DELETE":
                self.projects.delete(project["id"])
                self.json(202, {"message": "202 Accepted"})
            elif not api_repository.route(self, method, parts, self.params(raw)):
                self.json(405, {"message": "405 Method Not Allowed"})
        elif not api_repository.route(self, method, parts, self.params(raw)):
            self.json(404, {"message": "404 Not Found"})

    def anonymous_projects(self, parts: list[str]) -> None:
        """API::Projects reads without a token (lib/api/projects.rb ``before {
        authenticate_non_get! }``): the public projects, and 404 for any other one."""
        public = [p for p in self.projects.all() if p.get("visibility") == "public"]
        if len(parts) == 1:
            self.json(200, [self.project_json(p) for p in public])
            return
        project = self.projects.find(urllib.parse.unquote(parts[1]))
        if project is None or project.get("visibility") != "public":
            self.json(404, {"message": "404 Project Not Found"})
        else:
            self.json(200, self.project_json(project))

    def create_project(self, params: dict[str, Any]) -> None:
        name = str(params.get("name") or params.get("path") or "")
        path = str(params.get("path") or re.sub(r"[^\w.-]+", "-", name).strip("-").lower())
        # CE before release.CE_API_REPOSITORY_STORAGE drops the parameter
        # (eras.API_REPOSITORY_STORAGE): the setting
        # picks, at random among its storages (ApplicationSetting#pick_repository_storage).
        wanted = (params.get("repository_storage")
                  if lab_eras.api_takes_repository_storage(self.release) else None)
        storage_name = str(wanted or random.choice(self.projects.repository_storages()))
        visibility = params.get("visibility")
        invalid = lab_eras.project_params_invalid(
            self.release, bool(name and path), None if visibility is None else str(visibility))
        if invalid:
            self.json(400, invalid)
            return
        storage = self.storages.get(storage_name)
        if storage is None:
            self.json(400, {"message": {"repository_storage": ["is not included in the list"]}})
            return
        try:
            project = self.projects.create(name, path, storage_name,
                                           functools.partial(self.make_repository, storage),
                                           self.release, str(visibility or "private"))
        except CreateFailed as failed:
            answer = failed.failure
            for name_, record in answer.logs:
                simconfig.log_json(f"gitlab-rails/{name_}", record)
            for name_, line in answer.lines:
                simconfig.log_line(f"gitlab-rails/{name_}", line)
            self.send(answer.status, answer.body_text().encode(), "application/json")
            return
        if project is None:
            self.json(400, {"message": {"name": ["has already been taken"],
                                        "path": ["has already been taken"]}})
            return
        log(f"project {project['path_with_namespace']} created on "
            f"{storage_name}:{project['disk_path']}")
        self.json(201, self.project_json(project))

    def make_repository(self, storage: gitaly_client.Storage, disk_path: str) -> None:
        """Project's after_create RepositoryExists check, then create_repository."""
        try:
            exists = storage.repository_exists(disk_path)
        except gitaly_client.GitalyCallError as exc:
            raise CreateFailed(lab_eras.project_exists_check_failed(
                exc.number, exc.details, exc.debug, self.release)) from exc
        if exists:
            raise CreateFailed(lab_eras.project_already_on_disk(self.release))
        try:
            storage.create_repository(disk_path)
        except gitaly_client.GitalyCallError as exc:
            raise CreateFailed(lab_eras.project_create_repository_failed(
                self.release, exc.number, exc.details, exc.debug)) from exc

    # -- Git smart HTTP (Workhorse's job) ----------------------------------------

    def git(self, method: str, match: re.Match[str]) -> None:
        op = match["op"]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        service = query.get("service", [""])[0] if op == "info/refs" else op
        raw = self.body() if method == "POST" else b""
        auth = self.headers.get("Authorization", "")
        password = ""
        if auth.startswith("Basic "):
            try:
                password = base64.b64decode(auth[6:]).decode().partition(":")[2]
            except ValueError:
                password = ""
        project = self.projects.find(f"{match['ns']}/{match['path']}")
        # Rails' http_download_allowed?: anyone may fetch a public project.
        anonymous_read = (service == "git-upload-pack" and project is not None
                          and project.get("visibility") == "public")
        if not self.tokens.valid(password) and not anonymous_read:
            self.send(401, lab_eras.git_http_denied(self.release).encode(), "text/plain",
                      {"WWW-Authenticate": 'Basic realm="GitLab"'})
            return
        if service not in ("git-upload-pack", "git-receive-pack", "git-upload-archive"):
            # Rails' access check refuses the command before it looks at the project;
            # Workhorse passes that answer on (lab.omnibus.eras GIT_HTTP_NOT_SMART).
            self.send(403, lab_eras.git_http_not_smart(self.release).encode(), "text/plain")
            return
        if project is None:
            self.send(404, b"The project you were looking for could not be found.\n",
                      "text/plain")
            return
        if service == "git-upload-archive":
            # Rails allowed it; Workhorse's own handler serves smart HTTP only.
            status, body = lab_eras.workhorse_not_smart(self.release)
            self.send(status, body.encode(), "text/plain; charset=utf-8",
                      {"X-Content-Type-Options": "nosniff"})
            return
        storage = self.storages[project["repository_storage"]]
        protocol = self.headers.get("Git-Protocol", "")
        try:
            if op == "info/refs":
                data = storage.info_refs(service, project["disk_path"], protocol)
                content_type = f"application/x-{service}-advertisement"
            else:
                pusher = {"gl_id": "user-1", "gl_repository": f"project-{project['id']}",
                          "gl_username": "root"}
                data = storage.post_pack(service, project["disk_path"], raw, protocol, pusher)
                content_type = f"application/x-{service}-result"
        except gitaly_client.GitalyCallError as exc:
            self.workhorse_failed(method, op, exc)
            return
        self.send(200, data, content_type, {"Cache-Control": "no-cache"})

    def workhorse_failed(self, method: str, op: str, exc: gitaly_client.GitalyCallError) -> None:
        """Workhorse's answer (status, text/plain body) and its Go-style log line."""
        if op == "info/refs":
            answer = lab_eras.workhorse_info_refs_failed(self.release, exc.number, exc.details,
                                                          method, self.path)
            status, body, record = answer.status, answer.body, answer.log
        else:
            # handlePostRPC: the sim does not tell its eras apart (docs/fidelity.md).
            status, body = 500, lab_eras.INTERNAL_SERVER_ERROR_TEXT + "\n"
            record = {"error": "handlePostRPC: " + lab_eras.go_grpc_error(exc.number, exc.details),
                      "level": "error", "method": method, "msg": "error", "uri": self.path}
        simconfig.log_json("gitlab-workhorse/current", record, go=True)
        self.send(status, body.encode(), "text/plain; charset=utf-8",
                  {"X-Content-Type-Options": "nosniff"})

    # -- internal API (called by Gitaly's hooks) ---------------------------------

    def internal(self, method: str, endpoint: str) -> None:
        raw = self.body() if method == "POST" else b""
        params = self.params(raw)
        secret_param = params.get("secret_token")
        if not lab_eras.internal_api_authorized(
                self.release, dict(self.headers.items()), self.app["shell_secret"], _jwt_ok,
                secret_param if isinstance(secret_param, str) else None):
            # No component prints "rejected": Rails' trace is Grape's request log line.
            simconfig.log_json("gitlab-rails/api_json.log", lab_eras.api_log_record(
                401, method, f"/api/v4/internal/{endpoint}"))
            self.json(401, {"message": "401 Unauthorized"})
            return
        if method == "GET" and endpoint == "check":
            self.json(200, {"api_version": "v4", "gitlab_version": simconfig.SERVER_VERSION,
                            "gitlab_rev": "sim", "redis": True})
        elif method == "POST" and endpoint == "allowed":
            gl_repository = str(params.get("gl_repository", ""))
            project = self.projects.find(gl_repository.removeprefix("project-"))
            if project is None:
                self.json(404, {"status": False, "message":
                                "The project you were looking for could not be found."})
                return
            refused = api_repository.allowed_change_error(str(params.get("changes", "")),
                                                          self.root_ref(project))
            if refused:
                self.json(403, {"status": False, "message": refused})
                return
            self.json(200, {"status": True, "gl_repository": gl_repository,
                            "gl_project_path": project["path_with_namespace"],
                            "gl_id": "user-1", "gl_username": "root",
                            "git_config_options": [], "need_audit": False})
        elif method == "POST" and endpoint == "pre_receive":
            self.json(200, {"reference_counter_increased": True})
        elif method == "POST" and endpoint == "post_receive":
            self.json(200, {"reference_counter_decreased": True, "messages": []})
        else:
            self.json(404, {"message": "404 Not Found"})


class CreateFailed(Exception):
    """Project creation stopped with GitLab's answer for it."""

    def __init__(self, failure: lab_eras.ApiFailure) -> None:
        super().__init__(failure.body_text())
        self.failure = failure


def _jwt_ok(token: str, secret: str) -> bool:
    try:
        lab_auth.decode_shell_jwt(token, secret)
    except lab_auth.JWTError:
        return False
    return True


class Stopped(Exception):
    """SIGTERM: the serving loop ends at once."""


def _stop(*_: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is under way
    raise Stopped


def main() -> int:
    runtime = simconfig.read_runtime()
    Handler.app = runtime["app"]
    Handler.release = simconfig.release(runtime)
    Handler.storages = gitaly_client.storages(Handler.app, Handler.release)
    Handler.projects = Projects()
    Handler.tokens = Tokens()
    server = ThreadingHTTPServer(("0.0.0.0", Handler.app["port"]), Handler)
    server.daemon_threads = True
    log(f"listening on :{Handler.app['port']} as {Handler.app['external_url']} (GitLab "
        f"{runtime.get('version') or 'newest'}); storages "
        + ", ".join(f"{n}={s['address']}" for n, s in Handler.app["storages"].items()))
    serve_until_stopped(server)
    return 0


def serve_until_stopped(server: ThreadingHTTPServer) -> None:
    """Serve until SIGTERM.

    A reconfigure that restarts the web server waits for the old one to end. The loop
    would see socketserver's own shutdown() only at its next poll, so it used to poll
    every 20 ms: 50 wake-ups a second of every idle app node. The handler leaves the loop
    by raising instead, wherever the main thread is; the requests in flight end with the
    process, as they did."""
    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(Stopped):
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
