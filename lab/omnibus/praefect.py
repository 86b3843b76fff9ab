"""What each Omnibus release knows about Praefect (Gitaly Cluster) and its database.

Sources (omnibus-gitlab, files/gitlab-cookbooks/praefect/ at each tag; docs/fidelity.md):
- 12.4.0 is the first release with a ``praefect`` cookbook (attributes: one
  ``virtual_storage_name`` and a ``storage_nodes`` list with a static primary, no database).
- 12.6 replaced them with ``praefect['virtual_storages']`` and the ``database_*`` keys.
- 13.3.0 is the first release whose defaults run the documented cluster: Praefect's
  attributes turn ``failover_enabled`` on with ``failover_election_strategy = 'sql'``
  (a primary elected through the database), Gitaly's Praefect keeps its replication
  queue in PostgreSQL by default (13.1, ``memory_queue_enabled`` false) and
  ``tls_listen_addr`` exists (13.2). The lab's ``cluster`` topology starts there.
- 13.9: a virtual storage entry is ``{'default_replication_factor' => N, 'nodes' => {...}}``
  (templates/default/praefect-config.toml.erb); before, the entry was the nodes themselves.
- 15.9: ``praefect['configuration']`` (praefect/libraries/praefect.rb, remap_legacy_values;
  attributes/default.rb) in Praefect's own structure; the legacy keys are remapped, and
  16.0 removes them (package/libraries/deprecations.rb, praefect_legacy_configuration_
  deprecations: "In GitLab 15.9, Praefect's configuration ... was changed").

Standard library only, like the rest of lab/omnibus.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.omnibus import keypaths
from lab.omnibus.release import (
    PRAEFECT_CLUSTER,
    PRAEFECT_CONFIGURATION,
    PRAEFECT_COOKBOOK,
    PRAEFECT_LEGACY_REMOVED,
    PRAEFECT_REPLICATION_FACTOR,
    Version,
)

# A reader of evaluated gitlab.rb settings (lab.omnibus.dialect.getter): a key path -> value.
Getter = Any

FIRST_COOKBOOK = str(PRAEFECT_COOKBOOK)
FIRST_CLUSTER = str(PRAEFECT_CLUSTER)
PORT = 2305
TLS_PORT = 3305
DB_PORT = 5432
DB_NAME = "praefect_production"
DB_USER = "praefect"
DEFAULT_GITALY_DATA = "/var/opt/gitlab/git-data"  # where the docs keep each node's storage
CONFIG_TOML = "/var/opt/gitlab/praefect/config.toml"
BINARY = "/opt/gitlab/embedded/bin/praefect"


@dataclass(frozen=True)
class PraefectDialect:
    version: Version
    configuration: bool  # praefect['configuration'] (PRAEFECT_CONFIGURATION) or the legacy keys
    legacy: bool  # legacy praefect[...] keys still read (until PRAEFECT_LEGACY_REMOVED)
    replication_factor: bool  # default_replication_factor (PRAEFECT_REPLICATION_FACTOR)

    @property
    def name(self) -> str:
        return "praefect['configuration']" if self.configuration else \
            "legacy praefect[...] keys"


def praefect_dialect(version: Version) -> PraefectDialect:
    return PraefectDialect(version=version, configuration=version >= PRAEFECT_CONFIGURATION,
                           legacy=version < PRAEFECT_LEGACY_REMOVED,
                           replication_factor=version >= PRAEFECT_REPLICATION_FACTOR)


def cluster_unsupported(version: Version) -> str | None:
    """Why a Gitaly Cluster lab can't be rendered for ``version`` (None: it can)."""
    if version >= PRAEFECT_CLUSTER:
        return None
    if version >= PRAEFECT_COOKBOOK:
        why = (f"Omnibus has a praefect cookbook from {FIRST_COOKBOOK}, but its defaults run a "
               "database-backed cluster with automatic failover only from "
               f"{FIRST_CLUSTER}")
    else:
        why = f"Omnibus has no Praefect before {FIRST_COOKBOOK}"
    return (f"Gitaly Cluster (Praefect) labs start at GitLab {FIRST_CLUSTER}: {why}; "
            f"use --version {FIRST_CLUSTER} or newer")



