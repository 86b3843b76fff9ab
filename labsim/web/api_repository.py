"""The REST routes for Git data: users, repository files, tree, branches, commits, tags.

Paths, parameters, status codes, JSON fields and pagination headers follow GitLab's
lib/api (files.rb, repositories.rb, branches.rb, commits.rb, tags.rb, users.rb) and
its entities; every answer comes from the project's Gitaly through
gitaly_git_client. How a failed Gitaly call shows (see ``gitaly_failure``) follows
where GitLab rescues it: commit-making services turn Gitlab::Git::CommandError into
a 400 with its message; everything else reaches the API's catch-all, a plain 500.
The gRPC error itself goes to the app's log either way.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from lab.omnibus import eras as lab_eras
from labsim.common import simconfig
from labsim.gitaly import gitaly_client
from labsim.gitaly import gitaly_git_client as git

ROOT_USER = {"id": 1, "username": "root", "name": "Administrator", "state": "active",
             "locked": False, "avatar_url": None, "web_url": "", "created_at":
             "2020-01-01T00:00:00.000Z", "bio": "", "location": "", "public_email": None,
             "skype": "", "linkedin": "", "twitter": "", "website_url": "", "organization": "",
             "job_title": "", "bot": False, "email": "admin@example.com", "is_admin": True,
             "two_factor_enabled": False, "external": False, "private_profile": False}
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
ACTOR = git.User()


def log(message: str) -> None:
    simconfig.log("puma", message)


class ApiError(Exception):
    """An API answer other than success: status and GitLab's JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def not_found(what: str) -> ApiError:
    return ApiError(404, {"message": f"404 {what} Not Found"})


def bad_request(message: Any) -> ApiError:
    return ApiError(400, {"message": message})


def method_not_allowed() -> ApiError:
    return ApiError(405, {"message": "405 Method Not Allowed"})


def hooks_passed(response: Any) -> None:
    """The API's 400 when the hooks refused a ref-changing RPC (its ``pre_receive_error``)."""
    if response.pre_receive_error:
        raise bad_request(_pre_receive_message(response.pre_receive_error))


def missing(*names: str) -> ApiError:
    # Grape's validation answer: {"error": "a is missing, b is missing"}.
    return ApiError(400, {"error": ", ".join(f"{n} is missing" for n in names)})


def gitaly_failure(exc: gitaly_client.GitalyCallError, *, commit_service: bool) -> ApiError:
    """What the API answers for a failed Gitaly call.

    Gitlab::Git wraps GRPC::BadStatus into CommandError, whose message drops gRPC's
    " debug_error_string:..." tail ("7:permission denied."). Commits::CreateService
    (files, commits) rescues CommandError into a 400 with that message; elsewhere
    the exception reaches `rescue_from :all`, which answers 500 and logs it.
    """
    log(f"{'Gitlab::Git::CommandError' if commit_service else 'GRPC::BadStatus'} "
        f"({exc}): Gitaly call failed")
    if commit_service:
        return bad_request(f"{exc}.")
    return ApiError(500, {"message": lab_eras.API_INTERNAL_ERROR})


# -- entities -----------------------------------------------------------------------


def _time(ts: Any, zone: bytes | str = b"") -> str:
    """Rails' JSON time: milliseconds and the commit's own offset."""
    text = zone.decode() if isinstance(zone, bytes) else zone
    offset = datetime.timedelta(0)
    if len(text) == 5 and text[0] in "+-" and text[1:].isdigit():
        sign = 1 if text[0] == "+" else -1
        offset = sign * datetime.timedelta(hours=int(text[1:3]), minutes=int(text[3:]))
    moment = datetime.datetime.fromtimestamp(ts.seconds, datetime.timezone(offset))
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.000")
    if not offset:
        return stamp + "Z"
    tz = moment.strftime("%z")
    return f"{stamp}{tz[:3]}:{tz[3:]}"


def _zone(author: Any) -> bytes:
    return bytes(author.timezone)


