"""Repository storage moves in the sim Gitaly, the way Gitaly does them.

``RepositoryService/ReplicateRepository`` runs on the *target* Gitaly: it reads the
source storage's address and token from the ``gitaly-servers`` metadata Rails
sends, and fetches every ref from the source Gitaly over ``SSHService/
SSHUploadPack`` (Gitaly's gitaly-ssh path, here a git ``ext::`` transport running
gitaly_ssh.py through git_child.py). ``RemoveRepository`` deletes the source copy
afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from lab.gitalypb import ref_pb2, ref_pb2_grpc, repository_pb2, shared_pb2, ssh_pb2, ssh_pb2_grpc
from labsim.common import simconfig
from labsim.gitaly import gitaly_client
from labsim.gitaly.servicer_context import Context

# gitaly-ssh (gitaly_ssh.py), run by a fork of Gitaly where there is one
# (labsim.gitaly.git_children); with -m: PYTHONPATH is passed on below.
GITALY_SSH = "-S -m labsim.gitaly.git_child gitaly-ssh"


def log(message: str) -> None:
    simconfig.log("gitaly", message)


def gitaly_servers(context: Context) -> dict[str, dict[str, str]]:
    """The ``gitaly-servers`` metadata: base64 JSON {storage: {address, token}}."""
    raw = dict(context.invocation_metadata()).get("gitaly-servers", "")
    try:
        data = json.loads(base64.b64decode(raw)) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def remote_default_branch(server: dict[str, str], source: Any) -> str:
    """RefService/FindDefaultBranchName on the source Gitaly named in ``gitaly-servers``,
    with its token: the ref name ("" when the source has no branch)."""
    storage = gitaly_client.peer(source.storage_name, server.get("address", ""),
                                 server.get("token", ""))
    with storage.channel() as channel:
        response = ref_pb2_grpc.RefServiceStub(channel).FindDefaultBranchName(
            ref_pb2.FindDefaultBranchNameRequest(repository=source),
            metadata=storage.metadata(), timeout=gitaly_client.TIMEOUT)
    return str(response.name.decode())


class RepositoryMoves:
    """RepositoryService RPCs mixed into gitaly_server.Gitaly (it has authorize,
    repo_path and git_env)."""

    def ReplicateRepository(self, request: Any, context: Context) -> Any:
        self.authorize(context, "ReplicateRepository")  # type: ignore[attr-defined]
        target = self.repo_path(request.repository, context,  # type: ignore[attr-defined]
                                must_exist=False)
        source = request.source
        server = gitaly_servers(context).get(source.storage_name)
        if not server:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"storage name not found: {source.storage_name!r}")
        env = {**self.git_env(""),  # type: ignore[attr-defined]
               "GITALY_ADDRESS": server.get("address", ""), "GITALY_TOKEN": server.get("token", ""),
               "GITALY_STORAGE": source.storage_name,
               "GITALY_RELATIVE_PATH": source.relative_path,
               "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        remote = f"ext::python3 -P {GITALY_SSH} %S"
        if not os.path.isfile(os.path.join(target, "HEAD")):
            subprocess.run(["git", "init", "--bare", "--quiet", target], capture_output=True,
                           env=env, check=False)
        git = ["git", "-C", target, "-c", "protocol.ext.allow=always"]
        fetch = subprocess.run([*git, "fetch", "--quiet", "--prune", "--force", remote,
                                "+refs/*:refs/*"], capture_output=True, env=env, check=False)
        if fetch.returncode != 0:
            log(f"ReplicateRepository {source.storage_name}:{source.relative_path}: "
                f"{fetch.stderr.decode(errors='replace').strip()}")
            context.abort(grpc.StatusCode.INTERNAL,
                          f"replicate repository: fetch internal remote: "
                          f"{fetch.stderr.decode(errors='replace').strip()}")
        # Then the source's default branch over RefService, as FetchInternalRemote does
        # (getRemoteDefaultBranch), set locally where it differs.
        try:
            remote_head = remote_default_branch(server, source)
        except grpc.RpcError as exc:
            context.abort(grpc.StatusCode.INTERNAL,
                          "replicate repository: FetchInternalRemote: remote default branch: "
                          f"getRemoteDefaultBranch: {gitaly_client.call_error(exc)}")
        local = subprocess.run([*git, "symbolic-ref", "--quiet", "HEAD"], capture_output=True,
                               env=env, check=False).stdout.decode().strip()
        if remote_head and remote_head != local:
            subprocess.run([*git, "symbolic-ref", "HEAD", remote_head], capture_output=True,
                           env=env, check=False)
        log(f"ReplicateRepository {source.storage_name}:{source.relative_path} -> "
            f"{request.repository.storage_name}")
        return repository_pb2.ReplicateRepositoryResponse()

    def RemoveRepository(self, request: Any, context: Context) -> Any:
        self.authorize(context, "RemoveRepository")  # type: ignore[attr-defined]
        path = self.repo_path(request.repository, context)  # type: ignore[attr-defined]
        shutil.rmtree(path)
        log(f"RemoveRepository {request.repository.storage_name}:"
            f"{request.repository.relative_path}")
        return repository_pb2.RemoveRepositoryResponse()


class SSHService(ssh_pb2_grpc.SSHServiceServicer):
    """SSHService/SSHUploadPack: git upload-pack with its stdin and stdout on the stream."""

    def __init__(self, gitaly: Any) -> None:
        self.gitaly = gitaly

    def SSHUploadPack(self, requests: Iterator[Any],
                      context: Context) -> Iterator[Any]:
        self.gitaly.authorize(context, "SSHUploadPack")
        first = next(requests)
        path = self.gitaly.repo_path(first.repository, context)
        proc = subprocess.Popen(["git", "upload-pack", path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.gitaly.git_env(first.git_protocol))
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
        if stdin is None or stdout is None or stderr is None:
            context.abort(grpc.StatusCode.INTERNAL, "upload-pack pipes missing")

        def feed() -> None:
            try:
                # Lazily: upload-pack must see each chunk as it arrives.
                for chunk in itertools.chain([first.stdin], (r.stdin for r in requests)):
                    if chunk:
                        stdin.write(chunk)
                        stdin.flush()
            except (BrokenPipeError, ValueError, grpc.RpcError):
                pass
            finally:
                with contextlib.suppress(BrokenPipeError):
                    stdin.close()

        threading.Thread(target=feed, daemon=True).start()
        try:
            while chunk := os.read(stdout.fileno(), simconfig.CHUNK):
                yield ssh_pb2.SSHUploadPackResponse(stdout=chunk)
            errors = stderr.read()
            if errors:
                yield ssh_pb2.SSHUploadPackResponse(stderr=errors)
            yield ssh_pb2.SSHUploadPackResponse(
                exit_status=shared_pb2.ExitStatus(value=proc.wait()))
        finally:
            # A cancelled call (the fetching side gave up) leaves no upload-pack behind.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stdout.close()
            stderr.close()

    def add_to_server(self, server: grpc.Server) -> None:
        ssh_pb2_grpc.add_SSHServiceServicer_to_server(self, server)