# --- commands the lab runs on the nodes (the docs' manual steps) -------------------------

GITLAB_PSQL = "/opt/gitlab/bin/gitlab-psql"
CHPST = "/opt/gitlab/embedded/bin/chpst"  # runs Praefect's commands as git, as `sudo -u git`


def _psql(*sql: str, database: str = "template1") -> list[str]:
    # template1 exists on every PostgreSQL server (the docs' post-configuration uses it).
    # Each -c runs on its own (not in one transaction); ON_ERROR_STOP ends at a failed one.
    return [GITLAB_PSQL, "-d", database, "-v", "ON_ERROR_STOP=1", "-tA",
            *(arg for statement in sql for arg in ("-c", statement))]


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def database_setup_cmd(password: str) -> list[str]:
    """The docs' "Praefect PostgreSQL post-configuration", safe to run again, in one exec:
    the role (with its password), then the database owned by it unless it exists. The SQL
    goes to psql's standard input, because CREATE DATABASE can run neither in a
    transaction block nor in a DO block, and psql's ``\\gexec`` (which runs it only where
    a query returns it) works in a script but not in ``-c``. psql prints
    ``DATABASE_CREATED`` when it made the database (``database_made``)."""
    role = (f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"{sql_literal(DB_USER)}) THEN CREATE ROLE {DB_USER} WITH LOGIN PASSWORD "
            f"{sql_literal(password)}; ELSE ALTER ROLE {DB_USER} WITH LOGIN PASSWORD "
            f"{sql_literal(password)}; END IF; END$$;")
    create = f"CREATE DATABASE {DB_NAME} WITH OWNER {DB_USER} ENCODING 'UTF8'"
    make = (f"SELECT {sql_literal(create)} WHERE NOT EXISTS (SELECT FROM pg_database "
            f"WHERE datname = {sql_literal(DB_NAME)}) \\gexec")
    psql = " ".join(shlex.quote(arg) for arg in _psql())
    return ["/bin/sh", "-c", f"printf '%s\\n' {shlex.quote(role)} {shlex.quote(make)} | {psql}"]


#: psql's command tag for a CREATE DATABASE it ran (printed without -q).
DATABASE_CREATED = "CREATE DATABASE"


def database_made(stdout: str) -> bool:
    """``database_setup_cmd``'s output says it created the database (else it was there)."""
    return DATABASE_CREATED in (line.strip() for line in stdout.splitlines())


# --- Praefect's health checks of its Gitaly nodes -----------------------------------------
# Gitaly internal/praefect/nodes: sql_elector.go (13.x: a health check of every node each
# second, defaultFailoverTimeoutSeconds = 10) and, from 14.0, health_manager.go (the same
# checks, healthinessTimeout = failoverTimeout, run on a 1 s ticker: cmd/praefect/main.go
# `hm.Run(ctx, helper.NewTimerTicker(time.Second))`, internal/cli/praefect/serve.go in
# 16.x). Each check writes the node's row of ``node_status`` (praefect_name, shard_name =
# the virtual storage, node_name = the Gitaly node's storage name, last_contact_attempt_at,
# and last_seen_active_at, set only when the check succeeded). A node is healthy iff
# last_seen_active_at >= NOW() - FAILOVER_TIMEOUT (with several Praefects, for a quorum of
# them; the lab has one). Praefect takes the healthy set from that query on each tick, so
# it acts on a node's unhealthiness within one HEALTH_CHECK_INTERVAL after FAILOVER_TIMEOUT.

#: Seconds between two health checks of every Gitaly node.
HEALTH_CHECK_INTERVAL = 1.0
#: Seconds after a node's last successful health check that it counts as unhealthy.
FAILOVER_TIMEOUT = 10.0


