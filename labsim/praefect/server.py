"""The sim's Praefect: a gRPC proxy in front of the Gitaly nodes of each virtual storage.

As Gitaly's Praefect (v16.7.0 internal/praefect, docs/fidelity.md "Gitaly Cluster"):
- every call passes Gitaly's v2 token check with the *external* token (Praefect serves
  with Gitaly's auth interceptors);
- a repository-scoped call names the virtual storage; Praefect looks the repository up
  in its database, rewrites the message's Repository to the Gitaly storage (and, from
  PRAEFECT_REPLICA_PATHS, to the repository's @cluster replica path) and forwards the
  raw call with the *internal* token of that node (a generic handler: any method, bytes
  in, bytes out);
- accessors go to a healthy node holding the latest generation, mutators to the
  primary; after a successful mutator the primary's generation goes up and a
  replication job per other node lands in ``replication_queue``; a background
  replicator runs them (ReplicateRepository on the target, the source named in the
  ``gitaly-servers`` metadata), retrying while the target is down, so a node that
  returns catches up;
- it pings its database first and exits when that fails (the supervisor starts it again
  a second later, as runit); from PRAEFECT_PER_REPOSITORY it serves only once its health
  manager has written a round of checks, the first one a tick (1 s) after the start;
- the health manager checks every node each second (grpc.health.v1 with the internal
  token), all at once; a node unanswered for the failover timeout (10 s) is unhealthy, and the
  per-repository elector picks a new primary among healthy nodes with the latest
  generation when the repository is next used;
- ServerInfo and RepositoryExists (from PRAEFECT_EXISTS_FROM_DB, from the database) are answered by
  Praefect itself; health checks too.
"""

from __future__ import annotations

import base64
import json
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import psycopg2
from google.protobuf import descriptor_pool, message_factory

from lab.gitalypb import (  # noqa: F401
    commit_pb2,
    operations_pb2,
    ref_pb2,
    repository_pb2,
    server_pb2,
    shared_pb2,
    smarthttp_pb2,
    ssh_pb2,
)
from lab.omnibus import auth as lab_auth
from lab.omnibus import praefect as praefect_facts
from lab.omnibus.release import (
    PRAEFECT_EXISTS_FROM_DB,
    PRAEFECT_PER_REPOSITORY,
    PRAEFECT_REPLICA_PATHS,
    Version,
)
from labsim.common import simconfig
from labsim.praefect import pure
from labsim.praefect.store import Store

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
SERVER_INFO = "/gitaly.ServerService/ServerInfo"
REPOSITORY_EXISTS = "/gitaly.RepositoryService/RepositoryExists"
CREATE_REPOSITORY = "/gitaly.RepositoryService/CreateRepository"
REMOVE_REPOSITORY = "/gitaly.RepositoryService/RemoveRepository"
#: Gitaly's proto/*.proto op_type annotations (v16.7.0) for the RPCs of our protos: these
#: are MUTATORs; every other repository-scoped RPC there is an ACCESSOR.
MUTATORS = frozenset({
    "CreateRepository", "RemoveRepository", "ReplicateRepository", "UserCreateBranch",
    "UserDeleteBranch", "UserCreateTag", "UserDeleteTag", "UserCommitFiles",
    "UserMergeToRef", "PostReceivePack", "SSHReceivePack",
})
#: How long a node may go without a successful health check before it counts as
#: unhealthy, and how often each node is checked (lab.omnibus.praefect, with the sources).
FAILOVER_TIMEOUT = praefect_facts.FAILOVER_TIMEOUT
HEALTH_INTERVAL = praefect_facts.HEALTH_CHECK_INTERVAL
REPLICATE_INTERVAL = 0.5
#: RepositoryExists from the database; @cluster replica paths (lab/omnibus/release.py).
EXISTS_FROM_DB = PRAEFECT_EXISTS_FROM_DB
CLUSTER_PATHS = PRAEFECT_REPLICA_PATHS
PER_REPOSITORY = PRAEFECT_PER_REPOSITORY
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 500),
                   ("grpc.min_reconnect_backoff_ms", 500),
                   ("grpc.max_reconnect_backoff_ms", 1000),
                   # Each channel its own connection: the C core otherwise shares one among
                   # channels to the same address, backoff and all (Node.channel).
                   ("grpc.use_local_subchannel_pool", 1)]
