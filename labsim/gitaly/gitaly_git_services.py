"""The sim Gitaly's repository RPCs: CommitService, RefService and OperationService.

Gitaly's own service, method and message names (commit.proto, ref.proto,
operations.proto), answered with real git on the storage's bare repository.
Errors use the codes Gitaly returns for the same case (NotFound for a missing
tree entry, InvalidArgument for a revision starting with '-', ...). Operations
that move a ref run the repository's pre-receive and post-receive hooks, as
Gitaly's User* RPCs do, so a push and an API commit pass the same internal API.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from lab.gitalypb import (
    commit_pb2,
    commit_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    ref_pb2,
    ref_pb2_grpc,
    shared_pb2,
)
from labsim.common import simconfig
from labsim.gitaly.servicer_context import Context

ZERO_OID = "0" * 40
#: Gitaly streams entries and commits in batches; the size only shapes the stream.
BATCH = 20
#: git log fields, separated by unit separators; the message comes last.
_LOG_FORMAT = "%H%x1f%P%x1f%an%x1f%ae%x1f%ad%x1f%cn%x1f%ce%x1f%cd%x1f%B%x1e"
_KIND = {"blob": commit_pb2.TreeEntry.BLOB, "tree": commit_pb2.TreeEntry.TREE,
         "commit": commit_pb2.TreeEntry.COMMIT}
_TREE_ENTRY_TYPE = {"commit": commit_pb2.TreeEntryResponse.COMMIT,
                    "blob": commit_pb2.TreeEntryResponse.BLOB,
                    "tree": commit_pb2.TreeEntryResponse.TREE,
                    "tag": commit_pb2.TreeEntryResponse.TAG}


def log(message: str) -> None:
    simconfig.log("gitaly", message)


@dataclass
class Repo:
    """One bare repository, with git run in it the way the sim's Gitaly runs git."""

    path: str
    env: dict[str, str]

    def git(self, *args: str, data: bytes | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", "-C", self.path, *args], input=data,
                              capture_output=True, env={**self.env, **(extra_env or {})},
                              check=False)

    def out(self, *args: str, data: bytes | None = None,
            extra_env: dict[str, str] | None = None) -> bytes:
        proc = self.git(*args, data=data, extra_env=extra_env)
        if proc.returncode != 0:
            raise GitFailed(proc.stderr.decode(errors="replace").strip())
        return proc.stdout

    def resolve(self, revision: str, kind: str = "commit") -> str | None:
        proc = self.git("rev-parse", "--verify", "--quiet", "--end-of-options",
                        f"{revision}^{{{kind}}}")
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def commits(self, *args: str) -> list[Any]:
        """GitCommit messages for a ``git log`` selection."""
        raw = self.out("log", f"--format={_LOG_FORMAT}", "--date=raw", *args)
        return [_git_commit(record) for record in raw.split(b"\x1e")
                if record.strip(b"\n")]

    def commit(self, revision: str) -> Any | None:
        oid = self.resolve(revision)
        if oid is None:
            return None
        found = self.commits("-1", oid, "--")
        return found[0] if found else None


class GitFailed(Exception):
    pass


def _author(name: bytes, email: bytes, raw_date: bytes) -> Any:
    seconds, _, zone = raw_date.decode().partition(" ")
    return shared_pb2.CommitAuthor(name=name, email=email, timezone=zone.encode(),
                                   date=timestamp_pb2.Timestamp(seconds=int(seconds or 0)))


def _git_commit(record: bytes) -> Any:
    fields = record.lstrip(b"\n").split(b"\x1f")
    oid, parents, an, ae, ad, cn, ce, cd, message = fields[:9]
    return shared_pb2.GitCommit(
        id=oid.decode(), subject=message.split(b"\n", 1)[0], body=message,
        body_size=len(message), author=_author(an, ae, ad), committer=_author(cn, ce, cd),
        parent_ids=parents.decode().split())


def _batches(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
    if not items:
        yield []


def _check_revision(revision: bytes, context: Context) -> str:
    text = revision.decode(errors="replace")
    if text.startswith("-"):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "revision can't start with '-'")
    return text


def _timestamp_arg(name: str, ts: Any, message: Any) -> list[str]:
    return [f"--{name}=@{ts.seconds}"] if message.HasField(name) else []


