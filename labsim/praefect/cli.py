"""`praefect -config FILE SUBCOMMAND`: the subcommands support engineers and the lab run.

Texts as Gitaly's Praefect prints them (v16.7.0 internal/cli/praefect/subcmd_*.go and
internal/praefect/nodes/ping.go; docs/fidelity.md "Gitaly Cluster"): a failing command
ends as cmd/praefect/main.go does, ``log.Fatal(err)`` (date, time, the error; exit 1).
The settings come from the node's runtime config (what reconfigure read from gitlab.rb);
the -config file must exist, as Praefect reads it first.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
import psycopg2

from lab.gitalypb import server_pb2
from lab.omnibus import auth as lab_auth
from labsim.common import simconfig
from labsim.praefect import store as db
from labsim.praefect.pure import go_code

PROG = "praefect"
DIAL_TIMEOUT = 10.0  # subcmd.go defaultDialTimeout


class Fatal(Exception):
    pass


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
        healthy = store.healthy(10.0)
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
            unavailable = not (primary in ok and g.get(primary or "") == latest)
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


COMMANDS: dict[str, Callable[[dict[str, Any], Callable[[str], None]], None]] = {
    "sql-ping": sql_ping, "sql-migrate": sql_migrate, "sql-migrate-status": sql_migrate_status,
    "dial-nodes": dial_nodes, "dataloss": dataloss,
}


def main(argv: list[str]) -> int:
    config = ""
    args = list(argv)
    rest: list[str] = []
    while args:
        arg = args.pop(0)
        if arg in ("-config", "--config") and args:
            config = args.pop(0)
        elif arg.startswith(("-config=", "--config=")):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if not config:
        print('Required flag "config" not set', file=sys.stderr)
        return 2
    if not rest or rest[0] not in COMMANDS:
        what = rest[0] if rest else ""
        print(f"praefect (gitlab-testlab-sim): the sim has {', '.join(COMMANDS)}"
              + (f"; not {what!r}" if what else ""), file=sys.stderr)
        return 1

    def out(line: str) -> None:
        print(line, flush=True)
    try:
        if not os.path.isfile(config):
            raise Fatal(f"open {config}: no such file or directory")
        conf = simconfig.read_runtime().get("praefect")
        if not conf:
            raise Fatal(f"open {config}: no such file or directory")
        if rest[0] == "dataloss":
            dataloss(conf, out, partially="--partially-unavailable" in rest[1:]
                     or "-partially-unavailable" in rest[1:])
        else:
            COMMANDS[rest[0]](conf, out)
    except Fatal as exc:
        print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
