"""How each release of Omnibus GitLab spells the facts of a node, written and read.

The one place that compares release numbers. Every threshold names its source
in gitlabhq/omnibus-gitlab (files/gitlab-cookbooks/...) or the release's
gitlab.rb.template; docs/fidelity.md lists them too.

Standard library only: the sim image carries this module (see lab/engine/images.py),
so the sim reads a gitlab.rb with the very rules the renderer writes it with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.omnibus.directories import DIRS_FROM_GITALY_STORAGES
from lab.omnibus.keys import unknown_settings
from lab.omnibus.release import Version

DEFAULT_SOCKET = "/var/opt/gitlab/gitaly/gitaly.socket"
DEFAULT_DATA_DIR = "/var/opt/gitlab/git-data"
# Folders Omnibus installs into or keeps its own state in on every node: git data
# there would overwrite them. Their parents are no storage either.
OMNIBUS_DIRS = ("/opt/gitlab", "/var/log/gitlab", "/var/opt/gitlab/gitaly")
OMNIBUS_ROOTS = ("/var/opt", "/var/opt/gitlab")

# A reader: the value at a key path of evaluated gitlab.rb settings, None when unset.
Getter = Callable[..., Any]


@dataclass(frozen=True)
class Dialect:
    """Which spelling of each setting one release understands."""

    version: Version
    # 15.10 moved Gitaly's settings into gitaly['configuration'] (gitaly/libraries/gitaly.rb,
    # remap_legacy_values); 16.0 removed the old keys (package/libraries/deprecations.rb).
    gitaly_configuration: bool
    legacy_gitaly: bool
    # The guide era (11.x/12.x): the Gitaly node lists its storages in gitaly['storage'],
    # each path ending in /repositories, as the Gitaly guide of those releases shows.
    gitaly_storage_list: bool
    # 17.8 added gitlab_rails['repositories_storages']; 18.0 made git_data_dirs a removal.
    repositories_storages: bool
    git_data_dirs: bool
    # Up to 17.7 reconfigure creates storage folders only from git_data_dirs; from 17.8 from
    # Gitaly's storage list too (lab/omnibus/directories.py has the sources).
    storage_dirs_from_gitaly: bool
    # 17.6 added roles(['gitaly_role']) (package/libraries/config/gitlab.rb: role('gitaly')).
    gitaly_role: bool
    # 17.5: gitaly['gitlab_secret'], defaulting to the shell secret (gitaly/libraries/gitaly.rb
    # parse_secrets), signs Gitaly's internal API calls; before, the shell secret did.
    gitaly_secret: bool
    # The web server(s) a Gitaly-only node turns off: Unicorn until 13.0 made Puma the
    # default, both in 13.x, Puma alone once 14.0 removed Unicorn.
    web_servers: tuple[str, ...]
    # The server that answers for the application: the release's default web server.
    default_web_server: str
    # gitlab_monitor was renamed gitlab_exporter in 12.3 and dropped in 13.0
    # (package/libraries/config/gitlab.rb: attribute('gitlab_monitor') "legacy, remove in 13.0").
    exporter: str
    # Bundled Grafana: shown in the templates until 15.11 (disabled by default from 16.0,
    # attribute('grafana') gone in 17.1).
    grafana: bool
    # attribute('gitlab_kas') since 13.5.
    kas: bool
    # What reconfigure generates into gitlab-secrets.json (omnibus-gitlab SecretsHelper and
    # gitlab_rails' parse_secrets): ci_jwt_signing_key until 17.5, the
    # active_record_encryption_* keys from 17.8; the initial root password file from 14.0.
    ci_jwt_signing_key: bool = False
    active_record_encryption: bool = False
    initial_root_password: bool = False
    # manage_storage_directories['manage_etc'] is an attribute in every supported release.
    manage_etc: bool = True

    @property
    def name(self) -> str:
        if self.gitaly_configuration:
            gitaly = "gitaly['configuration']"
        elif self.gitaly_storage_list:
            gitaly = "legacy gitaly[...] keys with gitaly['storage']"
        else:
            gitaly = "legacy gitaly[...] keys"
        app = "repositories_storages" if self.repositories_storages else "git_data_dirs"
        return f"{gitaly} + {app}"

    def gitaly_node_disabled(self) -> tuple[str, ...]:
        """What a Gitaly-only node turns off, in the order of the guide."""
        out = ["postgresql", "redis", "nginx", *self.web_servers, "sidekiq", "gitlab_workhorse",
               "prometheus", "alertmanager"]
        if self.grafana:
            out.append("grafana")
        out.append(self.exporter)
        if self.kas:
            out.append("gitlab_kas")
        return tuple(out)


def dialect_for(version: Version) -> Dialect:
    at = version.at_least
    if not at("13.0.0"):
        web: tuple[str, ...] = ("unicorn",)
    elif not at("14.0.0"):
        web = ("unicorn", "puma")
    else:
        web = ("puma",)
    return Dialect(
        version=version,
        gitaly_configuration=at("15.10.0"),
        legacy_gitaly=not at("16.0.0"),
        gitaly_storage_list=not at("13.0.0"),
        repositories_storages=at("17.8.0"),
        git_data_dirs=not at("18.0.0"),
        storage_dirs_from_gitaly=version >= DIRS_FROM_GITALY_STORAGES,
        gitaly_role=at("17.6.0"),
        gitaly_secret=at("17.5.0"),
        web_servers=web,
        default_web_server="unicorn" if not at("13.0.0") else "puma",
        exporter="gitlab_exporter" if at("12.3.0") else "gitlab_monitor",
        grafana=not at("16.0.0"),
        kas=at("13.5.0"),
        ci_jwt_signing_key=not at("17.5.0"),
        active_record_encryption=at("17.8.0"),
        initial_root_password=at("14.0.0"),
    )


# --- the keys that changed meaning or name --------------------------------------------

# Legacy gitaly[...] key -> its place under gitaly['configuration'] (15.10's remap_legacy_values).
LEGACY_GITALY_KEYS: dict[str, tuple[str, ...]] = {
    "socket_path": ("socket_path",),
    "runtime_dir": ("runtime_dir",),
    "listen_addr": ("listen_addr",),
    "prometheus_listen_addr": ("prometheus_listen_addr",),
    "tls_listen_addr": ("tls_listen_addr",),
    "certificate_path": ("tls", "certificate_path"),
    "key_path": ("tls", "key_path"),
    "auth_token": ("auth", "token"),
    "auth_transitioning": ("auth", "transitioning"),
    "storage": ("storage",),
    "logging_level": ("logging", "level"),
    "logging_format": ("logging", "format"),
}
# Every legacy key 16.0 lists as removed (package/libraries/deprecations.rb,
# gitaly_legacy_configuration_deprecations), beyond the remapped ones above.
LEGACY_GITALY_REMOVED = (
    *LEGACY_GITALY_KEYS, "graceful_restart_timeout", "logging_sentry_dsn",
    "logging_sentry_environment", "log_directory", "prometheus_grpc_latency_buckets",
    "git_catfile_cache_size", "git_bin_path", "use_bundled_git", "gpg_signing_key_path",
    "gitconfig", "custom_hooks_dir", "daily_maintenance_disabled", "daily_maintenance_start_hour",
    "daily_maintenance_start_minute", "daily_maintenance_duration", "daily_maintenance_storages",
    "cgroups_mountpoint", "cgroups_hierarchy_root", "cgroups_memory_bytes", "cgroups_cpu_shares",
    "cgroups_repositories_count", "cgroups_repositories_memory_bytes",
    "cgroups_repositories_cpu_shares", "concurrency", "rate_limiting",
    "pack_objects_cache_enabled", "pack_objects_cache_dir", "pack_objects_cache_max_age",
)
_GITALY_1510_NOTE = (
    "In GitLab 15.10, Gitaly's configuration in Omnibus GitLab was changed to structurally "
    "match Gitaly's own configuration. Please see the migration instructions at "
    "https://docs.gitlab.com/ee/update/#15100")
_GIT_DATA_DIRS_NOTE = ("See https://docs.gitlab.com/omnibus/settings/configuration.html"
                       "#migrating-from-git_data_dirs for migration instructions.")
# Omnibus' own words (package/libraries/omnibus_helper.rb, check_deprecations, 13.0+).
REMOVED_ABORT = "Removed configurations found in gitlab.rb. Aborting reconfigure."


def _set(value: Any) -> bool:
    # Omnibus skips nil and empty hashes (an auto-vivified read) in applicable_deprecations.
    return value is not None and value != {}


def _dig(settings: Mapping[str, Any], *path: str) -> Any:
    cursor: Any = settings
    for part in path:
        if not isinstance(cursor, Mapping) or part not in cursor:
            return None
        cursor = cursor[part]
    return cursor


def removals(settings: Mapping[str, Any], version: Version) -> list[str]:
    """Omnibus' removal messages for these settings in ``version`` (empty: none apply).

    Each is a line ``* KEY has been deprecated since X and was removed in Y. NOTE``
    (package/libraries/deprecations.rb, check_config and additional_deprecations).
    """
    out: list[str] = []
    if version.at_least("16.0.0"):
        for key in LEGACY_GITALY_REMOVED:
            if _set(_dig(settings, "gitaly", key)):
                out.append(f"* gitaly['{key}'] has been deprecated since 15.10 and was removed "
                           f"in 16.0. {_GITALY_1510_NOTE}")
    if version.at_least("14.0.0") and _dig(settings, "unicorn", "enable") is True:
        out.append("* unicorn[enable] has been deprecated since 13.10 and was removed in 14.0.")
    if version.at_least("18.0.0") and _set(settings.get("git_data_dirs")):
        out.append("* git_data_dirs has been deprecated since 17.8 and was removed in 18.0. "
                   + _GIT_DATA_DIRS_NOTE)
    return out


def legacy_conflicts(settings: Mapping[str, Any], version: Version) -> list[str]:
    """15.10-15.11: a legacy Gitaly key and its new place both set abort reconfigure.

    The message is the one gitaly/libraries/gitaly.rb (remap_recursive) raises.
    """
    if not (version.at_least("15.10.0") and not version.at_least("16.0.0")):
        return []
    conf = _dig(settings, "gitaly", "configuration")
    if not isinstance(conf, Mapping):
        return []
    out = []
    for legacy, new in LEGACY_GITALY_KEYS.items():
        if _dig(settings, "gitaly", legacy) is not None and _dig(conf, *new) is not None:
            out.append(f"Legacy configuration key '{legacy}' can't be set when its new key "
                       f"'{'.'.join(('configuration', *new))}' is set.")
    return out


def findings(settings: Mapping[str, Any], version: Version) -> list[tuple[bool, str]]:
    """(reconfigure aborts?, message) for what ``version``'s Omnibus says about these
    settings: unknown names and keys, removals, legacy/new Gitaly conflicts."""
    out = [(u.top_level, u.message(version)) for u in unknown_settings(settings, version)]
    removed = removals(settings, version)
    if removed:
        out.append((True, f"{REMOVED_ABORT} " + " ".join(removed)))
    out += [(True, f"{c} (reconfigure aborts)") for c in legacy_conflicts(settings, version)]
    return out


# --- reading a node -------------------------------------------------------------------

def getter(settings: Mapping[str, Any]) -> Getter:
    """A plain reader over evaluated settings; an empty hash (an auto-vivified read) is unset."""
    def get(*path: str) -> Any:
        value = _dig(settings, *path)
        return None if value == {} else value
    return get


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def roles(get: Getter) -> list[str]:
    value = get("roles")
    if isinstance(value, str):
        return [value]
    return [str(r) for r in value] if isinstance(value, list) else []


def runs_gitaly(get: Getter) -> bool:
    return get("gitaly", "enable") is not False


def runs_app(get: Getter, d: Dialect) -> bool:
    """Does the node serve the application? Its release's default web server decides.

    A Gitaly-only 11.x node disables ``unicorn``; a 14.x one ``puma``. With roles set,
    Omnibus runs only what the roles (or explicit enables) ask for.
    """
    web = get(d.default_web_server, "enable")
    others = [s for s in ("unicorn", "puma") if s != d.default_web_server]
    explicit = any(get(s, "enable") is True for s in others)
    if web is False and not explicit:
        return False
    rs = roles(get)
    return not rs or "application_role" in rs or web is True or explicit


@dataclass
class GitalyFacts:
    listen_addr: str = ""
    tls_listen_addr: str = ""
    certificate_path: str = ""
    key_path: str = ""
    token: str | None = None  # None: not set
    socket_path: str = DEFAULT_SOCKET
    # storage name -> the directory its repositories live in (".../repositories" for git_data_dirs)
    storages: dict[str, str] = field(default_factory=dict)
    # where the storages came from: "configuration", "gitaly['storage']" or "git_data_dirs"
    storages_from: str = ""
    internal_api_url: str | None = None
    gitlab_secret: str | None = None  # gitaly['gitlab_secret'] in gitlab.rb (17.5+)
    # auth: { transitioning: true }: Gitaly judges tokens but lets every call through.
    transitioning: bool = False


def _legacy_or_new(get: Getter, d: Dialect, legacy: str) -> Any:
    new = LEGACY_GITALY_KEYS[legacy]
    value = get("gitaly", "configuration", *new) if d.gitaly_configuration else None
    if value is None and d.legacy_gitaly:
        value = get("gitaly", legacy)
    return value


def _storage_list(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, Mapping) and entry.get("name"):
                out[str(entry["name"])] = _str(entry.get("path"))
    return out


def read_gitaly(get: Getter, d: Dialect) -> GitalyFacts:
    """Gitaly's listeners, token and storages as this release reads them."""
    f = GitalyFacts()
    f.listen_addr = _str(_legacy_or_new(get, d, "listen_addr"))
    f.tls_listen_addr = _str(_legacy_or_new(get, d, "tls_listen_addr"))
    f.certificate_path = _str(_legacy_or_new(get, d, "certificate_path"))
    f.key_path = _str(_legacy_or_new(get, d, "key_path"))
    token = _legacy_or_new(get, d, "auth_token")
    f.token = None if token is None else str(token)
    f.socket_path = _str(_legacy_or_new(get, d, "socket_path")) or DEFAULT_SOCKET
    f.transitioning = _legacy_or_new(get, d, "auth_transitioning") is True
    # Gitaly's own storage list wins over git_data_dirs (both dialects: Omnibus derives
    # gitaly's storages from git_data_dirs only when none are given).
    if d.gitaly_configuration:
        f.storages = _storage_list(get("gitaly", "configuration", "storage"))
        f.storages_from = "configuration" if f.storages else ""
    if not f.storages and d.legacy_gitaly:
        f.storages = _storage_list(get("gitaly", "storage"))
        f.storages_from = "gitaly['storage']" if f.storages else ""
    if not f.storages and d.git_data_dirs:
        for name, entry in _map(get("git_data_dirs")).items():
            path = _map(entry).get("path")
            if path and not _map(entry).get("gitaly_address"):
                # Omnibus appends /repositories to every git_data_dirs path.
                f.storages[str(name)] = str(path).rstrip("/") + "/repositories"
        f.storages_from = "git_data_dirs" if f.storages else ""
    if not f.storages:
        f.storages["default"] = DEFAULT_DATA_DIR + "/repositories"
    url = get("gitlab_rails", "internal_api_url")
    f.internal_api_url = None if url is None else str(url)
    secret = get("gitaly", "gitlab_secret") if d.gitaly_secret else None
    f.gitlab_secret = None if secret is None else str(secret)
    return f


