"""Host-side Gitaly check: ``ServerInfo`` over tcp:// or tls:// with a v2 token.

The call goes through the stubs generated from proto/gitaly-lab (lab/gitalypb,
shared with the sim image), whose names and numbers are Gitaly's, so the same
check works against real Gitaly and the sim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc

from lab.errors import BadInput, LabFailing
from lab.gitalypb import server_pb2, server_pb2_grpc
from lab.model.topology import Node
from lab.omnibus.auth import gitaly_v2_token
from lab.omnibus.eras import grpc_ruby_message


class GitalyError(LabFailing):
    """A failed Gitaly call, shown the way Rails shows it: ``7:permission denied``."""

    def __init__(self, code_name: str, details: str) -> None:
        self.code_name = code_name
        self.code = _CODE_NUMBERS.get(code_name, 2)
        self.details = details
        super().__init__(grpc_ruby_message(self.code, details))


_CODE_NUMBERS = {code.name: int(code.value[0]) for code in grpc.StatusCode}


@dataclass(frozen=True)
class StorageStatus:
    storage_name: str = ""
    readable: bool = False
    writeable: bool = False
    fs_type: str = ""
    filesystem_id: str = ""


@dataclass(frozen=True)
class ServerInfo:
    server_version: str = ""
    git_version: str = ""
    storage_statuses: tuple[StorageStatus, ...] = field(default_factory=tuple)


def _server_info(response: server_pb2.ServerInfoResponse) -> ServerInfo:
    return ServerInfo(response.server_version, response.git_version, tuple(
        StorageStatus(s.storage_name, s.readable, s.writeable, s.fs_type, s.filesystem_id)
        for s in response.storage_statuses))


def decode_server_info(data: bytes) -> ServerInfo:
    """A serialized ``gitaly.ServerInfoResponse`` as :class:`ServerInfo`."""
    return _server_info(server_pb2.ServerInfoResponse.FromString(data))


# -- the call --------------------------------------------------------------------


def _channel(address: str, ca_pem: bytes | None,
             server_name_override: str | None) -> grpc.Channel:
    scheme, sep, target = address.partition("://")
    if not sep or scheme not in ("tcp", "tls") or not target:
        raise BadInput(f"unsupported Gitaly address {address!r} (expected tcp://HOST:PORT "
                       "or tls://HOST:PORT)")
    if scheme == "tcp":
        return grpc.insecure_channel(target)
    options = []
    if server_name_override:
        options.append(("grpc.ssl_target_name_override", server_name_override))
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(target, creds, options=options)


def auth_metadata(token: str) -> list[tuple[str, str]]:
    """The call metadata Rails sends (lib/gitlab/gitaly_client.rb ``authorization_token``):
    a v2 token even when ``token`` is empty, so a forgotten token is answered "permission
    denied", never "authentication required"."""
    return [("authorization", "Bearer " + gitaly_v2_token(token))]


def server_info(address: str, token: str, *, ca_pem: bytes | None = None,
                server_name_override: str | None = None, timeout: float = 5) -> ServerInfo:
    """Call ``gitaly.ServerService/ServerInfo``; raise :class:`GitalyError` on failure."""
    metadata = auth_metadata(token)
    with _channel(address, ca_pem, server_name_override) as channel:
        stub = server_pb2_grpc.ServerServiceStub(channel)
        try:
            response = stub.ServerInfo(server_pb2.ServerInfoRequest(), metadata=metadata,
                                       timeout=timeout)
        except grpc.RpcError as exc:
            # An undecodable response surfaces here too, as INTERNAL.
            raise GitalyError(exc.code().name, exc.details() or "") from exc
    return _server_info(response)


def node_server_info(ip: str, node: Node, token: str, *, ca_pem: str = "",
                     server_name: str | None = None, timeout: float = 5) -> ServerInfo:
    """ServerInfo from Gitaly node ``node`` at its lab-network address ``ip``.

    For a TLS node, ``ca_pem`` is the CA to trust ("" = the system roots) and
    ``server_name`` the name its certificate must carry (None = ``ip``); both are
    ignored for a plain tcp:// node.
    """
    scheme = "tls" if node.tls else "tcp"
    return server_info(f"{scheme}://{ip}:{node.gitaly_port}", token,
                       ca_pem=ca_pem.encode() if node.tls and ca_pem else None,
                       server_name_override=server_name if node.tls else None, timeout=timeout)


def unreadable_storages(info: ServerInfo, names: Iterable[str]) -> tuple[str, ...]:
    """Which of ``names`` the node does not report readable.

    A server that reports no storages at all (some versions leave the list
    empty) has none unreadable: it answered, which is all we can tell.
    """
    if not info.storage_statuses:
        return ()
    readable = {s.storage_name for s in info.storage_statuses if s.readable}
    return tuple(n for n in names if n not in readable)