def commit_json(commit: Any, web_url: str) -> dict[str, Any]:
    """API::Entities::Commit."""
    message = commit.body.decode(errors="replace")
    committed = _time(commit.committer.date, _zone(commit.committer))
    return {
        "id": commit.id, "short_id": commit.id[:8], "created_at": committed,
        "parent_ids": list(commit.parent_ids),
        "title": commit.subject.decode(errors="replace"), "message": message,
        "author_name": commit.author.name.decode(errors="replace"),
        "author_email": commit.author.email.decode(errors="replace"),
        "authored_date": _time(commit.author.date, _zone(commit.author)),
        "committer_name": commit.committer.name.decode(errors="replace"),
        "committer_email": commit.committer.email.decode(errors="replace"),
        "committed_date": committed, "trailers": {}, "extended_trailers": {},
        "web_url": f"{web_url}/-/commit/{commit.id}",
    }


def commit_detail_json(repo: git.Repository, commit: Any, project: dict[str, Any],
                       web_url: str, *, stats: bool = True) -> dict[str, Any]:
    """API::Entities::CommitDetail: the commit plus stats, status and pipeline."""
    data = commit_json(commit, web_url)
    if stats:
        additions, deletions = repo.commit_stats(commit.id)
        data["stats"] = {"additions": additions, "deletions": deletions,
                         "total": additions + deletions}
    data.update({"status": None, "project_id": project["id"], "last_pipeline": None})
    return data


# -- the request ----------------------------------------------------------------------


