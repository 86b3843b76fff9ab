"""The app side of Gitaly: channels for tcp://, tls:// and unix: addresses, v2 tokens.

Calls go through the stubs generated from proto/gitaly-lab (gitalypb), Gitaly's names
and numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from lab.gitalypb import (
    repository_pb2,
    repository_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
    shared_pb2,
    smarthttp_pb2,
    smarthttp_pb2_grpc,
)
from lab.omnibus import auth as lab_auth
from lab.omnibus import eras as lab_eras
from lab.omnibus.release import UNBOUNDED, Version
from labsim.common import simconfig

TIMEOUT = 10.0
STREAM_TIMEOUT = 300.0
#: gRPC's reconnect backoff (1 s growing to 120 s) and connect timeout (20 s), shortened:
#: a stopped node's vanished address would otherwise hold a call for minutes. The
#: backoff is still there, so a call right after a restart can fail as in GitLab.
#: Keepalive pings find a connection whose peer vanished (a stopped container sends no
#: reset) instead of leaving a call waiting on it.
T = TypeVar("T")
# What a call on a socket its Gitaly closed says, before gRPC noticed the close.
STALE_CONNECTION = ("Broken pipe", "Connection reset by peer", "Socket closed")
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 1000),
                   ("grpc.min_reconnect_backoff_ms", 3000),
                   ("grpc.max_reconnect_backoff_ms", 5000),
                   ("grpc.keepalive_time_ms", 5000),
                   ("grpc.keepalive_timeout_ms", 3000),
                   ("grpc.keepalive_permit_without_calls", 1),
                   ("grpc.http2.max_pings_without_data", 0)]


class GitalyCallError(Exception):
    """A failed Gitaly call, printed the way Rails prints it: ``7:permission denied``."""

    def __init__(self, code: grpc.StatusCode, details: str, debug: str = "") -> None:
        self.code = code
        self.details = details
        #: C-core's debug_error_string, which grpc-ruby appends to the message too.
        self.debug = debug
        super().__init__(lab_eras.grpc_ruby_message(int(code.value[0]), details))

    @property
    def number(self) -> int:
        return int(self.code.value[0])


def call_error(exc: grpc.RpcError, release: Version = UNBOUNDED) -> GitalyCallError:
    """A failed call as Rails of ``release`` sees it, with its debug string (grpc-ruby keeps
    it): the grpc gem of older releases words a failed connection otherwise than the sim's
    C core, and writes a line of its own to Rails' stderr (lab.omnibus.eras GRPC_* rows)."""
    debug = getattr(exc, "debug_error_string", None)
    shown = lab_eras.grpc_call_failure(release, int(exc.code().value[0]), exc.details() or "",
                                       str(debug() or "") if callable(debug) else "")
    if shown.stderr:
        simconfig.log_line(lab_eras.rails_stderr_log(release), shown.stderr)
    return GitalyCallError(exc.code(), shown.details, shown.debug)


#: Per smart HTTP service: its InfoRefs and Post RPC names and the Post request class.
#: Only PostReceivePackRequest carries gl_id, gl_repository and gl_username.
_SERVICES = {
    "git-upload-pack": ("InfoRefsUploadPack", "PostUploadPack",
                        smarthttp_pb2.PostUploadPackRequest, False),
    "git-receive-pack": ("InfoRefsReceivePack", "PostReceivePack",
                         smarthttp_pb2.PostReceivePackRequest, True),
}


