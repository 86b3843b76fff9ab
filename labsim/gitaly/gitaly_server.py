"""The sim's Gitaly: servicers generated from proto/gitaly-lab (gitalypb), real git underneath.

Implements ServerService/ServerInfo, RepositoryService/RepositoryExists and
CreateRepository, and the four SmartHTTPService RPCs (PostUploadPack as the
Gitaly of our protos served it, GITALY_RELEASE in proto/generate.py; later releases
only serve the sidechannel variant, docs/fidelity.md); the
CommitService, RefService and OperationService RPCs behind the REST API's
repository routes are in gitaly_git_services. Gitaly's other RPCs are not in
our protos, so gRPC answers them UNIMPLEMENTED, as a Gitaly lacking them would.
Every call passes the same
auth check as Gitaly's token interceptor of the lab's release (lab_auth.check_gitaly_auth;
v1 tokens too on the releases whose Gitaly took them, lab.omnibus.eras GITALY_V1_TOKEN).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from lab.gitalypb import (
    repository_pb2,
    repository_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
    smarthttp_pb2,
    smarthttp_pb2_grpc,
)
from lab.omnibus import auth as lab_auth
from lab.omnibus import eras as lab_eras
from lab.omnibus.release import UNBOUNDED, Version
from labsim.common import simconfig
from labsim.gitaly import git_child, git_children, gitaly_git_services, gitaly_moves, health
from labsim.gitaly.servicer_context import Context

HOOKS_DIR = str(Path(__file__).resolve().parent / "hooks")
# In the environment of every git Gitaly runs, and so of its hooks and gitaly-ssh: where
# the fork of Gitaly that runs them listens (git_children; set by main).
GIT_CHILDREN_ENV: dict[str, str] = {}
_CODES = {
    lab_auth.AuthOutcome.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    lab_auth.AuthOutcome.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}


def log(message: str) -> None:
    simconfig.log("gitaly", message)


class MissingStorage(Exception):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name, path)
        self.name, self.path = name, path


class Gitaly(gitaly_moves.RepositoryMoves,  # ReplicateRepository, RemoveRepository
             server_pb2_grpc.ServerServiceServicer,
             repository_pb2_grpc.RepositoryServiceServicer,
             smarthttp_pb2_grpc.SmartHTTPServiceServicer):
    """One object serves the three services; RPC methods carry Gitaly's names."""

    def __init__(self, conf: dict[str, Any], release: Version = UNBOUNDED) -> None:
        self.token: str = conf["token"]
        self.takes_v1 = lab_eras.gitaly_accepts_v1_tokens(release)
        self.transitioning: bool = bool(conf.get("transitioning"))
        self.storages: dict[str, str] = conf["storages"]
        # Gitaly creates no storage folder (Omnibus' reconfigure does): a missing one stops
        # it before it listens (validateStorages, lab.omnibus.eras GITALY_STORAGE_MISSING).
        for name, path in self.storages.items():
            if not os.path.isdir(path):
                raise MissingStorage(name, path)
        git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
        self.git_version = git.stdout.strip().removeprefix("git version ")

    # -- helpers ---------------------------------------------------------------

    def authorize(self, context: Context, method: str) -> None:
        metadata = dict(context.invocation_metadata())
        result = lab_auth.check_gitaly_auth(self.token, metadata.get("authorization"),
                                            transitioning=self.transitioning,
                                            v1=self.takes_v1)
        if not result.ok:
            log(f"{method}: {result.message} (peer {context.peer()})")
            context.abort(_CODES[result.outcome], result.message)

    def repo_path(self, repository: Any, context: Context,
                  *, must_exist: bool = True) -> str:
        if not repository.storage_name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty StorageName")
        base = self.storages.get(repository.storage_name)
        if base is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'GetStorageByName: no such storage: "{repository.storage_name}"')
        rel = repository.relative_path
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"GetRepoPath: relative path escapes root directory: {rel!r}")
        path = os.path.join(base, rel)
        if must_exist and not os.path.isfile(os.path.join(path, "HEAD")):
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"GetRepoPath: not a git repository: {path!r}")
        return path

    @staticmethod
    def git_env(protocol: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/var/opt/gitlab",
               **GIT_CHILDREN_ENV}
        if protocol:
            env["GIT_PROTOCOL"] = protocol
        env.update(extra or {})
        return env

    # -- ServerService ---------------------------------------------------------

    def ServerInfo(self, request: Any, context: Context) -> Any:
        self.authorize(context, "ServerInfo")
        statuses = []
        for name, path in self.storages.items():
            statuses.append(server_pb2.ServerInfoResponse.StorageStatus(
                storage_name=name,
                readable=os.access(path, os.R_OK),
                writeable=os.access(path, os.W_OK),
                fs_type="sim",
                filesystem_id=self.filesystem_id(path),
            ))
        return server_pb2.ServerInfoResponse(
            server_version=simconfig.SERVER_VERSION,
            git_version=self.git_version,
            storage_statuses=statuses,
        )

    @staticmethod
    def filesystem_id(path: str) -> str:
        # Gitaly keeps a per-storage UUID in .gitaly-metadata; so do we.
        meta = os.path.join(path, ".gitaly-metadata")
        try:
            with open(meta) as fh:
                return fh.read().strip()
        except OSError:
            value = str(uuid.uuid4())
            try:
                with open(meta, "w") as fh:
                    fh.write(value)
            except OSError:
                return ""
            return value

    # -- RepositoryService -----------------------------------------------------

    def RepositoryExists(self, request: Any, context: Context) -> Any:
        self.authorize(context, "RepositoryExists")
        path = self.repo_path(request.repository, context, must_exist=False)
        exists = os.path.isfile(os.path.join(path, "HEAD"))
        return repository_pb2.RepositoryExistsResponse(exists=exists)

    def CreateRepository(self, request: Any, context: Context) -> Any:
        self.authorize(context, "CreateRepository")
        path = self.repo_path(request.repository, context, must_exist=False)
        proc = subprocess.run(["git", "init", "--bare", "--quiet", "--initial-branch=main", path],
                              capture_output=True, text=True, env=self.git_env(""), check=False)
        if proc.returncode != 0:
            context.abort(grpc.StatusCode.INTERNAL, f"CreateRepository: {proc.stderr.strip()}")
        repo = request.repository
        log(f"CreateRepository {repo.storage_name}:{repo.relative_path}")
        return repository_pb2.CreateRepositoryResponse()

    # -- SmartHTTPService ------------------------------------------------------

    def _info_refs(self, service: str, request: Any,
                   context: Context) -> Iterator[Any]:
        self.authorize(context, f"InfoRefs {service}")
        path = self.repo_path(request.repository, context)
        proc = subprocess.run(
            ["git", service, "--stateless-rpc", "--advertise-refs", path],
            capture_output=True, env=self.git_env(request.git_protocol), check=False)
        if proc.returncode != 0:
            context.abort(grpc.StatusCode.INTERNAL, proc.stderr.decode(errors="replace"))
        # Like Gitaly, write the smart HTTP service announcement ourselves.
        line = f"# service=git-{service}\n".encode()
        data = b"%04x" % (len(line) + 4) + line + b"0000" + proc.stdout
        for chunk in simconfig.chunks(data):
            yield smarthttp_pb2.InfoRefsResponse(data=chunk)

    def InfoRefsUploadPack(self, request: Any, context: Context) -> Iterator[Any]:
        return self._info_refs("upload-pack", request, context)

    def InfoRefsReceivePack(self, request: Any, context: Context) -> Iterator[Any]:
        return self._info_refs("receive-pack", request, context)

    def PostUploadPack(self, requests: Iterator[Any],
                       context: Context) -> Iterator[Any]:
        return self._post_pack("PostUploadPack", requests, context,
                               smarthttp_pb2.PostUploadPackResponse, ["upload-pack"])

    def PostReceivePack(self, requests: Iterator[Any],
                        context: Context) -> Iterator[Any]:
        # Gitaly points core.hooksPath at its own hooks, which call the internal API.
        return self._post_pack("PostReceivePack", requests, context,
                               smarthttp_pb2.PostReceivePackResponse,
                               ["-c", f"core.hooksPath={HOOKS_DIR}", "receive-pack"], push=True)

    def _post_pack(self, method: str, requests: Iterator[Any], context: Context,
                   response_cls: Any, git_args: list[str], *,
                   push: bool = False) -> Iterator[Any]:
        self.authorize(context, method)
        first = next(requests)
        path = self.repo_path(first.repository, context)
        data = first.data + b"".join(r.data for r in requests)
        # The hooks of a push need to know who pushes to which project.
        pusher = {"GL_ID": first.gl_id, "GL_REPOSITORY": first.gl_repository,
                  "GL_USERNAME": first.gl_username, "GL_PROTOCOL": "http"} if push else None
        proc = subprocess.run(["git", *git_args, "--stateless-rpc", path], input=data,
                              capture_output=True, env=self.git_env(first.git_protocol, pusher),
                              check=False)
        if proc.returncode != 0:
            context.abort(grpc.StatusCode.INTERNAL, proc.stderr.decode(errors="replace"))
        if push:
            self.fix_head(path)
            log(f"{method} {first.gl_repository} done")
        for chunk in simconfig.chunks(proc.stdout):
            yield response_cls(data=chunk)

    @staticmethod
    def fix_head(path: str) -> None:
        # GitLab points HEAD at the first pushed branch when the default one is missing.
        def git(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["git", "-C", path, *args], capture_output=True, text=True,
                                  check=False)
        if git("rev-parse", "--verify", "-q", "HEAD").returncode == 0:
            return
        branches = git("for-each-ref", "--format=%(refname)", "refs/heads/").stdout.split()
        if branches:
            git("symbolic-ref", "HEAD", branches[0])