@dataclass
class AppFacts:
    external_url: str | None = None
    token: str | None = None  # gitlab_rails['gitaly_token']
    # storage -> {"address": ..., "token": ...} as written (per-storage token may be absent)
    storages: dict[str, dict[str, str]] = field(default_factory=dict)
    storages_from: str = ""  # "repositories_storages" or "git_data_dirs"


def read_app(get: Getter, d: Dialect) -> AppFacts:
    f = AppFacts()
    url = get("external_url")
    f.external_url = None if url is None else str(url)
    token = get("gitlab_rails", "gitaly_token")
    f.token = None if token is None else str(token)
    sources: list[tuple[str, tuple[str, ...]]] = []
    if d.repositories_storages:
        sources.append(("repositories_storages", ("gitlab_rails", "repositories_storages")))
    if d.git_data_dirs:
        sources.append(("git_data_dirs", ("git_data_dirs",)))
    for name, path in sources:
        entries = _map(get(*path))
        if not entries:
            continue
        for storage, entry in entries.items():
            e = _map(entry)
            row = {"address": _str(e.get("gitaly_address"))}
            if e.get("gitaly_token") is not None:
                row["token"] = _str(e.get("gitaly_token"))
            f.storages[str(storage)] = row
        f.storages_from = name
        break
    return f


def signing_secret(d: Dialect, secrets: Mapping[str, Any], get: Getter) -> str:
    """The secret Gitaly signs internal API calls with (gitlab.rb values win over the file).

    Before 17.5 that is the gitlab-shell secret; from 17.5 gitaly['gitlab_secret'],
    falling back to the shell secret (gitaly/libraries/gitaly.rb, parse_secrets).
    """
    shell = shell_secret(secrets, get)
    if not d.gitaly_secret:
        return shell
    own = get("gitaly", "gitlab_secret")
    if own is not None:
        return str(own).strip()
    from_file = _str(_map(secrets.get("gitaly")).get("gitlab_secret")).strip()
    return from_file or shell


def shell_secret(secrets: Mapping[str, Any], get: Getter) -> str:
    """gitlab_shell['secret_token'] from gitlab.rb, else gitlab-secrets.json's."""
    own = get("gitlab_shell", "secret_token")
    if own is not None:
        return str(own).strip()
    return _str(_map(secrets.get("gitlab_shell")).get("secret_token")).strip()