class Storage:
    """One ``repositories_storages`` entry, with long-lived gRPC channels as GitLab keeps.

    Rails keeps its channels (one per storage in current releases, one per stub before)
    and Workhorse its connections (a cache per address) for the life of the process; a
    channel that lost its Gitaly reconnects with gRPC's backoff, so a call made soon after
    Gitaly comes back can still fail with ``14:``. The sim keeps one channel per storage
    for its Rails part; its Workhorse part dials per call (see ``call``).

    ``trusted_ca`` is read once, by the caller, like Omnibus which installs
    /etc/gitlab/trusted-certs on reconfigure (and the sim restarts its services then).
    """

    def __init__(self, name: str, address: str, token: str,
                 trusted_ca: bytes | None = None, release: Version = UNBOUNDED) -> None:
        self.name = name
        self.release = release
        self.address = address
        self.token = token
        self.credentials = (grpc.ssl_channel_credentials(root_certificates=trusted_ca)
                            if address.startswith("tls://") else None)
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def channel(self, client: str = "rails") -> grpc.Channel:
        with self._lock:
            found = self._channels.get(client)
            if found is None:
                found = self._channels[client] = self._new_channel()
            return found

    def rails_call(self, fn: Callable[[grpc.Channel], T]) -> T:
        """``fn`` on Rails' kept channel. gRPC's C core notices a connection that its
        Gitaly closed (a restart) and dials again before the next call, so that call gets
        the new connection's answer (e.g. a certificate error); Python's channel can first
        fail one call on the dead socket. Such a call is made once more on a new channel."""
        try:
            return fn(self.channel("rails"))
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.UNAVAILABLE or not any(
                    s in (exc.details() or "") for s in STALE_CONNECTION):
                raise
            with self._lock:
                # Not closed: other threads may still have calls on it.
                self._channels.pop("rails", None)
            return fn(self.channel("rails"))

    def _new_channel(self) -> grpc.Channel:
        scheme, _, rest = self.address.partition("://")
        if self.address.startswith("unix:"):
            return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        if scheme == "tcp":
            return grpc.insecure_channel(rest, options=CHANNEL_OPTIONS)
        if self.credentials is not None:
            return grpc.secure_channel(rest, self.credentials, options=CHANNEL_OPTIONS)
        raise GitalyCallError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"invalid gitaly address {self.address!r}")

    def metadata(self) -> list[tuple[str, str]]:
        # Rails signs even with an empty token (lib/gitlab/gitaly_client.rb).
        return [("authorization", "Bearer " + lab_auth.gitaly_v2_token(self.token))]

    def repository(self, relative_path: str) -> Any:
        return shared_pb2.Repository(storage_name=self.name, relative_path=relative_path)

    def call(self, stub_class: Callable[[grpc.Channel], Any], method: str, request: Any,
             *, stream: bool = False) -> Any:
        """Call ``method``; a streaming call's ``data`` fields come joined.

        Streaming calls are Workhorse's (smart HTTP), the others Rails'; each has its
        own long-lived channel."""
        # Workhorse's part dials afresh per call: on a kept channel the first call after a
        # `docker stop` hung until git gave up (docs/fidelity.md, not reproduced).
        def unary(channel: grpc.Channel) -> Any:
            return getattr(stub_class(channel), method)(
                request, metadata=self.metadata(), timeout=TIMEOUT)

        if not stream:
            try:
                return self.rails_call(unary)
            except grpc.RpcError as exc:
                raise call_error(exc, self.release) from exc
        channel = self._new_channel()
        try:
            response = getattr(stub_class(channel), method)(
                request, metadata=self.metadata(), timeout=STREAM_TIMEOUT)
            return b"".join(r.data for r in response)
        except grpc.RpcError as exc:
            raise call_error(exc) from exc
        finally:
            channel.close()

    # -- the RPCs the app uses -----------------------------------------------

    def server_info(self) -> Any:
        return self.call(server_pb2_grpc.ServerServiceStub, "ServerInfo",
                         server_pb2.ServerInfoRequest())

    def create_repository(self, relative_path: str) -> None:
        self.call(repository_pb2_grpc.RepositoryServiceStub, "CreateRepository",
                  repository_pb2.CreateRepositoryRequest(
                      repository=self.repository(relative_path)))

    def repository_exists(self, relative_path: str) -> bool:
        resp = self.call(repository_pb2_grpc.RepositoryServiceStub, "RepositoryExists",
                         repository_pb2.RepositoryExistsRequest(
                             repository=self.repository(relative_path)))
        return bool(resp.exists)

    def info_refs(self, service: str, relative_path: str, git_protocol: str) -> bytes:
        request = smarthttp_pb2.InfoRefsRequest(repository=self.repository(relative_path),
                                                git_protocol=git_protocol)
        data: bytes = self.call(smarthttp_pb2_grpc.SmartHTTPServiceStub, _SERVICES[service][0],
                                request, stream=True)
        return data

    def post_pack(self, service: str, relative_path: str, body: bytes, git_protocol: str,
                  pusher: dict[str, str]) -> bytes:
        _, post, request_class, takes_pusher = _SERVICES[service]
        parts = simconfig.chunks(body)
        # The first message names the repository; the rest carry only data.
        requests = [request_class(repository=self.repository(relative_path), data=next(parts),
                                  git_protocol=git_protocol,
                                  **(pusher if takes_pusher else {}))]
        requests += [request_class(data=part) for part in parts]
        data: bytes = self.call(smarthttp_pb2_grpc.SmartHTTPServiceStub, post, iter(requests),
                                stream=True)
        return data


def peer(name: str, address: str, token: str) -> Storage:
    """Another Gitaly's storage, as a Gitaly node reaches it (the ``gitaly-servers``
    metadata's address and token): over TLS trusting this node's CAs."""
    trusted = simconfig.trusted_ca_pem() if address.startswith("tls://") else None
    return Storage(name, address, token, trusted)


def storages(app: dict[str, Any], release: Version = UNBOUNDED) -> dict[str, Storage]:
    """The app's storages, with the CAs it trusts read now (once for all of them), as
    Rails of ``release`` calls them."""
    entries = app["storages"]
    tls = any(e["address"].startswith("tls://") for e in entries.values())
    # An Omnibus app trusts /etc/gitlab/trusted-certs; a source one the system's store,
    # where its runtime config points (labsim.common.sourceconfig.app_from_yml).
    folder = app.get("trusted_certs") or simconfig.TRUSTED_CERTS
    trusted_ca = simconfig.trusted_ca_pem(folder) if tls else None
    return {name: Storage(name, entry["address"], entry["token"], trusted_ca, release)
            for name, entry in entries.items()}