class Request:
    """One API call under /projects/:id/repository/, /users or PUT /projects/:id."""

    def __init__(self, handler: Any, method: str, params: dict[str, Any]) -> None:
        self.handler = handler
        self.method = method
        self.params = params
        self.base_url: str = handler.app["external_url"]

    # -- answers ------------------------------------------------------------------

    def json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.handler.send(status, json.dumps(data).encode(), "application/json", headers)

    def no_content(self) -> None:
        self.handler.send(204, b"", "application/json")

    def page(self, items: list[Any], path_params: dict[str, str], *,
             totals: bool = True) -> tuple[list[Any], dict[str, str]]:
        """Kaminari's page of ``items`` and GitLab's offset pagination headers
        (Gitlab::Pagination::OffsetHeaderBuilder). Without totals (commits), the
        next page exists when this one is full, and Link has no rel="last"."""
        page = _positive(self.params.get("page"), 1)
        per_page = min(_positive(self.params.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
        start = (page - 1) * per_page
        chunk = items[start:start + per_page] if totals else items
        total = len(items)
        total_pages = max(1, -(-total // per_page))
        if totals:
            next_page = page + 1 if page < total_pages else None
        else:
            next_page = page + 1 if len(items) == per_page else None
        prev_page = page - 1 if page > 1 else None
        query = {k: str(v) for k, v in self.params.items()
                 if k not in ("page", "per_page") and isinstance(v, str | int)}
        query.update(path_params)

        def href(number: int) -> str:
            args = {**query, "page": str(number), "per_page": str(per_page)}
            return (f"{self.base_url}{urllib.parse.urlsplit(self.handler.path).path}?"
                    + urllib.parse.urlencode(sorted(args.items())))

        links = []
        if prev_page:
            links.append(f'<{href(prev_page)}>; rel="prev"')
        if next_page:
            links.append(f'<{href(next_page)}>; rel="next"')
        links.append(f'<{href(1)}>; rel="first"')
        if totals:
            links.append(f'<{href(total_pages)}>; rel="last"')
        headers = {"X-Per-Page": str(per_page), "X-Page": str(page),
                   "X-Next-Page": str(next_page or ""), "X-Prev-Page": str(prev_page or ""),
                   "Link": ", ".join(links)}
        if totals:
            headers.update({"X-Total": str(total), "X-Total-Pages": str(total_pages)})
        return chunk, headers


def _positive(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# -- routing ------------------------------------------------------------------------

Route = Callable[["Request", list[str]], None]


def route(handler: Any, method: str, parts: list[str], params: dict[str, Any]) -> bool:
    """Answer the call if it is one of these routes; False to let the caller go on.
    ``parts`` are the path's segments, still percent-encoded."""
    req = Request(handler, method, params)
    try:
        if parts[0] == "users" and method == "GET":
            users(req, parts[1:])
        elif parts == ["application", "settings"] and method in ("GET", "PUT"):
            application_settings(req)
        elif parts[0] == "projects" and len(parts) == 2 and method == "PUT":
            update_project(req, urllib.parse.unquote(parts[1]))
        elif parts[0] == "projects" and len(parts) >= 4 and parts[2] == "repository":
            repository(req, urllib.parse.unquote(parts[1]), parts[3:])
        else:
            return False
    except ApiError as exc:
        req.json(exc.status, exc.body)
    return True


def users(req: Request, rest: list[str]) -> None:
    user = {**ROOT_USER, "web_url": f"{req.base_url}/root"}
    if not rest:
        # The filters python-gitlab scripts use; the sim has only root.
        wanted = [user]
        if req.params.get("username") not in (None, "root"):
            wanted = []
        search = str(req.params.get("search") or "").lower()
        if search and search not in "root administrator admin@example.com":
            wanted = []
        chunk, headers = req.page(wanted, {})
        req.json(200, chunk, headers)
    elif len(rest) == 1 and rest[0] in ("1", ):
        req.json(200, user)
    else:
        raise not_found("User")


def application_settings(req: Request) -> None:
    """GET/PUT /application/settings (lib/api/settings.rb, ``authenticated_as_admin!``;
    every token the sim knows is root's, an admin) for the one setting the sim keeps:
    ``repository_storages``, the storages new projects are placed on. The answer is the
    entity's ``id`` and that field."""
    store = req.handler.projects
    if req.method == "PUT":
        names = req.params.get("repository_storages", req.params.get("repository_storages[]"))
        if names is None:
            raise ApiError(400, {"error": "repository_storages is missing, at least one "
                                          "parameter must be provided"})
        if isinstance(names, str) and "repository_storages[]" in req.params:
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ApiError(400, {"error": "repository_storages is invalid"})
        # ApplicationSetting: validates presence, check_repository_storages (known names).
        unknown = [n for n in names if n not in req.handler.storages]
        if not names:
            raise ApiError(400, {"message": {"repository_storages": ["can't be blank"]}})
        if unknown:
            raise ApiError(400, {"message": {"repository_storages": [
                "can't include: " + ", ".join(unknown)]}})
        store.set_repository_storages(names)
    req.json(200, {"id": 1, "repository_storages": store.repository_storages()})


def update_project(req: Request, ref: str) -> None:
    """PUT /projects/:id for the attributes the sim keeps. ``repository_storage`` (an
    admin's attribute; root is the admin) schedules a storage move: the answer is the
    project as it is, the move runs afterwards (move_storage) like GitLab's worker."""
    handler = req.handler
    project = handler.projects.find(ref)
    if project is None:
        raise not_found("Project")
    changes: dict[str, Any] = {}
    for key in ("name", "description", "default_branch"):
        if key in req.params:
            changes[key] = str(req.params[key])
    # CE before release.CE_API_REPOSITORY_STORAGE drops the parameter
    # (eras.API_REPOSITORY_STORAGE).
    storage = (req.params.get("repository_storage")
               if lab_eras.api_takes_repository_storage(handler.release) else None)
    if not changes and storage is None:
        raise ApiError(400, {"error": "name, default_branch, description, repository_storage"
                                      " are missing, at least one parameter must be provided"})
    if storage is not None and str(storage) not in handler.storages:
        # Project#change_repository_storage raises ArgumentError, which no one rescues.
        log(f"ArgumentError (unknown repository storage {storage!r}) on PUT project")
        raise ApiError(500, {"message": lab_eras.API_INTERNAL_ERROR})
    updated = handler.projects.update(project["id"], changes) if changes else project
    if storage is not None and str(storage) != project["repository_storage"]:
        threading.Thread(target=move_storage, args=(handler, project, str(storage)),
                         daemon=True).start()
    handler.json(200, handler.project_json(updated))


def move_storage(handler: Any, project: dict[str, Any], destination: str) -> None:
    """Projects::UpdateRepositoryStorageService: replicate to the destination, switch
    the project over, remove the source copy. A failure leaves the project where it
    was and is only logged (GitLab marks the move failed)."""
    source = project["repository_storage"]
    try:
        git.replicate(handler.storages[destination], handler.storages[source],
                      project["disk_path"])
        handler.projects.update(project["id"], {"repository_storage": destination})
        git.remove(handler.storages[source], project["disk_path"])
    except gitaly_client.GitalyCallError as exc:
        log(f"repository storage move of {project['path_with_namespace']} from {source} to "
            f"{destination} failed: {exc}")
        return
    log(f"repository storage move of {project['path_with_namespace']} from {source} to "
        f"{destination} finished")


def repository(req: Request, ref: str, rest: list[str]) -> None:
    handler = req.handler
    project = handler.projects.find(ref)
    if project is None:
        raise not_found("Project")
    storage = handler.storages[project["repository_storage"]]
    repo = git.Repository(storage, project["disk_path"], f"project-{project['id']}",
                          project["path_with_namespace"])
    web_url = f"{req.base_url}/{project['path_with_namespace']}"
    ctx = Context(req, project, repo, web_url)
    kind, tail = rest[0], rest[1:]
    routes: dict[str, Route] = {"files": ctx.files, "tree": ctx.tree, "branches": ctx.branches,
                                "commits": ctx.commits, "tags": ctx.tags}
    action = routes.get(kind)
    if action is None:
        raise ApiError(404, {"message": "404 Not Found"})
    try:
        action(req, tail)
    except gitaly_client.GitalyCallError as exc:
        writes = req.method != "GET" and kind in ("files", "commits")
        raise gitaly_failure(exc, commit_service=writes) from exc


class Context:
    def __init__(self, req: Request, project: dict[str, Any], repo: git.Repository,
                 web_url: str) -> None:
        self.req = req
        self.project = project
        self.repo = repo
        self.web_url = web_url
        self.path_params = {"id": str(project["id"])}

    def default_branch(self) -> str:
        """The project's default branch; "main" stands in while the repository has no
        branch, where the refs it names don't exist either way."""
        return self.req.handler.root_ref(self.project) or "main"

    # -- files --------------------------------------------------------------------

    def files(self, req: Request, tail: list[str]) -> None:
        if not tail:
            raise ApiError(404, {"message": "404 Not Found"})
        raw = tail[-1] == "raw" and len(tail) > 1
        file_path = urllib.parse.unquote("/".join(tail[:-1] if raw else tail))
        if req.method == "GET":
            self.get_file(req, file_path, raw=raw)
        elif req.method in ("POST", "PUT", "DELETE") and not raw:
            self.write_file(req, file_path)
        else:
            raise method_not_allowed()

    def get_file(self, req: Request, file_path: str, *, raw: bool) -> None:
        ref = req.params.get("ref")
        if not ref and not raw:
            raise missing("ref")
        ref = str(ref or self.default_branch())
        commit = self.repo.find_commit(ref)
        if commit is None:
            raise not_found("Commit")
        found = self.repo.tree_entry(commit.id, file_path)
        if found is None or found[0].type != 1:  # TreeEntryResponse.BLOB
            raise not_found("File")
        entry, data = found
        last = self.repo.last_commit_for_path(commit.id, file_path)
        info = {
            "file_name": file_path.rsplit("/", 1)[-1], "file_path": file_path,
            "size": entry.size, "encoding": "base64",
            "content_sha256": hashlib.sha256(data).hexdigest(), "ref": ref,
            "blob_id": entry.oid, "commit_id": commit.id,
            "last_commit_id": last.id if last is not None else commit.id,
            "execute_filemode": entry.mode == 0o100755,
        }
        headers = {f"X-Gitlab-{key.title().replace('_', '-')}": str(value).lower()
                   if isinstance(value, bool) else str(value)
                   for key, value in info.items() if key != "encoding"}
        headers["X-Gitlab-Encoding"] = "base64"
        if raw:
            req.handler.send(200, data, "text/plain; charset=utf-8", headers)
            return
        req.json(200, {**info, "content": base64.b64encode(data).decode()}, headers)

    def write_file(self, req: Request, file_path: str) -> None:
        p = req.params
        needed = ["branch", "commit_message"] + (["content"] if req.method != "DELETE" else [])
        absent = [n for n in needed if p.get(n) in (None, "")]
        if absent:
            raise missing(*absent)
        encoding = str(p.get("encoding") or "text")
        if encoding not in ("text", "base64"):
            raise ApiError(400, {"error": "encoding does not have a valid value"})
        action = {"POST": "create", "PUT": "update", "DELETE": "delete"}[req.method]
        content = str(p.get("content") or "").encode()
        if encoding == "base64":
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request("Invalid base64") from exc
        self.commit_actions(
            branch=str(p["branch"]), message=str(p["commit_message"]),
            start_branch=str(p.get("start_branch") or ""),
            author_name=str(p.get("author_name") or ""),
            author_email=str(p.get("author_email") or ""),
            actions=[{"action": action, "file_path": file_path, "content": content,
                      "base64": encoding == "base64",
                      "execute_filemode": _truthy(p.get("execute_filemode"))}])
        if req.method == "DELETE":
            req.no_content()
        else:
            req.json(201 if req.method == "POST" else 200,
                     {"file_path": file_path, "branch": str(p["branch"])})

    def commit_actions(self, *, branch: str, message: str, actions: list[dict[str, Any]],
                       start_branch: str = "", start_sha: str = "", author_name: str = "",
                       author_email: str = "", force: bool = False) -> str:
        """Commits::CreateService's checks, then UserCommitFiles; the new commit's id."""
        start = start_branch or branch
        different = start != branch or bool(start_sha)
        names = [name for name, _ in self.repo.branches()]
        empty = not names
        if start_sha and start_branch:
            raise bad_request("You can't pass both start_branch and start_sha")
        if not start_sha and not empty and start not in names:
            raise bad_request("You can only create or edit files when you are on a branch")
        if not empty and different and branch in names and not force:
            raise bad_request(f"A branch called '{branch}' already exists. Switch to that "
                              "branch in order to make changes")
        response = self.repo.commit_files(
            ACTOR, branch=branch, message=message, actions=actions,
            start_branch=start if not start_sha else "", start_sha=start_sha,
            author_name=author_name, author_email=author_email, force=force)
        hooks_passed(response)
        if response.index_error:
            raise bad_request(response.index_error)
        return str(response.branch_update.commit_id)

    # -- tree ---------------------------------------------------------------------

    def tree(self, req: Request, tail: list[str]) -> None:
        if tail or req.method != "GET":
            raise ApiError(404, {"message": "404 Not Found"})
        ref = str(req.params.get("ref") or self.default_branch())
        path = str(req.params.get("path") or "")
        commit = self.repo.find_commit(ref)
        entries = self.repo.tree_entries(commit.id, path, _truthy(req.params.get("recursive"))) \
            if commit is not None else None
        if entries is None:
            raise not_found("Tree")
        kinds = {0: "blob", 1: "tree", 3: "commit"}
        items = [{"id": e.oid, "name": e.path.decode(errors="replace").rsplit("/", 1)[-1],
                  "type": kinds.get(e.type, "blob"), "path": e.path.decode(errors="replace"),
                  "mode": f"{e.mode:06o}"} for e in entries]
        # GitLab lists trees first, then blobs, then submodules, each by name.
        order = {"tree": 0, "blob": 1, "commit": 2}
        items.sort(key=lambda i: (order[i["type"]], i["path"]))
        chunk, headers = req.page(items, self.path_params)
        req.json(200, chunk, headers)

    # -- branches -----------------------------------------------------------------

    def branch_json(self, name: str, target: Any, merged: set[str]) -> dict[str, Any]:
        """API::Entities::Branch; the default branch is protected as GitLab's default
        branch protection ("fully protected") sets it up on the first push."""
        default = name == self.default_branch()
        return {"name": name, "commit": commit_json(target, self.web_url),
                "merged": name in merged, "protected": default,
                "developers_can_push": False, "developers_can_merge": False,
                "can_push": True, "default": default,
                "web_url": f"{self.web_url}/-/tree/{urllib.parse.quote(name)}"}

    def merged(self, branches: list[tuple[str, Any]]) -> set[str]:
        # Repository#merged_branch_names leaves out branches identical to the root ref.
        tips = dict(branches)
        root = tips.get(self.default_branch())
        if root is None:
            return set()
        merged = self.repo.merged_branches([n for n, t in branches if t.id != root.id])
        return {n for n in merged if n in tips and tips[n].id != root.id}

    def branches(self, req: Request, tail: list[str]) -> None:
        if not tail and req.method == "GET":
            branches = sorted(self.repo.branches(), key=lambda b: b[0])
            search = str(req.params.get("search") or "")
            if search:
                branches = [b for b in branches if search.lower() in b[0].lower()]
            merged = self.merged(branches)
            chunk, headers = req.page(branches, self.path_params)
            req.json(200, [self.branch_json(n, t, merged) for n, t in chunk], headers)
        elif not tail and req.method == "POST":
            self.create_branch(req)
        elif tail:
            name = urllib.parse.unquote("/".join(tail))
            branch = self.repo.find_branch(name)
            if branch is None:
                raise not_found("Branch")
            if req.method == "GET":
                target = branch.target_commit
                req.json(200, self.branch_json(name, target, self.merged(
                    [(name, target), *self.default_tip()])))
            elif req.method == "DELETE":
                hooks_passed(self.repo.delete_branch(ACTOR, name))
                req.no_content()
            else:
                raise method_not_allowed()
        else:
            raise method_not_allowed()

    def default_tip(self) -> list[tuple[str, Any]]:
        branch = self.repo.find_branch(self.default_branch())
        return [(self.default_branch(), branch.target_commit)] if branch is not None else []

    def create_branch(self, req: Request) -> None:
        absent = [n for n in ("branch", "ref") if not req.params.get(n)]
        if absent:
            raise missing(*absent)
        name, ref = str(req.params["branch"]), str(req.params["ref"])
        if self.repo.find_branch(name) is not None:
            raise bad_request("Branch already exists")
        if self.repo.find_commit(ref) is None:
            raise bad_request(f"Invalid reference name: {ref}")
        try:
            response = self.repo.create_branch(ACTOR, name, ref)
        except gitaly_client.GitalyCallError as exc:
            if exc.code.value[0] == 3:  # InvalidArgument: Gitaly refused the name
                raise bad_request("Branch name is invalid") from exc
            raise
        hooks_passed(response)
        target = response.branch.target_commit
        req.json(201, self.branch_json(name, target, self.merged(
            [(name, target), *self.default_tip()])))

    # -- commits ------------------------------------------------------------------

    def commits(self, req: Request, tail: list[str]) -> None:
        if not tail and req.method == "GET":
            page = _positive(req.params.get("page"), 1)
            per_page = min(_positive(req.params.get("per_page"), DEFAULT_PER_PAGE),
                           MAX_PER_PAGE)
            all_refs = _truthy(req.params.get("all"))
            ref = str(req.params.get("ref_name") or self.default_branch())
            path = str(req.params.get("path") or "")
            # commits.rb loads one page (FindCommits with limit and offset) and tells
            # Kaminari one more commit exists, so a full page always has a next one.
            found = self.repo.find_commits("" if all_refs else ref, limit=per_page,
                                           offset=(page - 1) * per_page,
                                           paths=[path] if path else [], all_refs=all_refs)
            chunk, headers = req.page(found, self.path_params, totals=False)
            req.json(200, [commit_json(c, self.web_url) for c in chunk], headers)
        elif not tail and req.method == "POST":
            self.create_commit(req)
        elif len(tail) == 1 and req.method == "GET":
            sha = urllib.parse.unquote(tail[0])
            commit = self.repo.find_commit(sha)
            if commit is None:
                raise not_found("Commit")
            stats = str(req.params.get("stats", "true")).lower() != "false"
            req.json(200, commit_detail_json(self.repo, commit, self.project, self.web_url,
                                             stats=stats))
        else:
            raise ApiError(404, {"message": "404 Not Found"})

    def create_commit(self, req: Request) -> None:
        p = req.params
        absent = [n for n in ("branch", "commit_message", "actions") if not p.get(n)]
        if absent:
            raise missing(*absent)
        actions = p["actions"]
        if not isinstance(actions, list):
            raise ApiError(400, {"error": "actions is invalid"})
        converted = []
        for i, action in enumerate(actions):
            if not isinstance(action, dict) or git.action_type(str(action.get("action"))) \
                    is None:
                raise ApiError(400, {"error": f"actions[{i}][action] does not have a valid "
                                              "value"})
            if not action.get("file_path"):
                raise ApiError(400, {"error": f"actions[{i}][file_path] is missing"})
            encoding = str(action.get("encoding") or "text")
            converted.append({
                "action": str(action["action"]), "file_path": str(action["file_path"]),
                "previous_path": str(action.get("previous_path") or ""),
                "content": str(action.get("content") or "").encode(),
                "base64": encoding == "base64",
                "execute_filemode": _truthy(action.get("execute_filemode")),
                # A move without content keeps the file's content (infer_content).
                "infer_content": action["action"] == "move" and action.get("content") is None,
            })
        sha = self.commit_actions(
            branch=str(p["branch"]), message=str(p["commit_message"]), actions=converted,
            start_branch=str(p.get("start_branch") or ""),
            start_sha=str(p.get("start_sha") or ""),
            author_name=str(p.get("author_name") or ""),
            author_email=str(p.get("author_email") or ""), force=_truthy(p.get("force")))
        commit = self.repo.find_commit(sha)
        req.json(201, commit_detail_json(self.repo, commit, self.project, self.web_url))

    # -- tags ---------------------------------------------------------------------

    def tag_json(self, tag: Any) -> dict[str, Any]:
        """API::Entities::Tag."""
        annotated = tag.HasField("tagger") and tag.tagger.name
        return {"name": tag.name.decode(errors="replace"),
                "message": tag.message.decode(errors="replace"), "target": tag.id,
                "commit": commit_json(tag.target_commit, self.web_url)
                if tag.HasField("target_commit") else None,
                "release": None, "protected": False,
                "created_at": _time(tag.tagger.date, _zone(tag.tagger)) if annotated else None}

    def tags(self, req: Request, tail: list[str]) -> None:
        if not tail and req.method == "GET":
            # GitLab's default order is by last update, newest first.
            tags = sorted(self.repo.tags(), key=lambda t: t.target_commit.committer.date.seconds,
                          reverse=True)
            chunk, headers = req.page(tags, self.path_params)
            req.json(200, [self.tag_json(t) for t in chunk], headers)
        elif not tail and req.method == "POST":
            absent = [n for n in ("tag_name", "ref") if not req.params.get(n)]
            if absent:
                raise missing(*absent)
            name, ref = str(req.params["tag_name"]), str(req.params["ref"])
            if self.repo.find_commit(ref) is None:
                raise bad_request(f"Target {ref} is invalid")
            response = self.repo.create_tag(ACTOR, name, ref, str(req.params.get("message") or ""))
            if response.exists:
                raise bad_request(f"Tag {name} already exists")
            hooks_passed(response)
            req.json(201, self.tag_json(response.tag))
        elif tail:
            name = urllib.parse.unquote("/".join(tail))
            tag = next((t for t in self.repo.tags() if t.name.decode() == name), None)
            if tag is None:
                raise not_found("Tag")
            if req.method == "GET":
                req.json(200, self.tag_json(tag))
            elif req.method == "DELETE":
                hooks_passed(self.repo.delete_tag(ACTOR, name))
                req.no_content()
            else:
                raise method_not_allowed()
        else:
            raise method_not_allowed()


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes") if value is not None else False


def _pre_receive_message(raw: str) -> str:
    """Gitlab::Git::PreReceiveError: the lines the hook marked with "GitLab:" (or
    "GL-HOOK-ERR:"), prefix removed; the whole text when none is marked."""
    lines = []
    for line in raw.splitlines():
        for prefix in ("GitLab:", "GL-HOOK-ERR:"):
            if line.strip().startswith(prefix):
                lines.append(line.strip()[len(prefix):].strip())
    return "\n".join(lines) or raw.strip()


def allowed_change_error(changes: str, default_branch: str | None) -> str | None:
    """Gitlab::Checks::BranchCheck's refusal of a change the internal API is asked to
    allow, or None. Only the check the sim's API can trigger is kept: deleting the
    default branch."""
    for line in changes.splitlines():
        fields = line.split()
        if default_branch and len(fields) == 3 and fields[1] == "0" * 40 \
                and fields[2] == f"refs/heads/{default_branch}":
            return "The default branch of a project cannot be deleted."
    return None