@dataclass(frozen=True)
class NodeHealth:
    """What ``node_status`` says of a Gitaly node's health checks (``node_health_cmd``)."""

    seen_ago: float | None  # seconds since the last successful check; None: never
    attempt_ago: float | None  # seconds since the last attempted check; None: never
    recorded: bool = True  # False: no row at all (Praefect has not checked it yet)

    @property
    def acted_on(self) -> bool:
        """Past the failover timeout by at least one health-check tick (or never seen):
        Praefect's healthy set, taken on each tick, leaves the node out, so what it routes
        next avoids it."""
        return self.seen_ago is None or self.seen_ago > FAILOVER_TIMEOUT + HEALTH_CHECK_INTERVAL


def node_health_cmd(node: str, virtual_storage: str) -> list[str]:
    """``gitlab-psql`` on the database node: the seconds since ``node``'s last successful
    health check in ``virtual_storage`` and since the last attempted one, by the database's
    clock (NOW()), as ``seen|attempt`` (empty: never; no line: no row). The latest over
    Praefect names: the lab has one Praefect, and a renamed one leaves older rows behind.
    The names go in as SQL literals only."""
    sql = ("SELECT EXTRACT(EPOCH FROM NOW() - MAX(last_seen_active_at)), "
           "EXTRACT(EPOCH FROM NOW() - MAX(last_contact_attempt_at)) "
           f"FROM node_status WHERE node_name = {sql_literal(node)} "
           f"AND shard_name = {sql_literal(virtual_storage)} HAVING COUNT(*) > 0")
    return _psql(sql, database=DB_NAME)


def routing_cmd(virtual_storages: Iterable[str]) -> list[str]:
    """``gitlab-psql`` on the database node: per virtual storage, how many of its Gitaly
    nodes Praefect's health checks found healthy within the failover timeout, as
    ``name|count`` lines (a virtual storage with none has no line). With none, Praefect
    routes nothing (13.x answers "primary is not healthy")."""
    names = ", ".join(sql_literal(v) for v in sorted(set(virtual_storages)))
    sql = ("SELECT shard_name, COUNT(DISTINCT node_name) FROM node_status "
           f"WHERE shard_name IN ({names}) AND last_seen_active_at >= "
           f"NOW() - make_interval(secs => {FAILOVER_TIMEOUT:g}) GROUP BY shard_name")
    return _psql(sql, database=DB_NAME)


def unroutable(output: str, virtual_storages: Iterable[str]) -> list[str]:
    """The virtual storages ``routing_cmd``'s output shows with no healthy Gitaly node."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        name, _, count = line.strip().rpartition("|")
        if name and count.isdigit():
            counts[name] = int(count)
    return sorted(v for v in set(virtual_storages) if counts.get(v, 0) < 1)


def parse_node_health(output: str) -> NodeHealth:
    """``node_health_cmd``'s output; ValueError when it has another shape."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return NodeHealth(None, None, recorded=False)
    parts = lines[0].split("|")
    if len(lines) != 1 or len(parts) != 2:
        raise ValueError(f"unexpected psql output {output.strip()[:200]!r}")
    try:
        seen, attempt = (float(x) if x else None for x in parts)
    except ValueError:
        raise ValueError(f"unexpected psql output {output.strip()[:200]!r}") from None
    return NodeHealth(seen, attempt)


# What `lab collect` asks a Praefect node: its database, its Gitaly nodes, repositories
# behind or without a primary, its migrations (all in Gitaly's cmd/praefect from v13.3.0).
STATE_SUBCOMMANDS = ("sql-ping", "dial-nodes", "dataloss", "sql-migrate-status")


def praefect_cmd(subcommand: str, *args: str) -> list[str]:
    """``praefect -config config.toml SUBCOMMAND``, as the git user (the docs' ``sudo -u git``)."""
    return [CHPST, "-u", "git:git", BINARY, "-config", CONFIG_TOML, subcommand, *args]


# --- reading a Praefect node's gitlab.rb ------------------------------------------------

@dataclass(frozen=True)
class PraefectBackend:
    storage: str  # the Gitaly node's storage name, as Praefect calls it
    address: str
    token: str