_CODES = {
    lab_auth.AuthOutcome.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    lab_auth.AuthOutcome.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}


def log(message: str) -> None:
    simconfig.log("praefect", message)


class CallFailed(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


def request_class(method: str) -> Any:
    """The request message class of ``/gitaly.Service/Method``, or None."""
    service, _, name = method.strip("/").partition("/")
    try:
        desc = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    make = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if make is None:  # Debian bookworm's 4.21
        return message_factory.MessageFactory(descriptor_pool.Default()).GetPrototype(
            desc.input_type)
    return make(desc.input_type)


def repository_field(cls: Any) -> str | None:
    """The request's target repository field (the first of type gitaly.Repository)."""
    for f in cls.DESCRIPTOR.fields:
        if f.message_type is not None and f.message_type.full_name == "gitaly.Repository":
            return str(f.name)
    return None


def resolve(host: str, port: str) -> str | None:
    """The address ``host`` has now, or None when the name does not resolve."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return str(found[0][4][0]) if found else None


class Node:
    def __init__(self, vs: str, storage: str, address: str, token: str) -> None:
        self.vs, self.storage, self.address, self.token = vs, storage, address, token
        self.last_ok = 0.0
        self._channel: grpc.Channel | None = None
        self._ip: str | None = None  # the address self._channel dials (None: the name)
        # The connectivity callback subscribed to self._channel, and whether that channel
        # last reported TRANSIENT_FAILURE (a failed connection attempt, now in backoff).
        self._watch: Callable[[grpc.ChannelConnectivity], None] | None = None
        self._failing = False
        self._lock = threading.Lock()

    def target(self) -> str:
        scheme, _, rest = self.address.partition("://")
        return rest if scheme in ("tcp", "tls") else self.address

    def channel(self) -> grpc.Channel:
        """A channel to the address the node's name has now.

        Praefect dials a Gitaly node with Gitaly's client (client/dial.go: ``grpc.Dial`` of
        ``host:port``, grpc-go's passthrough resolver), so each new connection looks the
        name up again. gRPC's C core, under Python, keeps a name's addresses and looks again
        at most every 30 s. Docker gives a restarted container whatever address is free:
        stopping and starting gitaly2 and gitaly3 can swap theirs, and a cached address then
        reaches the other node, whose health check passes with the same internal token (the
        sim once counted gitaly2 healthy 11 s after its token changed). So the name is
        looked up on each use, and a channel dials the address found (or the name while it
        has none, which fails as a lookup does). A replaced channel is not closed: calls
        on it run to their end.

        A channel whose last connection attempt failed is replaced too. Omnibus HUPs
        Gitaly on a reconfigure, a graceful restart in which the new process takes over
        the listeners, so real Praefect's connection to the node never meets a refusal.
        The sim's Gitaly stops and starts (docs/fidelity.md): a health check in that moment
        put the channel into gRPC's reconnect backoff, and the next call routed to the
        node, well after it listened again, failed at once with "failed to connect to all
        addresses" (seen in `cluster-internal-token-mismatch`, right after the scenario
        before it restored gitaly1). A node that is down stays unreachable: each call
        dials and fails.
        """
        host, _, port = self.target().rpartition(":")
        ip = resolve(host, port) if host else None
        with self._lock:
            if self._channel is None or ip != self._ip or self._failing:
                old, watch = self._channel, self._watch
                self._ip = ip
                self._channel = self._dial(host, port, ip)
                self._failing = False
                self._watch = self._watcher(self._channel)
                self._channel.subscribe(self._watch)
                if old is not None and watch is not None:
                    old.unsubscribe(watch)  # then only its calls hold it
            return self._channel

    def close(self) -> None:
        """Stop watching the node's channel and close it (its calls end)."""
        with self._lock:
            if self._channel is not None and self._watch is not None:
                self._channel.unsubscribe(self._watch)
                self._channel.close()
            self._channel, self._watch, self._failing = None, None, False

    def _watcher(self, channel: grpc.Channel) -> Callable[[grpc.ChannelConnectivity], None]:
        def seen(state: grpc.ChannelConnectivity) -> None:
            # gRPC's own thread; a late word from a replaced channel changes nothing.
            if channel is self._channel:
                self._failing = state is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        return seen

    def _dial(self, host: str, port: str, ip: str | None) -> grpc.Channel:
        options: list[tuple[str, Any]]
        if ip is None:
            target, options = self.target(), list(CHANNEL_OPTIONS)
        else:
            target = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            # The name stays the authority and, with TLS, what the certificate must name.
            options = [*CHANNEL_OPTIONS, ("grpc.default_authority", self.target())]
        if self.address.startswith("tls://"):
            if ip is not None:
                options.append(("grpc.ssl_target_name_override", host))
            creds = grpc.ssl_channel_credentials(simconfig.trusted_ca_pem())
            return grpc.secure_channel(target, creds, options=options)
        return grpc.insecure_channel(target, options=options)

    def auth(self) -> tuple[str, str]:
        return ("authorization", "Bearer " + lab_auth.gitaly_v2_token(self.token))

    def healthy(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.last_ok < FAILOVER_TIMEOUT


class Praefect:
    def __init__(self, conf: dict[str, Any], version: Version) -> None:
        self.conf = conf
        self.version = version
        self.token: str = conf.get("token") or ""
        self.nodes: dict[str, dict[str, Node]] = {
            vs: {n["storage"]: Node(vs, n["storage"], n["address"], n["token"]) for n in nodes}
            for vs, nodes in conf["virtual_storages"].items()}
        self.store = Store(conf.get("database") or {})
        self.db_lock = threading.Lock()
        self.shard_primaries: dict[str, str] = {}
        self.name = f"{socket.gethostname()}:{conf.get('listen_addr', '')}"
        self.checker: futures.ThreadPoolExecutor | None = None

    # -- helpers ----------------------------------------------------------------

    def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.db_lock:
            return fn(*args, **kwargs)

    def healthy(self, vs: str) -> list[str]:
        now = time.time()
        return [s for s, n in self.nodes[vs].items() if n.healthy(now)]

    def shard_primary(self, vs: str, failed: str) -> str:
        """Before PRAEFECT_PER_REPOSITORY: the virtual storage's one primary, kept while it
        is healthy, else the first healthy node in configuration order. None healthy: the
        ``failed`` call's error (v13.12.0 coordinator.go, router_node_manager.go)."""
        healthy = self.healthy(vs)
        if self.shard_primaries.get(vs) not in healthy:
            if not healthy:
                raise CallFailed(grpc.StatusCode.UNKNOWN, f"{failed}: primary is not healthy")
            self.shard_primaries[vs] = healthy[0]
            log(f"elected {healthy[0]} primary of virtual storage {vs}")
        return self.shard_primaries[vs]

    def elect(self, vs: str, rel: str, primary: str | None) -> str:
        """The per-repository elector: keep a healthy, up-to-date primary, else pick one."""
        gens = self.db(self.store.generations, vs, rel)
        latest = max(gens.values(), default=0)
        valid = [s for s in self.healthy(vs) if gens.get(s) == latest]
        if primary in valid:
            return str(primary)
        if not valid:
            raise CallFailed(grpc.StatusCode.UNKNOWN, "get primary: no primary")
        chosen = random.choice(sorted(valid))
        self.db(self.store.set_primary, vs, rel, chosen)
        log(f"elected {chosen} primary of {vs}/{rel} (was {primary or 'none'})")
        return chosen

    # -- the proxy --------------------------------------------------------------

    def handle(self, method: str, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        metadata = dict(context.invocation_metadata())
        result = lab_auth.check_gitaly_auth(self.token, metadata.get("authorization"))
        if not result.ok:
            log(f"{method}: {result.message} (peer {context.peer()})")
            context.abort(_CODES[result.outcome], result.message)
        try:
            if method == HEALTH_CHECK:
                yield HEALTH_SERVING
                return
            if method == SERVER_INFO:
                yield self.server_info().SerializeToString()
                return
            yield from self.route(method, requests, metadata)
        except CallFailed as exc:
            context.abort(exc.code, exc.details)

    def route(self, method: str, requests: Iterator[bytes],
              metadata: dict[str, Any]) -> Iterator[bytes]:
        cls = request_class(method)
        field = repository_field(cls) if cls is not None else None
        if cls is None or field is None:
            raise CallFailed(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {method}")
        first = cls.FromString(next(requests))
        repo = getattr(first, field)
        vs, rel = repo.storage_name, repo.relative_path
        if not first.HasField(field):
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, "repo scoped: repository not set")
        if vs not in self.nodes:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT,
                             "repo scoped: virtual storage does not exist")
        name = method.rsplit("/", 1)[1]
        if method == REPOSITORY_EXISTS and self.version >= EXISTS_FROM_DB:
            try:
                exists = self.db(self.store.exists, vs, rel)
            except psycopg2.Error as exc:
                raise CallFailed(grpc.StatusCode.UNKNOWN,
                                 f"repository exists: {db_error(exc)}") from None
            yield repository_pb2.RepositoryExistsResponse(exists=exists).SerializeToString()
            return
        created: tuple[int, str] | None = None
        try:
            found = self.db(self.store.repository, vs, rel)
            if method == CREATE_REPOSITORY:
                if found is not None:
                    raise CallFailed(grpc.StatusCode.ALREADY_EXISTS,
                                     "route repository creation: repository already exists")
                healthy = self.healthy(vs)
                if not healthy:
                    raise CallFailed(grpc.StatusCode.UNKNOWN,
                                     "route repository creation: no healthy nodes")
                primary = (random.choice(sorted(healthy)) if self.version >= PER_REPOSITORY
                           else self.shard_primary(vs, "route repository creation: get shard"))
                rid = self.db(self.store.reserve_id)
                path = pure.replica_path(rid) if self.version >= CLUSTER_PATHS else rel
                created = (rid, primary)
                targets = [primary]
            elif found is None and self.version < PER_REPOSITORY and name not in MUTATORS:
                # The node manager sends an accessor for a repository it has no record of
                # to the primary (RepositoryExists before a project's repository is made).
                path, targets = rel, [self.shard_primary(
                    vs, "accessor call: route repository accessor: get synced node")]
            elif found is None:
                raise CallFailed(grpc.StatusCode.NOT_FOUND, "repository not found")
            else:
                _, path, primary_was = found
                primary = self.elect(vs, rel, primary_was)
                if name in MUTATORS:
                    targets = [primary]
                else:
                    gens = self.db(self.store.generations, vs, rel)
                    latest = max(gens.values(), default=0)
                    targets = [random.choice(sorted(
                        s for s in self.healthy(vs) if gens.get(s) == latest))]
        except psycopg2.Error as exc:
            kind = "mutator" if name in MUTATORS else "accessor"
            raise CallFailed(grpc.StatusCode.UNKNOWN,
                             f"{kind} call: route repository {kind}: {db_error(exc)}") from None
        node = self.nodes[vs][targets[0]]
        repo.storage_name, repo.relative_path = node.storage, path
        forwarded = [(k, v) for k, v in metadata.items()
                     if k not in ("authorization", "user-agent") and not k.startswith(":")
                     and not k.startswith("grpc-")]
        outgoing = itertools_chain(first.SerializeToString(), requests)
        call = node.channel().stream_stream(method)
        try:
            yield from call(outgoing, metadata=[*forwarded, node.auth()], timeout=300)
        except grpc.RpcError as exc:
            raise CallFailed(exc.code(), exc.details() or "") from None
        if created is not None:
            # Recorded once the primary made it (the repository's row, generation 0).
            try:
                self.db(self.store.create, vs, rel, path, *created)
            except psycopg2.Error as exc:
                raise CallFailed(grpc.StatusCode.UNKNOWN,
                                 f"route repository creation: {db_error(exc)}") from None
        if name in MUTATORS:
            self.after_write(vs, rel, path, node.storage, removed=method == REMOVE_REPOSITORY)

    def after_write(self, vs: str, rel: str, path: str, primary: str, *,
                    removed: bool = False) -> None:
        try:
            if removed:
                self.db(self.store.delete, vs, rel)
                return
            gen = self.db(self.store.bump, vs, rel, primary)
            for storage in self.nodes[vs]:
                if storage != primary:
                    self.db(self.store.enqueue, {
                        "change": "update", "virtual_storage": vs, "relative_path": rel,
                        "replica_path": path, "source_node_storage": primary,
                        "target_node_storage": storage, "generation": gen})
        except psycopg2.Error as exc:
            log(f"recording the write to {vs}/{rel}: {db_error(exc)}")
            return
        # Praefect votes most writes on every up-to-date node in one reference transaction;
        # the sim brings the healthy secondaries along before the call completes.
        self.replicate()

    def server_info(self) -> Any:
        """Per virtual storage, the ServerInfo of one of its nodes, named as the virtual
        storage (service/server/info.go)."""
        statuses = []
        git_version = server_version = ""
        for vs, nodes in self.nodes.items():
            node = random.choice(list(nodes.values()))
            try:
                resp = server_pb2.ServerInfoResponse.FromString(
                    node.channel().unary_unary(SERVER_INFO)(
                        server_pb2.ServerInfoRequest().SerializeToString(),
                        metadata=[node.auth()], timeout=5))
            except grpc.RpcError as exc:
                log(f"error getting server info from {node.storage}: {exc.details()}")
                continue
            git_version = git_version or resp.git_version
            server_version = server_version or resp.server_version
            for status in resp.storage_statuses:
                if status.storage_name == node.storage:
                    status.storage_name = vs
                    statuses.append(status)
                    break
        return server_pb2.ServerInfoResponse(server_version=server_version,
                                             git_version=git_version,
                                             storage_statuses=statuses)

    # -- background work --------------------------------------------------------

    def check_health(self) -> bool:
        """One round of health checks: every node asked at once, then the ``node_status``
        rows written, all in one statement from PER_REPOSITORY (the health manager's
        ``updateHealthChecks``), each node's row on its own before (the SQL elector's
        ``updateNode``); whether every row was written."""
        nodes = [node for vs_nodes in self.nodes.values() for node in vs_nodes.values()]
        if self.checker is None:  # the same threads each round, as Praefect's goroutines
            self.checker = futures.ThreadPoolExecutor(max_workers=max(1, len(nodes)))
        answers = list(self.checker.map(self.answers_health_check, nodes))
        for node, ok in zip(nodes, answers, strict=True):
            was = node.healthy()
            if ok:
                node.last_ok = time.time()
            if was != node.healthy():
                log(f"node {node.storage} of {node.vs} is now "
                    f"{'healthy' if node.healthy() else 'unhealthy'}")
        checks = [(node.vs, node.storage, ok) for node, ok in zip(nodes, answers, strict=True)]
        writes = [checks] if self.version >= PER_REPOSITORY else [[check] for check in checks]
        recorded = True
        for write in writes:  # each on its own: a failed one leaves the others to be written
            try:
                self.db(self.store.record_health, self.name, write)
            except psycopg2.Error as exc:
                if recorded:
                    log(f"checking health failed: update checks: {db_error(exc)}")
                recorded = False
        return recorded

    @staticmethod
    def answers_health_check(node: Node) -> bool:
        try:
            node.channel().unary_unary(HEALTH_CHECK)(b"", metadata=[node.auth()], timeout=1)
        except grpc.RpcError:
            return False
        return True

    def first_health_update(self, stop: threading.Event) -> bool:
        """From PER_REPOSITORY Praefect serves only once its health manager has written a
        round of checks; the first round comes one tick after the start, and a round whose
        write fails (no schema yet) is not one. False when stopped first."""
        while not stop.wait(HEALTH_INTERVAL):
            try:
                if self.check_health():
                    return True
            except Exception as exc:
                log(f"check_health: {exc}")
        return False

    def replicate(self) -> None:
        try:
            jobs = self.db(self.store.ready_jobs)
        except psycopg2.Error:
            return
        seen: set[tuple[str, str, str]] = set()
        for job_id, job in reversed(jobs):  # the newest job per target does the work
            vs, target = job["virtual_storage"], job["target_node_storage"]
            key = (vs, job["relative_path"], target)
            if key in seen:
                self.db(self.store.finish, job_id, "completed")
                continue
            node = self.nodes.get(vs, {}).get(target)
            source = self.nodes.get(vs, {}).get(job["source_node_storage"])
            if node is None or source is None or not node.healthy() or not source.healthy():
                continue
            seen.add(key)
            # Three attempts per job (the queue's default), each taken as it is dequeued.
            attempts_left = self.db(self.store.take, job_id)
            servers = base64.b64encode(json.dumps({source.storage: {
                "address": source.address, "token": source.token}}).encode()).decode()
            request = repository_pb2.ReplicateRepositoryRequest(
                repository=shared_pb2.Repository(storage_name=target,
                                                 relative_path=job["replica_path"]),
                source=shared_pb2.Repository(storage_name=source.storage,
                                             relative_path=job["replica_path"]))
            try:
                node.channel().unary_unary("/gitaly.RepositoryService/ReplicateRepository")(
                    request.SerializeToString(),
                    metadata=[node.auth(), ("gitaly-servers", servers)], timeout=60)
            except grpc.RpcError as exc:
                state = "dead" if attempts_left <= 0 else "failed"
                log(f"replication job {job_id} to {target}: {exc.details()} "
                    f"(new state: {state})")
                self.db(self.store.finish, job_id, state)
                continue
            try:
                self.db(self.store.set_generation, vs, job["relative_path"], target,
                        int(job["generation"]))
                self.db(self.store.finish, job_id, "completed")
            except psycopg2.Error as exc:
                log(f"replication job {job_id}: {db_error(exc)}")

    def loop(self, every: float, fn: Any, stop: threading.Event, *,
             wait_first: bool = False) -> None:
        if wait_first:
            stop.wait(every)
        while not stop.is_set():
            try:
                fn()
            except Exception as exc:
                log(f"{fn.__name__}: {exc}")
            stop.wait(every)


def itertools_chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def db_error(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, praefect: Praefect) -> None:
        self.praefect = praefect

    def service(self, details: Any) -> Any:
        method = details.method

        def call(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
            return self.praefect.handle(method, requests, context)
        return grpc.stream_stream_rpc_method_handler(call)


def serve(praefect: Praefect) -> grpc.Server:
    conf = praefect.conf
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 4000),
        ("grpc.http2.max_ping_strikes", 0)])
    server.add_generic_rpc_handlers([Handler(praefect)])
    if conf.get("listen_addr"):
        server.add_insecure_port(conf["listen_addr"])
    if conf.get("tls_listen_addr"):
        with open(conf["key_path"], "rb") as k, open(conf["certificate_path"], "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port(conf["tls_listen_addr"], creds)
    server.start()
    listeners = [conf.get("listen_addr"),
                 conf.get("tls_listen_addr") and f"tls://{conf['tls_listen_addr']}"]
    log(f"listening on {', '.join(x for x in listeners if x)}; virtual storages "
        + "; ".join(f"{vs}: {', '.join(n)}" for vs, n in praefect.nodes.items()))
    return server


def open_database(praefect: Praefect) -> str | None:
    """Praefect's first step with a database: connect and ping it; the error, if any,
    after which Praefect exits (initDatabase, glsql.OpenDB's "send ping")."""
    where = praefect.store.dsn()
    log(f"establishing database connection to {where['host']}:{where['port']} ...")
    try:
        praefect.db(praefect.store.ping)
    except psycopg2.Error as exc:
        return f"send ping: {db_error(exc)}"
    log("database connection established")
    return None


def main() -> int:
    runtime = simconfig.read_runtime()
    praefect = Praefect(runtime["praefect"], simconfig.release(runtime))
    failed = open_database(praefect)
    if failed is not None:
        # The supervisor starts it again a second later, as runit does.
        log(f"SQL connection open failed: {failed}")
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Before PER_REPOSITORY the node manager checks the nodes at once and Praefect serves
    # meanwhile; from it, Praefect serves after its health manager's first written round.
    per_repository = praefect.version >= PER_REPOSITORY
    if per_repository and not praefect.first_health_update(stop):
        return 0
    server = serve(praefect)
    for every, fn, wait_first in ((HEALTH_INTERVAL, praefect.check_health, per_repository),
                                  (REPLICATE_INTERVAL, praefect.replicate, False)):
        threading.Thread(target=praefect.loop, args=(every, fn, stop),
                         kwargs={"wait_first": wait_first}, daemon=True).start()
    stop.wait()
    server.stop(grace=2).wait(3)
    for nodes in praefect.nodes.values():
        for node in nodes.values():
            node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
