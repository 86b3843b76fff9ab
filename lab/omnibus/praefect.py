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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.omnibus.release import Version

# A reader of evaluated gitlab.rb settings (lab.omnibus.dialect.getter): a key path -> value.
Getter = Any

FIRST_COOKBOOK = "12.4.0"
FIRST_CLUSTER = "13.3.0"
PORT = 2305
TLS_PORT = 3305
DB_PORT = 5432
DB_NAME = "praefect_production"
DB_USER = "praefect"
CONFIG_TOML = "/var/opt/gitlab/praefect/config.toml"
BINARY = "/opt/gitlab/embedded/bin/praefect"


@dataclass(frozen=True)
class PraefectDialect:
    version: Version
    configuration: bool  # praefect['configuration'] (15.9+) or the legacy keys
    legacy: bool  # legacy praefect[...] keys still read (until 16.0)
    replication_factor: bool  # default_replication_factor (13.9+)

    @property
    def name(self) -> str:
        return "praefect['configuration']" if self.configuration else \
            "legacy praefect[...] keys"


def praefect_dialect(version: Version) -> PraefectDialect:
    at = version.at_least
    return PraefectDialect(version=version, configuration=at("15.9.0"),
                           legacy=not at("16.0.0"), replication_factor=at("13.9.0"))


def cluster_unsupported(version: Version) -> str | None:
    """Why a Gitaly Cluster lab can't be rendered for ``version`` (None: it can)."""
    if version.at_least(FIRST_CLUSTER):
        return None
    if version.at_least(FIRST_COOKBOOK):
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


def _psql(sql: str) -> list[str]:
    # template1 exists on every PostgreSQL server (the docs' post-configuration uses it).
    return [GITLAB_PSQL, "-d", "template1", "-v", "ON_ERROR_STOP=1", "-tAc", sql]


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def database_exists_cmd() -> list[str]:
    """Prints 1 once Praefect's database exists."""
    return _psql(f"SELECT 1 FROM pg_database WHERE datname = {sql_literal(DB_NAME)}")


def database_setup_cmds(password: str) -> list[list[str]]:
    """The docs' "Praefect PostgreSQL post-configuration", safe to run again: the role
    (with its password) and the database owned by it. CREATE DATABASE can't run in a
    transaction block, hence two commands."""
    role = (f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"{sql_literal(DB_USER)}) THEN CREATE ROLE {DB_USER} WITH LOGIN PASSWORD "
            f"{sql_literal(password)}; ELSE ALTER ROLE {DB_USER} WITH LOGIN PASSWORD "
            f"{sql_literal(password)}; END IF; END$$")
    return [_psql(role),
            _psql(f"CREATE DATABASE {DB_NAME} WITH OWNER {DB_USER} ENCODING 'UTF8'")]


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


_LEGACY = {"listen_addr": ("listen_addr",), "tls_listen_addr": ("tls_listen_addr",),
           "certificate_path": ("tls", "certificate_path"), "key_path": ("tls", "key_path"),
           "auth_token": ("auth", "token")}
_DB = ("host", "port", "user", "password", "dbname", "sslmode")


def _dig(value: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def read_praefect(get: Getter, version: Version) -> PraefectFacts:
    """A Praefect node's settings as ``version``'s Omnibus reads them: praefect['configuration']
    from 15.9 (a legacy key fills what it leaves unset until 16.0, as remap_legacy_values
    does), the legacy keys before."""
    d = praefect_dialect(version)
    conf = get("praefect", "configuration") if d.configuration else None
    conf = conf if isinstance(conf, Mapping) else {}
    f = PraefectFacts(enabled=get("praefect", "enable") is True)

    def value(legacy: str) -> Any:
        new = _dig(conf, *_LEGACY[legacy])
        return new if new is not None or not d.legacy else get("praefect", legacy)

    f.listen_addr = _str(value("listen_addr"))
    f.tls_listen_addr = _str(value("tls_listen_addr"))
    f.certificate_path = _str(value("certificate_path"))
    f.key_path = _str(value("key_path"))
    token = value("auth_token")
    f.token = None if token is None else str(token)
    for key in _DB:
        v = _dig(conf, "database", key)
        if v is None and d.legacy:
            v = get("praefect", f"database_{key}")
        if v is not None:
            f.database[key] = str(v)
    storages = conf.get("virtual_storage")
    if isinstance(storages, list):
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
    legacy = get("praefect", "virtual_storages") if d.legacy else None
    if not f.virtual_storages and isinstance(legacy, Mapping):
        for name, entry in legacy.items():
            if not isinstance(entry, Mapping):
                continue
            # 13.9+ nests the nodes under 'nodes' beside 'default_replication_factor'.
            by_name = entry.get("nodes") if d.replication_factor else entry
            if not isinstance(by_name, Mapping):
                continue
            f.virtual_storages[str(name)] = [
                PraefectBackend(str(s), _str(n.get("address")), _str(n.get("token")))
                for s, n in by_name.items() if isinstance(n, Mapping)]
            factor = entry.get("default_replication_factor")
            if d.replication_factor and isinstance(factor, int):
                f.replication_factor[str(name)] = factor
    return f
