"""Host-side Gitaly check: ``ServerInfo`` over tcp:// or tls:// with a v2 token.

The call is a raw gRPC call (the request message is empty, the response is
decoded from the protobuf wire format here), so the host needs no generated
code and the same check works against real Gitaly and the sim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc

from lab.auth import gitaly_v2_token
from lab.errors import LabError
from lab.model import Node

SERVER_INFO = "/gitaly.ServerService/ServerInfo"


class GitalyError(LabError):
    """A failed Gitaly call, shown the way Rails shows it: ``7:permission denied``."""

    def __init__(self, code_name: str, details: str) -> None:
        self.code_name = code_name
        self.code = _CODE_NUMBERS.get(code_name, 2)
        self.details = details
        super().__init__(f"{self.code}:{details}")


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


# -- protobuf wire format (just what ServerInfoResponse needs) -------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            out.append((number, data[pos:pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != len(data):
        raise ValueError("truncated message")
    return out


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else ""


def decode_server_info(data: bytes) -> ServerInfo:
    version = git = ""
    storages = []
    for number, value in _fields(data):
        if number == 1:
            version = _text(value)
        elif number == 2:
            git = _text(value)
        elif number == 3 and isinstance(value, bytes):
            attrs: dict[int, int | bytes] = dict(_fields(value))
            storages.append(StorageStatus(
                storage_name=_text(attrs.get(1, b"")),
                readable=bool(attrs.get(2, 0)),
                writeable=bool(attrs.get(3, 0)),
                fs_type=_text(attrs.get(4, b"")),
                filesystem_id=_text(attrs.get(5, b"")),
            ))
    return ServerInfo(version, git, tuple(storages))


# -- the call --------------------------------------------------------------------


def _channel(address: str, ca_pem: bytes | None,
             server_name_override: str | None) -> grpc.Channel:
    scheme, sep, target = address.partition("://")
    if not sep or scheme not in ("tcp", "tls") or not target:
        raise LabError(f"unsupported Gitaly address {address!r} (expected tcp://HOST:PORT "
                       "or tls://HOST:PORT)")
    if scheme == "tcp":
        return grpc.insecure_channel(target)
    options = []
    if server_name_override:
        options.append(("grpc.ssl_target_name_override", server_name_override))
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(target, creds, options=options)


def server_info(address: str, token: str, *, ca_pem: bytes | None = None,
                server_name_override: str | None = None, timeout: float = 5) -> ServerInfo:
    """Call ``gitaly.ServerService/ServerInfo``; raise :class:`GitalyError` on failure."""
    metadata = [("authorization", "Bearer " + gitaly_v2_token(token))] if token else []
    with _channel(address, ca_pem, server_name_override) as channel:
        call = channel.unary_unary(SERVER_INFO)  # no serializers: raw bytes both ways
        try:
            response = call(b"", metadata=metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise GitalyError(exc.code().name, exc.details() or "") from exc
    try:
        return decode_server_info(bytes(response))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GitalyError("INTERNAL", f"undecodable ServerInfoResponse: {exc}") from exc


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
