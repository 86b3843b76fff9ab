"""`praefect -config FILE SUBCOMMAND`: the subcommands support engineers and the lab run.

Texts as Gitaly's Praefect prints them (v16.7.0 internal/cli/praefect/subcmd_*.go and
internal/praefect/nodes/ping.go; per release where they changed, labsim/praefect/texts.py;
docs/fidelity.md "Gitaly Cluster"): a failing command prints its error on stderr and exits 1,
from PRAEFECT_CLI_TOOLKIT through ``log.Fatal(err)`` (date and time first). A release
without a subcommand answers Praefect's "unknown subcommand". The settings come from the
node's runtime config (what reconfigure read from gitlab.rb); the -config file must exist,
as Praefect reads it first.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg2

from lab.omnibus import auth as lab_auth
from lab.omnibus.praefect import FAILOVER_TIMEOUT
from lab.omnibus.release import PRAEFECT_AUTHORITATIVE_REPLICA, PRAEFECT_CHECK_VERBOSE, Version
from labsim.common import simconfig
from labsim.praefect import store as db
from labsim.praefect import texts
from labsim.praefect.pure import go_code

if TYPE_CHECKING:
    import grpc

# gRPC (and Gitaly's messages) are imported by the subcommands that dial a node: the lab
# runs `sql-migrate` while a cluster lab boots, and the import cost it most of its CPU.

PROG = "praefect"
DIAL_TIMEOUT = 10.0  # subcmd.go defaultDialTimeout


class Fatal(Exception):
    """The subcommand failed with this error (exit 1); ``exit_coder``: the command wrapped
    it in urfave/cli's cli.Exit, printed without log's date and time."""

    def __init__(self, message: str, *, exit_coder: bool = False) -> None:
        super().__init__(message)
        self.exit_coder = exit_coder




def go_rpc_error(exc: grpc.RpcError) -> str:
    return f"rpc error: code = {go_code(exc.code())} desc = {exc.details()}"


def _store(conf: dict[str, Any]) -> db.Store:
    return db.Store(conf.get("database") or {}, timeout=10)


def sql_ping(conf: dict[str, Any], out: Callable[[str], None]) -> None:
    sub = f"{PROG} sql-ping"
    try:
        _store(conf).server_version()
    except psycopg2.Error as exc:
        raise Fatal(f"{sub}: fail: {' '.join(str(exc).split())}") from None
    out(f"{sub}: OK")


def sql_migrate(conf: dict[str, Any], out: Callable[[str], None]) -> None:
    sub = f"{PROG} sql-migrate"
    store = _store(conf)
    try:
        done = store.applied()
        todo = [(mid, sql) for mid, sql in db.MIGRATIONS if mid not in done]
        if not todo:
            out(f"{sub}: all migrations are up")
            return
        out(f"{sub}: migrations to apply: {len(todo)}\n")
        for mid, sql in todo:
            out(f"=  {stamp()} {mid}: migrating")
            start = time.monotonic()
            store.migrate(mid, sql)
            out(f"== {stamp()} {mid}: applied ({(time.monotonic() - start) * 1000:.6f}ms)")
    except psycopg2.Error as exc:
        raise Fatal(f"{stamp()}: fail: {' '.join(str(exc).split())}") from None
    out(f"\n{sub}: OK (applied {len(todo)} migrations)")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")  # sql_migrate.go timeFmt "2006-01-02T15:04:05"


def sql_migrate_status(conf: dict[str, Any], out: Callable[[str], None]) -> None:
    store = _store(conf)
    try:
        with store.tx() as cur:
            cur.execute(f"SELECT id, applied_at FROM {db.MIGRATION_TABLE}")
            applied = {str(i): str(a) for i, a in cur.fetchall()}
    except psycopg2.Error as exc:
        raise Fatal(" ".join(str(exc).split())) from None
    rows = [(mid, applied.get(mid, "no")) for mid, _ in db.MIGRATIONS]
    rows += [(mid, "unknown migration") for mid in applied if mid not in dict(db.MIGRATIONS)]
    rows.sort()
    width = [max(len("MIGRATION"), *(len(r[0]) for r in rows)),
             max(len("APPLIED"), *(len(r[1]) for r in rows))]
    line = f"+{'-' * (width[0] + 2)}+{'-' * (width[1] + 2)}+"
    # olekukonko/tablewriter: upper-cased, centred headers between border lines.
    out(line)
    out(f"| {'MIGRATION'.center(width[0])} | {'APPLIED'.center(width[1])} |")
    out(line)
    for mid, when in rows:
        out(f"| {mid.ljust(width[0])} | {when.ljust(width[1])} |")
    out(line)


def dial_nodes(conf: dict[str, Any], out: Callable[[str], None]) -> None:
    """nodes.PingAll: per Gitaly address, dial, health check, then check that the node
    serves the storage names Praefect's config gives it (ServerInfo)."""
    by_address: dict[str, dict[str, Any]] = {}
    for vs, nodes in conf["virtual_storages"].items():
        for n in nodes:
            entry = by_address.setdefault(n["address"], {"storages": {}, "token": n["token"]})
            entry["storages"].setdefault(n["storage"], []).append(vs)
            entry["token"] = n["token"]
    unhealthy = [address for address, entry in by_address.items()
                 if not ping(address, entry, out)]
    if unhealthy:
        raise Fatal(f"the following nodes are not healthy: {', '.join(unhealthy)}")


