"""The app side of Gitaly: channels for tcp://, tls:// and unix: addresses, v2 tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
import lab_auth
import repository_service_pb2 as repo_pb
import server_pb2
import shared_pb2
import simconfig
import smarthttp_pb2

TIMEOUT = 10.0
STREAM_TIMEOUT = 300.0


class GitalyCallError(Exception):
    """A failed Gitaly call, printed the way Rails prints it: ``7:permission denied``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code.value[0]}:{details}")

    @property
    def http_status(self) -> int:
        return 503 if self.code in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED) else 500


class Storage:
    """One ``repositories_storages`` entry; a fresh channel per use so a restarted
    Gitaly (new IP, no reconnect backoff) is picked up at once."""

    def __init__(self, name: str, address: str, token: str) -> None:
        self.name = name
        self.address = address
        self.token = token

    def channel(self) -> grpc.Channel:
        scheme, _, rest = self.address.partition("://")
        if self.address.startswith("unix:"):
            return grpc.insecure_channel(self.address)
        if scheme == "tcp":
            return grpc.insecure_channel(rest)
        if scheme == "tls":
            creds = grpc.ssl_channel_credentials(root_certificates=simconfig.trusted_ca_pem())
            return grpc.secure_channel(rest, creds)
        raise GitalyCallError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"invalid gitaly address {self.address!r}")

    def metadata(self) -> list[tuple[str, str]]:
        if not self.token:
            return []
        return [("authorization", "Bearer " + lab_auth.gitaly_v2_token(self.token))]

    def repository(self, relative_path: str) -> Any:
        return shared_pb2.Repository(storage_name=self.name, relative_path=relative_path)

    def unary(self, method: str, request: Any, response_cls: Any) -> Any:
        with self.channel() as channel:
            call = channel.unary_unary(method, request_serializer=_serialize,
                                       response_deserializer=response_cls.FromString)
            try:
                return call(request, metadata=self.metadata(), timeout=TIMEOUT)
            except grpc.RpcError as exc:
                raise GitalyCallError(exc.code(), exc.details() or "") from exc

    def stream(self, method: str, requests: Any, response_cls: Any,
               *, client_stream: bool) -> bytes:
        """Run a server-streaming RPC and join the ``data`` fields of its responses."""
        with self.channel() as channel:
            factory = channel.stream_stream if client_stream else channel.unary_stream
            call = factory(method, request_serializer=_serialize,
                           response_deserializer=response_cls.FromString)
            try:
                responses: Iterable[Any] = call(iter(requests) if client_stream else requests,
                                                metadata=self.metadata(), timeout=STREAM_TIMEOUT)
                return b"".join(r.data for r in responses)
            except grpc.RpcError as exc:
                raise GitalyCallError(exc.code(), exc.details() or "") from exc

    # -- the RPCs the app uses -----------------------------------------------

    def server_info(self) -> Any:
        return self.unary("/gitaly.ServerService/ServerInfo", server_pb2.ServerInfoRequest(),
                          server_pb2.ServerInfoResponse)

    def create_repository(self, relative_path: str) -> None:
        self.unary("/gitaly.RepositoryService/CreateRepository",
                   repo_pb.CreateRepositoryRequest(repository=self.repository(relative_path)),
                   repo_pb.CreateRepositoryResponse)

    def repository_exists(self, relative_path: str) -> bool:
        resp = self.unary("/gitaly.RepositoryService/RepositoryExists",
                          repo_pb.RepositoryExistsRequest(repository=self.repository(relative_path)),
                          repo_pb.RepositoryExistsResponse)
        return bool(resp.exists)

    def info_refs(self, service: str, relative_path: str, git_protocol: str) -> bytes:
        name = "InfoRefsUploadPack" if service == "git-upload-pack" else "InfoRefsReceivePack"
        request = smarthttp_pb2.InfoRefsRequest(repository=self.repository(relative_path),
                                                git_protocol=git_protocol)
        return self.stream(f"/gitaly.SmartHTTPService/{name}", request,
                           smarthttp_pb2.InfoRefsResponse, client_stream=False)

    def post_pack(self, service: str, relative_path: str, body: bytes, git_protocol: str,
                  gl: dict[str, str]) -> bytes:
        repo = self.repository(relative_path)
        chunks = [body[i:i + 32768] for i in range(0, len(body), 32768)] or [b""]
        if service == "git-upload-pack":
            reqs: list[Any] = [smarthttp_pb2.PostUploadPackRequest(
                repository=repo, data=chunks[0], git_protocol=git_protocol)]
            reqs += [smarthttp_pb2.PostUploadPackRequest(data=c) for c in chunks[1:]]
            return self.stream("/gitaly.SmartHTTPService/PostUploadPack", reqs,
                               smarthttp_pb2.PostUploadPackResponse, client_stream=True)
        rreqs: list[Any] = [smarthttp_pb2.PostReceivePackRequest(
            repository=repo, data=chunks[0], git_protocol=git_protocol, **gl)]
        rreqs += [smarthttp_pb2.PostReceivePackRequest(data=c) for c in chunks[1:]]
        return self.stream("/gitaly.SmartHTTPService/PostReceivePack", rreqs,
                           smarthttp_pb2.PostReceivePackResponse, client_stream=True)


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def storages(app: dict[str, Any]) -> dict[str, Storage]:
    return {name: Storage(name, entry["address"], entry["token"])
            for name, entry in app["storages"].items()}