class GitServices(commit_pb2_grpc.CommitServiceServicer, ref_pb2_grpc.RefServiceServicer,
                  operations_pb2_grpc.OperationServiceServicer):
    """The three services on the sim Gitaly's auth and storage lookup (gitaly_server.Gitaly).
    RPC methods carry Gitaly's names; the others answer UNIMPLEMENTED, as generated."""

    def __init__(self, gitaly: Any, hooks_dir: str) -> None:
        self.gitaly = gitaly
        self.hooks_dir = hooks_dir

    def open(self, method: str, repository: Any, context: Context) -> Repo:
        self.gitaly.authorize(context, method)
        return Repo(self.gitaly.repo_path(repository, context), self.gitaly.git_env(""))

    # -- CommitService -----------------------------------------------------------

    def TreeEntry(self, request: Any, context: Context) -> Iterator[Any]:
        repo = self.open("TreeEntry", request.repository, context)
        revision = _check_revision(request.revision, context)
        path = request.path.decode().strip("/")
        found = self._ls_tree(repo, revision, path, context)
        if not found:
            context.abort(grpc.StatusCode.NOT_FOUND, "tree entry not found")
        mode, kind, oid, _ = found[0]
        if kind == "tree":
            # Gitaly answers a tree with its type and id and no data.
            yield commit_pb2.TreeEntryResponse(type=_TREE_ENTRY_TYPE[kind], oid=oid,
                                               mode=int(mode, 8))
            return
        data = repo.out("cat-file", "blob", oid)
        size = len(data)
        if request.limit > 0:
            data = data[:request.limit]
        first = True
        for chunk in simconfig.chunks(data):
            if first:
                yield commit_pb2.TreeEntryResponse(type=_TREE_ENTRY_TYPE[kind], oid=oid,
                                                   size=size, mode=int(mode, 8), data=chunk)
                first = False
            else:
                yield commit_pb2.TreeEntryResponse(data=chunk)

    @staticmethod
    def _ls_tree(repo: Repo, revision: str, path: str, context: Context,
                 *, children: bool = False, recursive: bool = False
                 ) -> list[tuple[str, str, str, str]]:
        commit = repo.resolve(revision)
        if commit is None:
            return []
        args = ["ls-tree", "-z", "--full-tree"]
        if recursive:
            args += ["-r", "-t"]
        target = f"{path}/" if children and path else path
        args += [commit, "--", target] if target else [commit]
        proc = repo.git(*args)
        if proc.returncode != 0:
            return []
        entries = []
        for item in proc.stdout.split(b"\0"):
            if not item:
                continue
            meta, _, name = item.partition(b"\t")
            mode, kind, oid = meta.decode().split()
            entries.append((mode, kind, oid, name.decode(errors="replace")))
        if recursive and path:
            entries = [e for e in entries if e[3] != path]
        return entries

    def GetTreeEntries(self, request: Any, context: Context) -> Iterator[Any]:
        repo = self.open("GetTreeEntries", request.repository, context)
        revision = _check_revision(request.revision, context)
        commit = repo.resolve(revision)
        if commit is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "invalid revision or path")
        path = request.path.decode().strip("/")
        if path in ("", "."):
            path = ""
        elif not self._ls_tree(repo, commit, path, context):
            context.abort(grpc.StatusCode.NOT_FOUND, "invalid revision or path")
        root_tree = repo.out("rev-parse", f"{commit}^{{tree}}").decode().strip()
        entries = [commit_pb2.TreeEntry(oid=oid, root_oid=root_tree, path=name.encode(),
                                        flat_path=name.encode(),
                                        type=_KIND.get(kind, commit_pb2.TreeEntry.BLOB),
                                        mode=int(mode, 8), commit_oid=commit)
                   for mode, kind, oid, name in self._ls_tree(
                       repo, commit, path, context, children=True, recursive=request.recursive)]
        for batch in _batches(entries):
            yield commit_pb2.GetTreeEntriesResponse(entries=batch)

    def FindCommit(self, request: Any, context: Context) -> Any:
        repo = self.open("FindCommit", request.repository, context)
        revision = _check_revision(request.revision, context)
        if not revision:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty revision")
        return commit_pb2.FindCommitResponse(commit=repo.commit(revision))

    def FindCommits(self, request: Any, context: Context) -> Iterator[Any]:
        repo = self.open("FindCommits", request.repository, context)
        revision = _check_revision(request.revision, context)
        args: list[str] = []
        if request.limit > 0:
            args.append(f"--max-count={request.limit}")
        if request.offset > 0:
            args.append(f"--skip={request.offset}")
        if request.skip_merges:
            args.append("--no-merges")
        args += _timestamp_arg("after", request.after, request)
        args += _timestamp_arg("before", request.before, request)
        if request.all:
            args.append("--all")
        else:
            target = revision or "HEAD"
            if repo.resolve(target) is None:
                # Gitaly: an unknown revision is an empty result, not an error.
                yield commit_pb2.FindCommitsResponse()
                return
            args.append(target)
        args.append("--")
        args += [p.decode() for p in request.paths]
        for batch in _batches(repo.commits(*args)):
            yield commit_pb2.FindCommitsResponse(commits=batch)

    def CountCommits(self, request: Any, context: Context) -> Any:
        repo = self.open("CountCommits", request.repository, context)
        revision = _check_revision(request.revision, context)
        args = ["rev-list", "--count"]
        if request.max_count > 0:
            args.append(f"--max-count={request.max_count}")
        args += _timestamp_arg("after", request.after, request)
        args += _timestamp_arg("before", request.before, request)
        if request.all:
            args.append("--all")
        elif repo.resolve(revision or "HEAD") is None:
            return commit_pb2.CountCommitsResponse(count=0)
        else:
            args.append(revision or "HEAD")
        args.append("--")
        if request.path:
            args.append(request.path.decode())
        return commit_pb2.CountCommitsResponse(count=int(repo.out(*args).decode().strip()))

    def CommitStats(self, request: Any, context: Context) -> Any:
        repo = self.open("CommitStats", request.repository, context)
        oid = repo.resolve(_check_revision(request.revision, context))
        if oid is None:
            context.abort(grpc.StatusCode.INTERNAL,
                          f"object not found: {request.revision.decode()}")
        raw = repo.out("diff-tree", "--root", "--no-commit-id", "--numstat", "-r", oid)
        additions = deletions = 0
        for line in raw.decode(errors="replace").splitlines():
            added, deleted, _ = line.split("\t", 2)
            additions += int(added) if added.isdigit() else 0
            deletions += int(deleted) if deleted.isdigit() else 0
        return commit_pb2.CommitStatsResponse(oid=oid, additions=additions, deletions=deletions)

    # -- RefService --------------------------------------------------------------

    def _refs(self, repo: Repo, prefix: str) -> list[tuple[str, str, str, str]]:
        """(name, object id, object type, peeled id) of each ref under ``prefix``."""
        raw = repo.out("for-each-ref", "--sort=refname",
                       "--format=%(refname)%1f%(objectname)%1f%(objecttype)%1f%(*objectname)",
                       prefix)
        refs = []
        for line in raw.decode().splitlines():
            name, oid, kind, peeled = line.split("\x1f")
            refs.append((name.removeprefix(prefix), oid, kind, peeled))
        return refs

    def _commit_map(self, repo: Repo, oids: Iterable[str]) -> dict[str, Any]:
        wanted = sorted(set(oids))
        if not wanted:
            return {}
        return {c.id: c for c in repo.commits("--no-walk=unsorted", *wanted, "--")}

    def FindAllBranches(self, request: Any, context: Context) -> Iterator[Any]:
        repo = self.open("FindAllBranches", request.repository, context)
        refs = self._refs(repo, "refs/heads/")
        if request.merged_only:
            # Gitaly: branches whose tip is reachable from HEAD, among merged_branches if given.
            wanted = {b.decode().removeprefix("refs/heads/") for b in request.merged_branches}
            refs = [r for r in refs if (not wanted or r[0] in wanted) and repo.git(
                "merge-base", "--is-ancestor", r[1], "HEAD").returncode == 0]
        commits = self._commit_map(repo, (oid for _, oid, _, _ in refs))
        # Gitaly names branches here by their full ref name.
        branches = [ref_pb2.FindAllBranchesResponse.Branch(
            name=f"refs/heads/{name}".encode(), target=commits.get(oid))
            for name, oid, _, _ in refs]
        for batch in _batches(branches):
            yield ref_pb2.FindAllBranchesResponse(branches=batch)

    def FindBranch(self, request: Any, context: Context) -> Any:
        repo = self.open("FindBranch", request.repository, context)
        name = request.name.decode().removeprefix("refs/heads/")
        if not name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Branch name cannot be empty")
        oid = repo.resolve(f"refs/heads/{name}")
        if oid is None:
            return ref_pb2.FindBranchResponse()
        return ref_pb2.FindBranchResponse(branch=shared_pb2.Branch(
            name=name.encode(), target_commit=repo.commit(oid)))

    def FindAllTags(self, request: Any, context: Context) -> Iterator[Any]:
        repo = self.open("FindAllTags", request.repository, context)
        for batch in _batches([self._tag(repo, *ref) for ref in self._refs(repo, "refs/tags/")]):
            yield ref_pb2.FindAllTagsResponse(tags=batch)

    def _tag(self, repo: Repo, name: str, oid: str, kind: str, peeled: str) -> Any:
        target = peeled or oid
        tag = shared_pb2.Tag(name=name.encode(), id=oid, target_commit=repo.commit(target))
        if kind == "tag":
            raw = repo.out("cat-file", "tag", oid)
            headers, _, message = raw.partition(b"\n\n")
            # Gitaly hands over the message without git's closing newline.
            message = message.removesuffix(b"\n")
            tag.message = message
            tag.message_size = len(message)
            for line in headers.split(b"\n"):
                if line.startswith(b"tagger "):
                    who, _, when = line[7:].rpartition(b"> ")
                    tag_name, _, email = who.partition(b" <")
                    tag.tagger.CopyFrom(_author(tag_name, email, when))
        return tag

    def FindDefaultBranchName(self, request: Any, context: Context) -> Any:
        repo = self.open("FindDefaultBranchName", request.repository, context)
        head = repo.git("symbolic-ref", "HEAD").stdout.decode().strip()
        if head and repo.resolve(head) is not None:
            return ref_pb2.FindDefaultBranchNameResponse(name=head.encode())
        branches = [name for name, _, _, _ in self._refs(repo, "refs/heads/")]
        # Gitaly's fallback when HEAD names nothing: main, then master, then the first.
        for choice in ("main", "master", *branches):
            if choice in branches:
                return ref_pb2.FindDefaultBranchNameResponse(name=f"refs/heads/{choice}".encode())
        return ref_pb2.FindDefaultBranchNameResponse()

    # -- OperationService --------------------------------------------------------

    def _update_ref(self, repo: Repo, repository: Any, user: Any, ref: str, new: str,
                    old: str) -> str:
        """Move ``ref`` through the hooks like Gitaly's updateref with hooks: the
        pre-receive hook's output when it refuses, else "" after the update."""
        env = {"GL_ID": user.gl_id, "GL_USERNAME": user.gl_username,
               "GL_REPOSITORY": repository.gl_repository, "GL_PROTOCOL": "web"}
        changes = f"{old} {new} {ref}\n".encode()
        pre = subprocess.run([os.path.join(self.hooks_dir, "pre-receive")], input=changes,
                             capture_output=True, env={**repo.env, **env}, cwd=repo.path,
                             check=False)
        if pre.returncode != 0:
            return (pre.stderr or pre.stdout).decode(errors="replace").strip()
        repo.out("update-ref", ref, new, old)
        subprocess.run([os.path.join(self.hooks_dir, "post-receive")], input=changes,
                       capture_output=True, env={**repo.env, **env}, cwd=repo.path, check=False)
        return ""

    def UserCreateBranch(self, request: Any, context: Context) -> Any:
        repo = self.open("UserCreateBranch", request.repository, context)
        name = request.branch_name.decode()
        if not name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty branch name")
        start = repo.resolve(request.start_point.decode()) if request.start_point else None
        if start is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"revspec '{request.start_point.decode()}' not found")
        if repo.git("check-ref-format", "--branch", name).returncode != 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid branch name: {name!r}")
        error = self._update_ref(repo, request.repository, request.user, f"refs/heads/{name}",
                                 start, ZERO_OID)
        if error:
            return operations_pb2.UserCreateBranchResponse(pre_receive_error=error)
        log(f"UserCreateBranch {request.repository.relative_path} {name}")
        return operations_pb2.UserCreateBranchResponse(branch=shared_pb2.Branch(
            name=name.encode(), target_commit=repo.commit(start)))

    def UserDeleteBranch(self, request: Any, context: Context) -> Any:
        repo = self.open("UserDeleteBranch", request.repository, context)
        name = request.branch_name.decode()
        old = repo.resolve(f"refs/heads/{name}")
        if old is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "branch not found")
        error = self._update_ref(repo, request.repository, request.user, f"refs/heads/{name}",
                                 ZERO_OID, old)
        return operations_pb2.UserDeleteBranchResponse(pre_receive_error=error)

    def UserCreateTag(self, request: Any, context: Context) -> Any:
        repo = self.open("UserCreateTag", request.repository, context)
        name = request.tag_name.decode()
        target = repo.resolve(request.target_revision.decode()) \
            if request.target_revision else None
        if target is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"revspec '{request.target_revision.decode()}' not found")
        if repo.resolve(f"refs/tags/{name}", "object") is not None:
            return operations_pb2.UserCreateTagResponse(exists=True)
        oid = target
        if request.message:
            user = request.user
            stamp = f"{int(time.time())} +0000"
            body = (f"object {target}\ntype commit\ntag {name}\n"
                    f"tagger {user.name.decode()} <{user.email.decode()}> {stamp}\n\n").encode()
            message = request.message if request.message.endswith(b"\n") \
                else request.message + b"\n"
            oid = repo.out("hash-object", "-t", "tag", "-w", "--stdin",
                           data=body + message).decode().strip()
        error = self._update_ref(repo, request.repository, request.user, f"refs/tags/{name}",
                                 oid, ZERO_OID)
        if error:
            return operations_pb2.UserCreateTagResponse(pre_receive_error=error)
        kind = "tag" if request.message else "commit"
        return operations_pb2.UserCreateTagResponse(
            tag=self._tag(repo, name, oid, kind, target if kind == "tag" else ""))

    def UserDeleteTag(self, request: Any, context: Context) -> Any:
        repo = self.open("UserDeleteTag", request.repository, context)
        name = request.tag_name.decode()
        old = repo.resolve(f"refs/tags/{name}", "object")
        if old is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"tag not found: {name}")
        error = self._update_ref(repo, request.repository, request.user, f"refs/tags/{name}",
                                 ZERO_OID, old)
        return operations_pb2.UserDeleteTagResponse(pre_receive_error=error)

    def UserCommitFiles(self, requests: Iterator[Any], context: Context) -> Any:
        first = next(requests)
        header = first.header
        repo = self.open("UserCommitFiles", header.repository, context)
        actions: list[tuple[Any, bytearray]] = []
        for request in requests:
            if request.action.HasField("header"):
                actions.append((request.action.header, bytearray()))
            elif actions:
                actions[-1][1].extend(request.action.content)
        branch = header.branch_name.decode()
        if not branch:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty BranchName")
        ref = f"refs/heads/{branch}"
        old = repo.resolve(ref) or ZERO_OID
        if header.start_sha:
            parent = repo.resolve(header.start_sha)
        else:
            parent = repo.resolve(f"refs/heads/{header.start_branch_name.decode() or branch}")
        # The branch exists and moved elsewhere: Gitaly refuses a non-fast-forward.
        if old != ZERO_OID and parent != old and not header.force and (
                parent is None
                or repo.git("merge-base", "--is-ancestor", old, parent).returncode != 0):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"Could not update refs/heads/{branch}. Please refresh and try again.")
        with tempfile.TemporaryDirectory() as tmp:
            index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            if parent:
                repo.out("read-tree", parent, extra_env=index)
            index_error = self._apply(repo, index, actions)
            if index_error:
                return operations_pb2.UserCommitFilesResponse(index_error=index_error)
            tree = repo.out("write-tree", extra_env=index).decode().strip()
        user = header.user
        name = header.commit_author_name or user.name
        email = header.commit_author_email or user.email
        ident = {"GIT_AUTHOR_NAME": name.decode(), "GIT_AUTHOR_EMAIL": email.decode(),
                 "GIT_COMMITTER_NAME": user.name.decode() or name.decode(),
                 "GIT_COMMITTER_EMAIL": user.email.decode() or email.decode()}
        commit = repo.out("commit-tree", tree, *(["-p", parent] if parent else []),
                          data=header.commit_message, extra_env=ident).decode().strip()
        repo_created = not self._refs(repo, "refs/heads/")
        error = self._update_ref(repo, header.repository, user, ref, commit, old)
        if error:
            return operations_pb2.UserCommitFilesResponse(pre_receive_error=error)
        if repo.resolve("HEAD") is None:
            repo.out("symbolic-ref", "HEAD", ref)
        log(f"UserCommitFiles {header.repository.relative_path} {branch} {commit[:8]}")
        update = operations_pb2.OperationBranchUpdate(
            commit_id=commit, repo_created=repo_created, branch_created=old == ZERO_OID)
        return operations_pb2.UserCommitFilesResponse(branch_update=update)

    @staticmethod
    def _apply(repo: Repo, index: dict[str, str],
               actions: list[tuple[Any, bytearray]]) -> str:
        """Apply the actions to the index; Gitaly's index error text when one can't be."""
        kinds = operations_pb2.UserCommitFilesActionHeader

        def exists(path: str) -> bool:
            return bool(repo.out("ls-files", "--", path, extra_env=index).strip())

        def is_dir(path: str) -> bool:
            return bool(repo.out("ls-files", "--", f"{path}/", extra_env=index).strip())

        def remove(path: str) -> None:
            # --index-info with mode 0 drops the entry; --force-remove wants a work tree.
            repo.out("update-index", "--index-info", extra_env=index,
                     data=f"0 {ZERO_OID}\t{path}\n".encode())

        def add(path: str, content: bytes, executable: bool) -> None:
            oid = repo.out("hash-object", "-w", "--stdin", data=content).decode().strip()
            mode = "100755" if executable else "100644"
            repo.out("update-index", "--add", "--cacheinfo", f"{mode},{oid},{path}",
                     extra_env=index)

        for head, content in actions:
            path = os.path.normpath(head.file_path.decode()).lstrip("/")
            if not path or path == ".":
                return "You must provide a file path"
            if path.startswith("..") or "/.git/" in f"/{path}/":
                return f"Path cannot include directory traversal: {path}"
            data = bytes(content)
            if head.base64_content:
                data = base64.b64decode(data)
            action = head.action
            if action == kinds.CREATE:
                if exists(path):
                    return "A file with this name already exists"
                if is_dir(path):
                    return "A directory with this name already exists"
                add(path, data, head.execute_filemode)
            elif action == kinds.CREATE_DIR:
                if exists(path) or is_dir(path):
                    return "A directory with this name already exists"
                add(f"{path}/.gitkeep", b"", False)
            elif action == kinds.UPDATE:
                if not exists(path):
                    return "A file with this name doesn't exist"
                add(path, data, head.execute_filemode or _is_executable(repo, index, path))
            elif action == kinds.MOVE:
                previous = os.path.normpath(head.previous_path.decode()).lstrip("/")
                if not exists(previous):
                    return "A file with this name doesn't exist"
                if exists(path):
                    return "A file with this name already exists"
                staged = repo.out("ls-files", "-s", "--", previous, extra_env=index).decode()
                if head.infer_content:
                    data = repo.out("cat-file", "blob", staged.split()[1])
                executable = staged.startswith("100755")
                remove(previous)
                add(path, data, executable)
            elif action == kinds.DELETE:
                if not exists(path):
                    return "A file with this name doesn't exist"
                remove(path)
            elif action == kinds.CHMOD:
                if not exists(path):
                    return "A file with this name doesn't exist"
                staged = repo.out("ls-files", "-s", "--", path, extra_env=index).decode()
                mode = "100755" if head.execute_filemode else "100644"
                repo.out("update-index", "--cacheinfo", f"{mode},{staged.split()[1]},{path}",
                         extra_env=index)
        return ""

    def add_to_server(self, server: grpc.Server) -> None:
        commit_pb2_grpc.add_CommitServiceServicer_to_server(self, server)
        ref_pb2_grpc.add_RefServiceServicer_to_server(self, server)
        operations_pb2_grpc.add_OperationServiceServicer_to_server(self, server)


def _is_executable(repo: Repo, index: dict[str, str], path: str) -> bool:
    line = repo.out("ls-files", "-s", "--", path, extra_env=index).decode()
    return line.startswith("100755")