def ping(address: str, entry: dict[str, Any], out: Callable[[str], None]) -> bool:
    import grpc

    from lab.gitalypb import server_pb2

    def say(msg: str) -> None:
        out(f"[{address}]: {msg}")
    scheme, _, rest = address.partition("://")
    target = rest if scheme in ("tcp", "tls") else address
    channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials(simconfig.trusted_ca_pem()))
               if scheme == "tls" else grpc.insecure_channel(target))
    meta = [("authorization", "Bearer " + lab_auth.gitaly_v2_token(entry["token"]))]
    say("dialing...")
    try:
        grpc.channel_ready_future(channel).result(timeout=DIAL_TIMEOUT)
    except grpc.FutureTimeoutError:
        say("ERROR: dialing failed: context deadline exceeded")
        return False
    say("dialed successfully!")
    say("checking health...")
    try:
        resp = channel.unary_unary("/grpc.health.v1.Health/Check")(b"", metadata=meta,
                                                                   timeout=DIAL_TIMEOUT)
    except grpc.RpcError as exc:
        say(f"ERROR: unable to request health check: {go_rpc_error(exc)}")
        return False
    if resp != b"\x08\x01":
        say("ERROR: health check did not report serving, instead reported: NOT_SERVING")
        return False
    say("SUCCESS: node is healthy!")
    say("checking consistency...")
    storages: dict[str, list[str]] = entry["storages"]
    try:
        info = server_pb2.ServerInfoResponse.FromString(
            channel.unary_unary("/gitaly.ServerService/ServerInfo")(
                server_pb2.ServerInfoRequest().SerializeToString(), metadata=meta,
                timeout=DIAL_TIMEOUT))
    except grpc.RpcError as exc:
        say(f"ERROR: failed to receive state from the remote: {go_rpc_error(exc)}")
        return consistency_failed(say)
    if not info.storage_statuses:
        say("ERROR: remote has no configured storages")
        return consistency_failed(say)
    known = set(storages)
    consistent = True
    for status in info.storage_statuses:
        if status.storage_name not in storages:
            continue
        if status.readable and status.writeable:
            vss = "[" + " ".join(storages[status.storage_name]) + "]"
            say(f"SUCCESS: confirmed Gitaly storage {json.dumps(status.storage_name)} in "
                f"virtual storages {vss} is served")
            known.discard(status.storage_name)
        else:
            say(f"ERROR: storage {json.dumps(status.storage_name)} is not readable or writable")
            consistent = False
    for storage in sorted(known):
        say(f"ERROR: configured storage was not reported by remote: {json.dumps(storage)}")
        consistent = False
    if not consistent:
        return consistency_failed(say)
    say("SUCCESS: node configuration is consistent!")
    return True


def consistency_failed(say: Callable[[str], None]) -> bool:
    say("ERROR: consistency check failed")
    return False


