"""Where each gitlab.rb setting the toolkit writes or reads lives, release by release.

One row per spelling: the setting it holds, its key path in the evaluated gitlab.rb
(``("gitaly", "configuration", "listen_addr")`` is ``gitaly['configuration'][:listen_addr]``),
the releases whose Omnibus reads it and the releases the toolkit writes it for. The
renderer (lab/render/gitlab_rb.py) writes the rows of ``written(setting, version)``; the
readers (lab.omnibus.dialect: `lab import`, `lab doctor`, the sim) take the first row of
``read_order(setting, version)`` that is set. A key the toolkit learns is a row here; its
release bounds are names from lab.omnibus.release, where each has its source.

Standard library only: the sim image carries this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.omnibus.release import (
    DIRS_FROM_GITALY_STORAGES,
    FIRST,
    GIT_DATA_DIRS_REMOVED,
    GITALY_CONFIGURATION,
    GITALY_LEGACY_REMOVED,
    GITALY_SECRET,
    GUIDE_GIT_DATA_DIRS,
    PRAEFECT_AUTO_MIGRATE,
    PRAEFECT_CONFIGURATION,
    PRAEFECT_COOKBOOK,
    PRAEFECT_LEGACY_REMOVED,
    PRAEFECT_TLS,
    PRAEFECT_VIRTUAL_STORAGES,
    REPOSITORIES_STORAGES,
    UNBOUNDED,
    Version,
)

# The settings (what a row holds).
GITALY_SOCKET = "gitaly socket"
GITALY_RUNTIME_DIR = "gitaly runtime dir"
GITALY_LISTEN = "gitaly listen address"
GITALY_PROMETHEUS_LISTEN = "gitaly prometheus listen address"
GITALY_TLS_LISTEN = "gitaly TLS listen address"
GITALY_CERTIFICATE = "gitaly TLS certificate"
GITALY_KEY = "gitaly TLS key"
GITALY_TOKEN = "gitaly auth token"
GITALY_TRANSITIONING = "gitaly auth transitioning"
GITALY_STORAGES = "gitaly storages"  # a Gitaly node's storage -> folder
GITALY_LOG_LEVEL = "gitaly logging level"
GITALY_LOG_FORMAT = "gitaly logging format"
GITALY_SECRET_KEY = "gitaly gitlab secret"  # gitaly['gitlab_secret']
GITALY_ENABLED = "gitaly enabled"
INTERNAL_API_URL = "internal API URL"
SHELL_SECRET = "gitlab-shell secret"
EXTERNAL_URL = "external URL"
APP_GITALY_TOKEN = "app gitaly token"
APP_STORAGES = "app storages"  # the application's storage -> Gitaly address
ROLES = "roles"
MANAGE_ETC = "manage /etc/gitlab"
AUTO_MIGRATE = "database migrations on reconfigure"
RAKE_CACHE_CLEAR = "cache clearing on reconfigure"
PRAEFECT_ENABLED = "praefect enabled"
PRAEFECT_AUTO_MIGRATE_KEY = "praefect auto migrate"
PRAEFECT_LISTEN = "praefect listen address"
PRAEFECT_TLS_LISTEN = "praefect TLS listen address"
PRAEFECT_CERTIFICATE = "praefect TLS certificate"
PRAEFECT_KEY = "praefect TLS key"
PRAEFECT_TOKEN = "praefect auth token"  # the external token
PRAEFECT_VIRTUAL_STORAGES_KEY = "praefect virtual storages"
PRAEFECT_DB = "praefect database"  # + " " + host, port, user, password, dbname, sslmode
PRAEFECT_DB_FIELDS = ("host", "port", "user", "password", "dbname", "sslmode")


@dataclass(frozen=True)
class KeyPath:
    """One spelling of a setting."""

    setting: str
    path: tuple[str, ...]
    since: Version = FIRST  # the first release whose Omnibus reads it
    until: Version = UNBOUNDED  # the first release that no longer does (UNBOUNDED: none yet)
    # The releases the toolkit writes it for ([write_since, write_until)); None: as read.
    write_since: Version | None = None
    write_until: Version | None = None
    written_ever: bool = True  # False: read only (the toolkit never writes it)

    def read_in(self, version: Version) -> bool:
        return self.since <= version < self.until

    def written_in(self, version: Version) -> bool:
        low = self.since if self.write_since is None else self.write_since
        high = self.until if self.write_until is None else self.write_until
        return self.written_ever and low <= version < high

    @property
    def ruby(self) -> str:
        """How gitlab.rb names it: ``gitaly['configuration'][:tls][:key_path]``."""
        head, *rest = self.path
        if not rest:
            return head
        return f"{head}['{rest[0]}']" + "".join(f"[:{part}]" for part in rest[1:])


def _gitaly(setting: str, legacy: str, *new: str, written: bool = True) -> tuple[KeyPath, ...]:
    """A Gitaly setting of both dialects: gitaly['configuration'][...] from 15.10, the legacy
    gitaly['<legacy>'] until 16.0 (written until 15.10); both are read in 15.10-15.11."""
    return (KeyPath(setting, ("gitaly", "configuration", *new), since=GITALY_CONFIGURATION,
                    written_ever=written),
            KeyPath(setting, ("gitaly", legacy), until=GITALY_LEGACY_REMOVED,
                    write_until=GITALY_CONFIGURATION, written_ever=written))


def _praefect(setting: str, legacy: str, *new: str,
              since: Version = PRAEFECT_COOKBOOK) -> tuple[KeyPath, ...]:
    """A Praefect setting of both dialects: praefect['configuration'][...] from 15.9, the
    legacy praefect['<legacy>'] from ``since`` until 16.0 (written until 15.9)."""
    return (KeyPath(setting, ("praefect", "configuration", *new), since=PRAEFECT_CONFIGURATION),
            KeyPath(setting, ("praefect", legacy), since=since, until=PRAEFECT_LEGACY_REMOVED,
                    write_until=PRAEFECT_CONFIGURATION))


#: The table, newest spelling of each setting first (the order readers try them in). The
#: legacy Gitaly rows are in the order of 15.10's remap_legacy_values.
KEY_PATHS: tuple[KeyPath, ...] = (
    *_gitaly(GITALY_SOCKET, "socket_path", "socket_path", written=False),
    *_gitaly(GITALY_RUNTIME_DIR, "runtime_dir", "runtime_dir", written=False),
    *_gitaly(GITALY_LISTEN, "listen_addr", "listen_addr"),
    *_gitaly(GITALY_PROMETHEUS_LISTEN, "prometheus_listen_addr", "prometheus_listen_addr",
             written=False),
    *_gitaly(GITALY_TLS_LISTEN, "tls_listen_addr", "tls_listen_addr"),
    *_gitaly(GITALY_CERTIFICATE, "certificate_path", "tls", "certificate_path"),
    *_gitaly(GITALY_KEY, "key_path", "tls", "key_path"),
    *_gitaly(GITALY_TOKEN, "auth_token", "auth", "token"),
    *_gitaly(GITALY_TRANSITIONING, "auth_transitioning", "auth", "transitioning", written=False),
    # Storages: Gitaly's own list (the 11.x/12.x guide's gitaly['storage'], paths naming the
    # repositories folder), else git_data_dirs (Omnibus appends /repositories).
    KeyPath(GITALY_STORAGES, ("gitaly", "configuration", "storage"), since=GITALY_CONFIGURATION),
    KeyPath(GITALY_STORAGES, ("gitaly", "storage"), until=GITALY_LEGACY_REMOVED,
            write_until=GUIDE_GIT_DATA_DIRS),
    # git_data_dirs is also written beside Gitaly's own list while reconfigure creates storage
    # folders only from it (lab/omnibus/directories.py): else Gitaly's folders never exist.
    KeyPath(GITALY_STORAGES, ("git_data_dirs",), until=GIT_DATA_DIRS_REMOVED,
            write_until=DIRS_FROM_GITALY_STORAGES),
    *_gitaly(GITALY_LOG_LEVEL, "logging_level", "logging", "level", written=False),
    *_gitaly(GITALY_LOG_FORMAT, "logging_format", "logging", "format", written=False),
    KeyPath(GITALY_SECRET_KEY, ("gitaly", "gitlab_secret"), since=GITALY_SECRET,
            written_ever=False),
    KeyPath(GITALY_ENABLED, ("gitaly", "enable")),
    KeyPath(INTERNAL_API_URL, ("gitlab_rails", "internal_api_url")),
    KeyPath(SHELL_SECRET, ("gitlab_shell", "secret_token"), written_ever=False),
    KeyPath(EXTERNAL_URL, ("external_url",)),
    KeyPath(APP_GITALY_TOKEN, ("gitlab_rails", "gitaly_token")),
    KeyPath(APP_STORAGES, ("gitlab_rails", "repositories_storages"), since=REPOSITORIES_STORAGES),
    KeyPath(APP_STORAGES, ("git_data_dirs",), until=GIT_DATA_DIRS_REMOVED,
            write_until=REPOSITORIES_STORAGES),
    KeyPath(ROLES, ("roles",)),
    KeyPath(MANAGE_ETC, ("manage_storage_directories", "manage_etc")),
    KeyPath(AUTO_MIGRATE, ("gitlab_rails", "auto_migrate")),
    KeyPath(RAKE_CACHE_CLEAR, ("gitlab_rails", "rake_cache_clear")),
    KeyPath(PRAEFECT_ENABLED, ("praefect", "enable"), since=PRAEFECT_COOKBOOK),
    KeyPath(PRAEFECT_AUTO_MIGRATE_KEY, ("praefect", "auto_migrate"), since=PRAEFECT_AUTO_MIGRATE),
    *_praefect(PRAEFECT_LISTEN, "listen_addr", "listen_addr"),
    *_praefect(PRAEFECT_TLS_LISTEN, "tls_listen_addr", "tls_listen_addr", since=PRAEFECT_TLS),
    *_praefect(PRAEFECT_CERTIFICATE, "certificate_path", "tls", "certificate_path",
               since=PRAEFECT_TLS),
    *_praefect(PRAEFECT_KEY, "key_path", "tls", "key_path", since=PRAEFECT_TLS),
    *_praefect(PRAEFECT_TOKEN, "auth_token", "auth", "token"),
    *(row for field in PRAEFECT_DB_FIELDS
      for row in _praefect(f"{PRAEFECT_DB} {field}", f"database_{field}", "database", field,
                           since=PRAEFECT_VIRTUAL_STORAGES)),
    # The virtual storages: Praefect's own list of hashes from 15.9, before a hash by name
    # (the nodes nested under 'nodes' from 13.9, lab/omnibus/praefect.py).
    *_praefect(PRAEFECT_VIRTUAL_STORAGES_KEY, "virtual_storages", "virtual_storage",
               since=PRAEFECT_VIRTUAL_STORAGES),
)


def rows(setting: str) -> tuple[KeyPath, ...]:
    out = tuple(k for k in KEY_PATHS if k.setting == setting)
    if not out:
        raise KeyError(f"no key path for setting {setting!r}")
    return out


def read_order(setting: str, version: Version) -> tuple[KeyPath, ...]:
    """The spellings ``version``'s Omnibus reads for ``setting``, newest first."""
    return tuple(k for k in rows(setting) if k.read_in(version))


def written(setting: str, version: Version) -> tuple[KeyPath, ...]:
    """The spellings the toolkit writes ``setting`` in for ``version`` (none: not written)."""
    return tuple(k for k in rows(setting) if k.written_in(version))


def writes(setting: str, version: Version, path: tuple[str, ...]) -> bool:
    """Does the toolkit write ``setting`` as ``path`` for ``version``?"""
    return any(k.path == path for k in written(setting, version))


def legacy_gitaly_keys() -> dict[str, tuple[str, ...]]:
    """Legacy gitaly[...] key -> its place under gitaly['configuration'] (15.10's remap)."""
    out: dict[str, tuple[str, ...]] = {}
    for row in KEY_PATHS:
        if row.path[0] == "gitaly" and len(row.path) == 2 and row.until == GITALY_LEGACY_REMOVED:
            new = [k for k in rows(row.setting) if k.path[:2] == ("gitaly", "configuration")]
            if new:
                out[row.path[1]] = new[0].path[2:]
    return out