# How long a stopping Gitaly lets calls in flight finish.
STOP_GRACE = 2.0


class InFlight(grpc.ServerInterceptor):  # type: ignore[misc]
    """Counts the calls being served, so that a stop waits for them and not for idle
    connections (grpc's own grace also waits out a client that keeps an idle channel
    open, which a Gitaly restart — a graceful in-place restart in Omnibus — does not)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def _add(self, n: int) -> None:
        with self.lock:
            self.count += n

    def _unary(self, fn: Any) -> Any:
        def call(request: Any, context: Any) -> Any:
            self._add(1)
            try:
                return fn(request, context)
            finally:
                self._add(-1)
        return call

    def _stream(self, fn: Any) -> Any:
        def call(request: Any, context: Any) -> Any:
            self._add(1)
            try:
                yield from fn(request, context)
            finally:
                self._add(-1)
        return call

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        for kind in ("unary_unary", "stream_unary"):
            if getattr(handler, kind):
                return handler._replace(**{kind: self._unary(getattr(handler, kind))})
        for kind in ("unary_stream", "stream_stream"):
            if getattr(handler, kind):
                return handler._replace(**{kind: self._stream(getattr(handler, kind))})
        return handler

    def drain(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self.count and time.monotonic() < deadline:
            time.sleep(0.05)


class StartError(Exception):
    """Gitaly stops after loading its config (a source node's API client: sourceconfig)."""


def serve(conf: dict[str, Any], inflight: InFlight | None = None,
          release: Version = UNBOUNDED) -> grpc.Server:
    gitaly = Gitaly(conf, release)  # the storages first, as Gitaly's config load checks them
    if conf.get("start_error"):
        raise StartError(conf["start_error"])
    # The app's channels ping every 5 s to notice a vanished peer; let them.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         interceptors=[inflight] if inflight else None, options=[
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 4000),
        ("grpc.http2.max_ping_strikes", 0)])
    server_pb2_grpc.add_ServerServiceServicer_to_server(gitaly, server)
    repository_pb2_grpc.add_RepositoryServiceServicer_to_server(gitaly, server)
    smarthttp_pb2_grpc.add_SmartHTTPServiceServicer_to_server(gitaly, server)
    # CommitService, RefService and OperationService live in their own module.
    gitaly_git_services.GitServices(gitaly, HOOKS_DIR).add_to_server(server)
    gitaly_moves.SSHService(gitaly).add_to_server(server)
    server.add_generic_rpc_handlers([health.Health(gitaly)])
    # Omnibus always sets a socket; a source config.toml may have none.
    socket_path = conf["socket_path"]
    if socket_path:
        os.makedirs(os.path.dirname(socket_path), exist_ok=True)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        server.add_insecure_port(f"unix:{socket_path}")
    if conf["listen_addr"]:
        server.add_insecure_port(conf["listen_addr"])
    if conf["tls_listen_addr"]:
        with open(conf["key_path"], "rb") as k, open(conf["certificate_path"], "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port(conf["tls_listen_addr"], creds)
    server.start()
    auth = ("disabled" if not gitaly.token
            else "transitioning" if gitaly.transitioning else "enabled")
    listeners = [socket_path and f"unix:{socket_path}", conf["listen_addr"],
                 conf["tls_listen_addr"] and f"tls://{conf['tls_listen_addr']}"]
    log(f"listening on {', '.join(x for x in listeners if x)}; "
        f"auth {auth}; "
        f"storages {', '.join(f'{n}={p}' for n, p in gitaly.storages.items())}")
    return server


def main() -> int:
    # Forked first, while this process has one thread and no gRPC object (git_children).
    children = git_children.start()
    if children:
        GIT_CHILDREN_ENV[git_child.SOCKET_ENV] = children
    runtime = simconfig.read_runtime()
    conf = runtime["gitaly"]
    inflight = InFlight()
    config_path = conf.get("config_path") or lab_eras.GITALY_CONFIG_TOML
    try:
        server = serve(conf, inflight, simconfig.release(runtime))
    except MissingStorage as exc:
        # Gitaly's own last line, in the words of the lab's release; then it exits 1.
        log(lab_eras.gitaly_storage_missing(simconfig.release(runtime), exc.name, exc.path,
                                            config_path))
        return 1
    except StartError as exc:
        log(str(exc))
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    done = server.stop(grace=STOP_GRACE)  # no new calls from here on
    inflight.drain(STOP_GRACE)
    server.stop(grace=None)
    done.wait(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