def dataloss(conf: dict[str, Any], out: Callable[[str], None], *, partially: bool = False) -> None:
    """Repositories without a healthy, up-to-date primary (with --partially-unavailable,
    also those with an outdated copy), from the database as Praefect's Dataloss RPC reads
    them; healthy = a health check seen within the failover timeout (node_status)."""
    store = _store(conf)
    try:
        healthy = store.healthy(FAILOVER_TIMEOUT)
        repos = store.all_repositories()
        gens = {(vs, rel): store.generations(vs, rel) for vs, rel, _ in repos}
    except psycopg2.Error as exc:
        raise Fatal(f"error checking: {' '.join(str(exc).split())}") from None
    for vs in sorted(conf["virtual_storages"]):
        out(f"Virtual storage: {vs}")
        assigned = [n["storage"] for n in conf["virtual_storages"][vs]]
        found = False
        for rvs, rel, primary in repos:
            if rvs != vs:
                continue
            g = gens[(vs, rel)]
            latest = max(g.values(), default=0)
            ok = set(healthy.get(vs, set()))
            unavailable = is_unavailable(g, primary, ok)
            outdated = any(g.get(s, -1) < latest for s in assigned)
            if not unavailable and not (partially and outdated):
                continue
            if not found:
                out("  Repositories:")
            found = True
            out(f"    {rel}{' (unavailable)' if unavailable else ''}:")
            out(f"      Primary: {primary or 'No Primary'}")
            out("      In-Sync Storages:")
            for s in sorted(x for x in g if g[x] == latest):
                out(f"        {s}{', assigned host' if s in assigned else ''}"
                    f"{'' if s in ok else ', unhealthy'}")
            out("      Outdated Storages:")
            for s in sorted(x for x in assigned if g.get(x, -1) < latest):
                behind = latest - g.get(s, -1)
                out(f"        {s} is behind by {behind} change{'s' if behind > 1 else ''} or less"
                    f", assigned host{'' if s in ok else ', unhealthy'}")
        if not found:
            out("  All repositories are fully available on all assigned storages!" if partially
                else "  All repositories are available!")


def is_unavailable(generations: dict[str, int], primary: str | None, healthy: set[str]) -> bool:
    """No healthy primary holding the latest generation (Praefect's valid_primaries)."""
    latest = max(generations.values(), default=0)
    return not (primary in healthy and generations.get(primary or "") == latest)


# -- check ---------------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


def check(conf: dict[str, Any], version: Version, args: list[str],
          write: Callable[[str], None]) -> None:
    """`praefect check [-q]`: each of the release's checks, its heading, "Passed" or
    "Failed (<severity>) error: …", then the summary; "checks failed" if a fatal one did."""
    flags = texts.parse_flags(args, bools=("q",) if texts.has_quiet_flag(version) else ())
    quiet = flags.get("q", "false") in ("1", "t", "T", "true", "TRUE", "True")  # ParseBool
    failed: list[texts.Check] = []
    for c in texts.checks_for(version):
        write(texts.check_heading(c, quiet=quiet, version=version))

        def say(line: str) -> None:
            if not quiet:
                write(line + "\n")
        try:
            CHECK_RUNS[c.name](conf, version, say)
            error = None
        except CheckFailed as exc:
            error = str(exc)
            failed.append(c)
        write(texts.check_outcome(c, error))
    write(texts.check_summary(failed))
    if any(c.severity == texts.FATAL for c in failed):
        raise Fatal("checks failed")