@dataclass
class PraefectFacts:
    """What a Praefect node's gitlab.rb configures, in either dialect."""

    enabled: bool = False
    listen_addr: str = ""
    tls_listen_addr: str = ""
    certificate_path: str = ""
    key_path: str = ""
    token: str | None = None  # the external token it accepts
    virtual_storages: dict[str, list[PraefectBackend]] = field(default_factory=dict)
    replication_factor: dict[str, int] = field(default_factory=dict)
    database: dict[str, str] = field(default_factory=dict)  # host, port, user, password, dbname


def _first(get: Getter, setting: str, version: Version) -> Any:
    """The first spelling of ``setting`` that ``version`` reads and the file sets."""
    for key in keypaths.read_order(setting, version):
        value = get(*key.path)
        if value is not None:
            return value
    return None


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def read_praefect(get: Getter, version: Version) -> PraefectFacts:
    """A Praefect node's settings as ``version``'s Omnibus reads them (lab.omnibus.keypaths:
    praefect['configuration'] from 15.9, a legacy key filling what it leaves unset until 16.0,
    as remap_legacy_values does)."""
    d = praefect_dialect(version)
    f = PraefectFacts(enabled=_first(get, keypaths.PRAEFECT_ENABLED, version) is True)
    f.listen_addr = _str(_first(get, keypaths.PRAEFECT_LISTEN, version))
    f.tls_listen_addr = _str(_first(get, keypaths.PRAEFECT_TLS_LISTEN, version))
    f.certificate_path = _str(_first(get, keypaths.PRAEFECT_CERTIFICATE, version))
    f.key_path = _str(_first(get, keypaths.PRAEFECT_KEY, version))
    token = _first(get, keypaths.PRAEFECT_TOKEN, version)
    f.token = None if token is None else str(token)
    for field_ in keypaths.PRAEFECT_DB_FIELDS:
        value = _first(get, f"{keypaths.PRAEFECT_DB} {field_}", version)
        if value is not None:
            f.database[field_] = str(value)
    storages = _first(get, keypaths.PRAEFECT_VIRTUAL_STORAGES_KEY, version)
    if isinstance(storages, list):  # praefect['configuration'][:virtual_storage]
        for vs in storages:
            if not isinstance(vs, Mapping) or not vs.get("name"):
                continue
            name = str(vs["name"])
            raw = vs.get("node")
            nodes: list[Any] = raw if isinstance(raw, list) else []
            f.virtual_storages[name] = [
                PraefectBackend(_str(n.get("storage")), _str(n.get("address")),
                                _str(n.get("token")))
                for n in nodes if isinstance(n, Mapping)]
            if isinstance(vs.get("default_replication_factor"), int):
                f.replication_factor[name] = vs["default_replication_factor"]
    elif isinstance(storages, Mapping):  # praefect['virtual_storages']
        legacy_path = keypaths.read_order(keypaths.PRAEFECT_VIRTUAL_STORAGES_KEY, version)[-1].path

        def mark(vs: str, nodes_key: str | None) -> None:
            # A reader that records what it read (lab import) learns each node's keys were.
            base = (*legacy_path, vs, *((nodes_key,) if nodes_key else ()))
            by = get(*base)
            for storage, entry in (by.items() if isinstance(by, Mapping) else ()):
                if isinstance(entry, Mapping):
                    for key in entry:
                        get(*base, storage, key)

        for name, entry in storages.items():
            if not isinstance(entry, Mapping):
                continue
            # 13.9+ nests the nodes under 'nodes' beside 'default_replication_factor'.
            by_name = entry.get("nodes") if d.replication_factor else entry
            if not isinstance(by_name, Mapping):
                continue
            mark(name, "nodes" if d.replication_factor else None)
            f.virtual_storages[str(name)] = [
                PraefectBackend(str(s), _str(n.get("address")), _str(n.get("token")))
                for s, n in by_name.items() if isinstance(n, Mapping)]
            factor = entry.get("default_replication_factor")
            if d.replication_factor and isinstance(factor, int):
                f.replication_factor[str(name)] = factor
                get(*legacy_path, name, "default_replication_factor")
    return f
