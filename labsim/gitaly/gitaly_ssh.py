"""gitaly-ssh for the sim: git's ext:: transport to another Gitaly's SSHService/SSHUploadPack.

Run by git as ``ext::python3 -P -m labsim.gitaly.gitaly_ssh %S`` with the source repository in
GITALY_ADDRESS, GITALY_TOKEN, GITALY_STORAGE and GITALY_RELATIVE_PATH (what
Gitaly's own gitaly-ssh reads from its environment): git's stdin goes to the
remote upload-pack, its stdout comes back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import grpc

from lab.gitalypb import shared_pb2, ssh_pb2, ssh_pb2_grpc
from labsim.common import simconfig
from labsim.gitaly import gitaly_client


def requests() -> Iterator[Any]:
    yield ssh_pb2.SSHUploadPackRequest(
        repository=shared_pb2.Repository(storage_name=os.environ["GITALY_STORAGE"],
                                         relative_path=os.environ["GITALY_RELATIVE_PATH"]),
        git_protocol=os.environ.get("GIT_PROTOCOL", ""))
    while data := os.read(0, simconfig.CHUNK):
        yield ssh_pb2.SSHUploadPackRequest(stdin=data)


def main() -> int:
    if sys.argv[1:] != ["git-upload-pack"]:
        print(f"gitaly_ssh: unsupported service {sys.argv[1:]}", file=sys.stderr)
        return 1
    storage = gitaly_client.peer(os.environ["GITALY_STORAGE"], os.environ["GITALY_ADDRESS"],
                                 os.environ.get("GITALY_TOKEN", ""))
    code = 1
    with storage.channel() as channel:
        try:
            for response in ssh_pb2_grpc.SSHServiceStub(channel).SSHUploadPack(
                    requests(), metadata=storage.metadata()):
                if response.stdout:
                    os.write(1, response.stdout)
                if response.stderr:
                    os.write(2, response.stderr)
                if response.HasField("exit_status"):
                    code = response.exit_status.value
        except grpc.RpcError as exc:
            os.write(2, f"gitaly_ssh: {gitaly_client.call_error(exc)}\n".encode())
    return code


if __name__ == "__main__":
    # The request thread may still wait on git's stdin: leave without joining it.
    os._exit(main())