def db_text(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def check_migrations(conf: dict[str, Any], version: Version, say: Callable[[str], None]) -> None:
    try:
        done = _store(conf).applied()
    except psycopg2.Error as exc:
        raise CheckFailed(db_text(exc)) from None
    missing = [mid for mid, _ in db.MIGRATIONS if mid not in done]
    if missing:
        raise CheckFailed(f"{len(missing)} migrations have not been run")


def check_nodes(conf: dict[str, Any], version: Version, say: Callable[[str], None]) -> None:
    if version < PRAEFECT_CHECK_VERBOSE:
        # log.Default(): stderr, the date and time before each line.
        def say_log(line: str) -> None:
            print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {line}", file=sys.stderr, flush=True)
        say = say_log
    try:
        dial_nodes(conf, say)
    except Fatal as exc:
        raise CheckFailed(str(exc)) from None


def check_read_write(conf: dict[str, Any], version: Version,
                     say: Callable[[str], None]) -> None:
    """SELECT from hello_world, INSERT a row, roll back (NewPostgresReadWriteCheck)."""
    try:
        conn = psycopg2.connect(**_store(conf).dsn())
    except psycopg2.Error as exc:
        raise CheckFailed(f"error opening database connection: {db_text(exc)}") from None
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT id FROM hello_world")
                cur.fetchone()
            except psycopg2.Error as exc:
                raise CheckFailed(f"error reading from table: {db_text(exc)}") from None
            say("successfully read from database")
            try:
                cur.execute("INSERT INTO hello_world (id) VALUES(1)")
            except psycopg2.Error as exc:
                raise CheckFailed(f"error writing to table: {db_text(exc)}") from None
            if cur.rowcount != 1:
                raise CheckFailed("failed to insert row")
            say("successfully wrote to database")
    finally:
        conn.rollback()
        conn.close()


def check_unavailable(conf: dict[str, Any], version: Version,
                      say: Callable[[str], None]) -> None:
    store = _store(conf)
    try:
        healthy = store.healthy(FAILOVER_TIMEOUT)
        counts: dict[str, int] = {}
        for vs, rel, primary in store.all_repositories():
            if vs in conf["virtual_storages"] and is_unavailable(
                    store.generations(vs, rel), primary, set(healthy.get(vs, set()))):
                counts[vs] = counts.get(vs, 0) + 1
    except psycopg2.Error as exc:
        raise CheckFailed(db_text(exc)) from None
    for line in texts.unavailable_lines(counts):
        say(line)
    if counts:
        raise CheckFailed("repositories unavailable")


def check_clock(conf: dict[str, Any], version: Version, say: Callable[[str], None]) -> None:
    """Praefect's own clock against NTP_HOST (default pool.ntp.org), then each node's
    ClockSynced: the first failure is the check's error (an errgroup in Praefect)."""
    import grpc

    try:
        drift_ms = texts.drift_threshold_ms(os.environ)
    except ValueError as exc:
        raise CheckFailed(str(exc)) from None
    ntp_host = os.environ.get("NTP_HOST", "")
    say(texts.clock_message(ntp_host, drift_ms, correlation_id()))
    try:
        offset = ntp_offset(ntp_host or texts.DEFAULT_NTP_HOST, timeout=5.0)
    except OSError as exc:
        raise CheckFailed(texts.ntp_failure(version, ntp_host, str(exc))) from None
    if abs(offset) * 1000 > drift_ms:
        raise CheckFailed("praefect: clock is not synced")
    # ClockSyncedRequest{ntp_host = 1, drift_threshold_millis = 2}
    host = ntp_host.encode()
    request = b"\x0a" + _varint(len(host)) + host + b"\x10" + _varint(drift_ms)
    for nodes in conf["virtual_storages"].values():
        for n in nodes:
            scheme, _, rest = n["address"].partition("://")
            target = rest if scheme in ("tcp", "tls") else n["address"]
            channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials(
                simconfig.trusted_ca_pem())) if scheme == "tls" else grpc.insecure_channel(target))
            meta = [("authorization", "Bearer " + lab_auth.gitaly_v2_token(n["token"]))]
            try:
                resp = channel.unary_unary("/gitaly.ServerService/ClockSynced")(
                    request, metadata=meta, timeout=5)
            except grpc.RpcError as exc:
                raise CheckFailed(f"gitaly node at {n['address']}: {go_rpc_error(exc)}") from None
            if resp != b"\x08\x01":  # ClockSyncedResponse{synced: true}
                raise CheckFailed(f"gitaly node at {n['address']}: clock is not synced")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def correlation_id() -> str:
    """labkit's correlation.SafeRandomID: a ULID (26 Crockford base32 characters)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(time.time() * 1000) << 80) | random.getrandbits(80)
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def ntp_offset(host: str, *, timeout: float) -> float:
    """One SNTP query (what beevik/ntp's Query sends): the clock's offset in seconds.
    OSError texts follow Go's net errors for the usual offline cases."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, 123, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror:
        raise OSError(f"lookup {host}{resolver_suffix()}: no such host") from None
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        t1 = time.time()
        sock.sendto(b"\x23" + b"\0" * 47, address)  # LI 0, version 4, mode 3 (client)
        try:
            data, _ = sock.recvfrom(48)
        except TimeoutError:
            here = ":".join(map(str, sock.getsockname()[:2]))
            there = ":".join(map(str, address[:2]))
            raise OSError(f"read udp {here}->{there}: i/o timeout") from None
        t4 = time.time()
    if len(data) < 48:
        raise OSError("invalid response")
    ntp_epoch = 2208988800

    def stamp(at: int) -> float:
        secs, frac = struct.unpack("!II", data[at:at + 8])
        return float(secs - ntp_epoch + frac / 2**32)
    return ((stamp(32) - t1) + (stamp(40) - t4)) / 2


def resolver_suffix() -> str:
    """Go's pure resolver names the server it asked: " on 127.0.0.11:53"."""
    try:
        with open("/etc/resolv.conf") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return f" on {parts[1]}:53"
    except OSError:
        pass
    return ""


CHECK_RUNS: dict[str, Callable[[dict[str, Any], Version, Callable[[str], None]], None]] = {
    "praefect migrations": check_migrations,
    "gitaly node connectivity & disk access": check_nodes,
    "database read/write": check_read_write,
    "unavailable repositories": check_unavailable,
    "clock synchronization": check_clock,
}


# -- list-storages and accept-dataloss ---------------------------------------------------------

def list_storages(conf: dict[str, Any], version: Version, args: list[str],
                  write: Callable[[str], None]) -> None:
    flags = texts.parse_flags(args, strings=("virtual-storage",))
    if flags.get("positional"):
        raise Fatal(texts.positional_args("list-storages"), exit_coder=True)
    write(texts.list_storages(conf["virtual_storages"], flags.get("virtual-storage", "")))


def accept_dataloss(conf: dict[str, Any], version: Version, args: list[str],
                    write: Callable[[str], None]) -> None:
    """SetAuthoritativeStorage as Praefect's info service runs it, on the database: before
    PRAEFECT_AUTHORITATIVE_REPLICA the storage's generation goes to the latest + 1 and each
    other storage gets an "update" replication job from it; from it only the generation
    (Praefect's reconciler, which the sim lacks, schedules the replication)."""
    flags = texts.parse_flags(args, strings=texts.ACCEPT_FLAGS)
    if flags.get("positional"):
        raise Fatal(texts.positional_args("accept-dataloss"))
    missing = texts.missing_flags(version, flags)
    if missing:
        raise Fatal(missing)
    vs, rel, storage = (flags[f] for f in texts.ACCEPT_FLAGS)
    storages = [n["storage"] for n in conf["virtual_storages"].get(vs, [])]
    if not storages:
        raise Fatal(texts.set_authoritative_error(
            f"unknown virtual storage: {texts.go_quote(vs)}"), exit_coder=True)
    if storage not in storages:
        raise Fatal(texts.set_authoritative_error(
            f"unknown authoritative storage: {texts.go_quote(storage)}"), exit_coder=True)
    store = _store(conf)
    try:
        found = store.repository(vs, rel)
        if found is None:
            raise Fatal(texts.set_authoritative_error(
                texts.repository_missing(version, vs, rel)), exit_coder=True)
        generation = store.bump(vs, rel, storage)
        if version < PRAEFECT_AUTHORITATIVE_REPLICA:
            for target in storages:
                if target != storage:
                    store.enqueue({"change": "update", "virtual_storage": vs,
                                   "relative_path": rel, "replica_path": found[1],
                                   "source_node_storage": storage,
                                   "target_node_storage": target, "generation": generation})
    except psycopg2.Error as exc:
        raise Fatal("set authoritative storage: rpc error: code = Internal desc = "
                    f"{db_text(exc)}", exit_coder=True) from None


COMMANDS: dict[str, Callable[[dict[str, Any], Callable[[str], None]], None]] = {
    "sql-ping": sql_ping, "sql-migrate": sql_migrate, "sql-migrate-status": sql_migrate_status,
    "dial-nodes": dial_nodes, "dataloss": dataloss,
}
#: Subcommands that take their own flags and know the release.
FLAGGED: dict[str, Callable[[dict[str, Any], Version, list[str], Callable[[str], None]], None]] = {
    "check": check, "list-storages": list_storages, "accept-dataloss": accept_dataloss,
}


def main(argv: list[str]) -> int:
    config = ""
    args = list(argv)
    rest: list[str] = []
    while args:
        arg = args.pop(0)
        if not rest and arg in ("-config", "--config") and args:
            config = args.pop(0)
        elif not rest and arg.startswith(("-config=", "--config=")):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if not config:
        print('Required flag "config" not set', file=sys.stderr)
        return 2
    what = rest[0] if rest else ""
    if what not in COMMANDS and what not in FLAGGED:
        print(f"praefect (gitlab-testlab-sim): the sim has {', '.join([*COMMANDS, *FLAGGED])}"
              + (f"; not {what!r}" if what else ""), file=sys.stderr)
        return 1

    def out(line: str) -> None:
        print(line, flush=True)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
    runtime = simconfig.read_runtime()
    version = simconfig.release(runtime)
    try:
        if not os.path.isfile(config):
            raise Fatal(f"open {config}: no such file or directory")
        conf = runtime.get("praefect")
        if not conf:
            raise Fatal(f"open {config}: no such file or directory")
        if not texts.has_subcommand(what, version):
            print(texts.unknown_subcommand(what), file=sys.stderr, flush=True)
            return 1
        if what in FLAGGED:
            FLAGGED[what](conf, version, rest[1:], write)
        elif what == "dataloss":
            dataloss(conf, out, partially="--partially-unavailable" in rest[1:]
                     or "-partially-unavailable" in rest[1:])
        else:
            COMMANDS[what](conf, out)
    except texts.Usage as exc:
        print(exc, file=sys.stderr, flush=True)
        return 2
    except Fatal as exc:
        print(texts.failure(version, str(exc), exit_coder=exc.exit_coder), file=sys.stderr,
              flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
