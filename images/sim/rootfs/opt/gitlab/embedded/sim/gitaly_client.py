"""The app side of Gitaly: channels for tcp://, tls:// and unix: addresses, v2 tokens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _PackService:
    info_refs: str
    post: str
    request: Any
    response: Any
    #: Only PostReceivePackRequest carries gl_id, gl_repository and gl_username.
    takes_pusher: bool


_SERVICES = {
    "git-upload-pack": _PackService("InfoRefsUploadPack", "PostUploadPack",
                                    smarthttp_pb2.PostUploadPackRequest,
                                    smarthttp_pb2.PostUploadPackResponse, False),
    "git-receive-pack": _PackService("InfoRefsReceivePack", "PostReceivePack",
                                     smarthttp_pb2.PostReceivePackRequest,
                                     smarthttp_pb2.PostReceivePackResponse, True),
}


class Storage:
    """One ``repositories_storages`` entry; a fresh channel per use so a restarted
    Gitaly (new IP, no reconnect backoff) is picked up at once.

    ``trusted_ca`` is read once, by the caller, like Omnibus which installs
    /etc/gitlab/trusted-certs on reconfigure (and the sim restarts its services then).
    """

    def __init__(self, name: str, address: str, token: str,
                 trusted_ca: bytes | None = None) -> None:
        self.name = name
        self.address = address
        self.token = token
        self.credentials = (grpc.ssl_channel_credentials(root_certificates=trusted_ca)
                            if address.startswith("tls://") else None)

    def channel(self) -> grpc.Channel:
        scheme, _, rest = self.address.partition("://")
        if self.address.startswith("unix:"):
            return grpc.insecure_channel(self.address)
        if scheme == "tcp":
            return grpc.insecure_channel(rest)
        if self.credentials is not None:
            return grpc.secure_channel(rest, self.credentials)
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
        request = smarthttp_pb2.InfoRefsRequest(repository=self.repository(relative_path),
                                                git_protocol=git_protocol)
        return self.stream(f"/gitaly.SmartHTTPService/{_SERVICES[service].info_refs}", request,
                           smarthttp_pb2.InfoRefsResponse, client_stream=False)

    def post_pack(self, service: str, relative_path: str, body: bytes, git_protocol: str,
                  pusher: dict[str, str]) -> bytes:
        rpc = _SERVICES[service]
        parts = simconfig.chunks(body)
        # The first message names the repository; the rest carry only data.
        requests = [rpc.request(repository=self.repository(relative_path), data=next(parts),
                                git_protocol=git_protocol,
                                **(pusher if rpc.takes_pusher else {}))]
        requests += [rpc.request(data=part) for part in parts]
        return self.stream(f"/gitaly.SmartHTTPService/{rpc.post}", requests, rpc.response,
                           client_stream=True)


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def storages(app: dict[str, Any]) -> dict[str, Storage]:
    """The app's storages, with the CAs it trusts read now (once for all of them)."""
    entries = app["storages"]
    tls = any(e["address"].startswith("tls://") for e in entries.values())
    trusted_ca = simconfig.trusted_ca_pem() if tls else None
    return {name: Storage(name, entry["address"], entry["token"], trusted_ca)
            for name, entry in entries.items()}
