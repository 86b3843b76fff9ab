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

from lab.omnibus import keypaths
from lab.omnibus import removals as removals_table
from lab.omnibus.keys import unknown_settings
from lab.omnibus.release import (
    ACTIVE_RECORD_ENCRYPTION,
    DIRS_FROM_GITALY_STORAGES,
    GITALY_CONFIGURATION,
    GITALY_LEGACY_REMOVED,
    GITALY_ROLE,
    GITALY_SECRET,
    GITLAB_EXPORTER_NAMED,
    GRAFANA_DISABLED,
    INITIAL_ROOT_PASSWORD,
    KAS_ADDED,
    PUMA_DEFAULT,
    UNICORN_REMOVED,
    Version,
)
from lab.omnibus.removals import dig

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
    """Which spelling of each setting one release understands.

    Where a setting lives is lab.omnibus.keypaths' table and the release each changed
    in is lab.omnibus.release's; these flags only name what the two say for one release.
    """

    version: Version
    # Gitaly's settings written under gitaly['configuration'] / the legacy keys still read.
    gitaly_configuration: bool
    legacy_gitaly: bool
    # The guide era: the Gitaly node lists its storages in gitaly['storage'].
    gitaly_storage_list: bool
    # The app node's storages written as gitlab_rails['repositories_storages'] /
    # git_data_dirs still read.
    repositories_storages: bool
    git_data_dirs: bool
    # Reconfigure creates storage folders only from git_data_dirs before
    # DIRS_FROM_GITALY_STORAGES, from Gitaly's storage list too after (lab/omnibus/directories.py).
    storage_dirs_from_gitaly: bool
    # roles(['gitaly_role']) (GITALY_ROLE).
    gitaly_role: bool
    # gitaly['gitlab_secret'], defaulting to the shell secret, signs Gitaly's internal API
    # calls (GITALY_SECRET); before, the shell secret did.
    gitaly_secret: bool
    # The web server(s) a Gitaly-only node turns off: Unicorn until Puma became the default
    # (PUMA_DEFAULT), both until Unicorn was removed (UNICORN_REMOVED), then Puma alone.
    web_servers: tuple[str, ...]
    # The server that answers for the application: the release's default web server.
    default_web_server: str
    # gitlab_monitor, named gitlab_exporter from GITLAB_EXPORTER_NAMED.
    exporter: str
    # Bundled Grafana: shown in the templates until GRAFANA_DISABLED.
    grafana: bool
    # attribute('gitlab_kas') (KAS_ADDED).
    kas: bool
    # What reconfigure generates into gitlab-secrets.json (omnibus-gitlab SecretsHelper and
    # gitlab_rails' parse_secrets): ci_jwt_signing_key until GITALY_SECRET, the
    # active_record_encryption_* keys from ACTIVE_RECORD_ENCRYPTION; the initial root
    # password file from INITIAL_ROOT_PASSWORD.
    ci_jwt_signing_key: bool = False
    active_record_encryption: bool = False
    initial_root_password: bool = False

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
    def written_as(setting: str, *path: str) -> bool:
        return keypaths.writes(setting, version, path)

    def read_as(setting: str, *path: str) -> bool:
        return any(k.path == path for k in keypaths.read_order(setting, version))

    if version < PUMA_DEFAULT:
        web: tuple[str, ...] = ("unicorn",)
    elif version < UNICORN_REMOVED:
        web = ("unicorn", "puma")
    else:
        web = ("puma",)
    return Dialect(
        version=version,
        gitaly_configuration=written_as(keypaths.GITALY_TOKEN, "gitaly", "configuration", "auth",
                                        "token"),
        legacy_gitaly=read_as(keypaths.GITALY_TOKEN, "gitaly", "auth_token"),
        gitaly_storage_list=written_as(keypaths.GITALY_STORAGES, "gitaly", "storage"),
        repositories_storages=written_as(keypaths.APP_STORAGES, "gitlab_rails",
                                         "repositories_storages"),
        git_data_dirs=read_as(keypaths.APP_STORAGES, "git_data_dirs"),
        storage_dirs_from_gitaly=version >= DIRS_FROM_GITALY_STORAGES,
        gitaly_role=version >= GITALY_ROLE,
        gitaly_secret=bool(keypaths.read_order(keypaths.GITALY_SECRET_KEY, version)),
        web_servers=web,
        default_web_server="unicorn" if version < PUMA_DEFAULT else "puma",
        exporter="gitlab_exporter" if version >= GITLAB_EXPORTER_NAMED else "gitlab_monitor",
        grafana=version < GRAFANA_DISABLED,
        kas=version >= KAS_ADDED,
        ci_jwt_signing_key=version < GITALY_SECRET,
        active_record_encryption=version >= ACTIVE_RECORD_ENCRYPTION,
        initial_root_password=version >= INITIAL_ROOT_PASSWORD,
    )


# --- the keys that changed meaning or name --------------------------------------------

# Legacy gitaly[...] key -> its place under gitaly['configuration'] (15.10's remap_legacy_values),
# from the key table.
LEGACY_GITALY_KEYS: dict[str, tuple[str, ...]] = keypaths.legacy_gitaly_keys()
# Omnibus' own words (package/libraries/omnibus_helper.rb check_deprecations).
REMOVED_ABORT = removals_table.REMOVED_ABORT



def removals(settings: Mapping[str, Any], version: Version) -> list[str]:
    """Omnibus' removal messages for these settings in ``version`` (empty: none apply).

    Each is a line ``* KEY has been deprecated since X and was removed in Y. NOTE``, from
    the table scripts/omnibus_removals.py generates from that release's deprecations.rb.
    """
    return removals_table.removal_messages(settings, version)


def legacy_conflicts(settings: Mapping[str, Any], version: Version) -> list[str]:
    """Between GITALY_CONFIGURATION and GITALY_LEGACY_REMOVED (15.10-15.11) a legacy Gitaly
    key and its new place both set abort reconfigure.

    The message is the one gitaly/libraries/gitaly.rb (remap_recursive) raises.
    """
    if not GITALY_CONFIGURATION <= version < GITALY_LEGACY_REMOVED:
        return []
    conf = dig(settings, ("gitaly", "configuration"))
    if not isinstance(conf, Mapping):
        return []
    out = []
    for legacy, new in LEGACY_GITALY_KEYS.items():
        if dig(settings, ("gitaly", legacy)) is not None and dig(conf, tuple(new)) is not None:
            out.append(f"Legacy configuration key '{legacy}' can't be set when its new key "
                       f"'{'.'.join(('configuration', *new))}' is set.")
    return out


def findings(settings: Mapping[str, Any], version: Version) -> list[tuple[bool, str]]:
    """(reconfigure aborts?, message) for what ``version``'s Omnibus says about these
    settings: unknown names and keys, removals, legacy/new Gitaly conflicts."""
    unknown = unknown_settings(settings, version)
    # An unknown name stops reconfigure while gitlab.rb is read, before the removal check.
    dead = {u.key.split("[")[0] for u in unknown if u.top_level}
    removed = removals_table.found({k: v for k, v in settings.items() if k not in dead}, version)
    # A removed key is reported as removed, not as unknown.
    covered = {entry.setting for entry, _ in removed}
    out = [(u.top_level, u.message(version)) for u in unknown if u.key not in covered]
    # One finding per removed setting: Omnibus' line (it names the release that removed it),
    # then what reconfigure of this release does about it.
    out += [(True, f"{line.removeprefix('* ')} Reconfigure of {version.series} aborts: "
                   f"{REMOVED_ABORT}") for _, line in removed]
    out += [(True, f"{c} (reconfigure aborts)") for c in legacy_conflicts(settings, version)]
    return out


# --- reading a node -------------------------------------------------------------------

def getter(settings: Mapping[str, Any]) -> Getter:
    """A plain reader over evaluated settings; an empty hash (an auto-vivified read) is unset."""
    def get(*path: str) -> Any:
        value = dig(settings, tuple(path))
        return None if value == {} else value
    return get


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _only(setting: str) -> tuple[str, ...]:
    """The key path of a setting spelled alike in every release."""
    (key,) = keypaths.rows(setting)
    return key.path


def roles(get: Getter) -> list[str]:
    value = get(*_only(keypaths.ROLES))
    if isinstance(value, str):
        return [value]
    return [str(r) for r in value] if isinstance(value, list) else []


def runs_gitaly(get: Getter) -> bool:
    return get(*_only(keypaths.GITALY_ENABLED)) is not False


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


def read_key(get: Getter, d: Dialect, setting: str) -> tuple[Any, keypaths.KeyPath | None]:
    """The value of ``setting`` as ``d``'s release reads it: the first of its spellings in
    lab.omnibus.keypaths that is set, and that spelling (None: unset)."""
    for key in keypaths.read_order(setting, d.version):
        value = get(*key.path)
        if value is not None:
            return value, key
    return None, None


def _read(get: Getter, d: Dialect, setting: str) -> Any:
    return read_key(get, d, setting)[0]


def _storage_list(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, Mapping) and entry.get("name"):
                out[str(entry["name"])] = _str(entry.get("path"))
    return out


def _git_data_dirs_paths(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, entry in _map(value).items():
        path = _map(entry).get("path")
        if path and not _map(entry).get("gitaly_address"):
            # Omnibus appends /repositories to every git_data_dirs path.
            out[str(name)] = str(path).rstrip("/") + "/repositories"
    return out


# How readers name where storages came from (GitalyFacts.storages_from).
_STORAGES_FROM = {("gitaly", "configuration", "storage"): "configuration",
                  ("gitaly", "storage"): "gitaly['storage']", ("git_data_dirs",): "git_data_dirs"}


def read_gitaly(get: Getter, d: Dialect) -> GitalyFacts:
    """Gitaly's listeners, token and storages as this release reads them."""
    f = GitalyFacts()
    f.listen_addr = _str(_read(get, d, keypaths.GITALY_LISTEN))
    f.tls_listen_addr = _str(_read(get, d, keypaths.GITALY_TLS_LISTEN))
    f.certificate_path = _str(_read(get, d, keypaths.GITALY_CERTIFICATE))
    f.key_path = _str(_read(get, d, keypaths.GITALY_KEY))
    token = _read(get, d, keypaths.GITALY_TOKEN)
    f.token = None if token is None else str(token)
    f.socket_path = _str(_read(get, d, keypaths.GITALY_SOCKET)) or DEFAULT_SOCKET
    f.transitioning = _read(get, d, keypaths.GITALY_TRANSITIONING) is True
    # Gitaly's own storage list wins over git_data_dirs (both dialects: Omnibus derives
    # gitaly's storages from git_data_dirs only when none are given).
    for key in keypaths.read_order(keypaths.GITALY_STORAGES, d.version):
        value = get(*key.path)
        found = _git_data_dirs_paths(value) if key.path == ("git_data_dirs",) else \
            _storage_list(value)
        if found:
            f.storages, f.storages_from = found, _STORAGES_FROM[key.path]
            break
    if not f.storages:
        f.storages["default"] = DEFAULT_DATA_DIR + "/repositories"
    url = _read(get, d, keypaths.INTERNAL_API_URL)
    f.internal_api_url = None if url is None else str(url)
    secret = _read(get, d, keypaths.GITALY_SECRET_KEY)
    f.gitlab_secret = None if secret is None else str(secret)
    return f


@dataclass
class AppFacts:
    external_url: str | None = None
    token: str | None = None  # gitlab_rails['gitaly_token']
    # storage -> {"address": ..., "token": ...} as written (per-storage token may be absent)
    storages: dict[str, dict[str, str]] = field(default_factory=dict)
    storages_from: str = ""  # "repositories_storages" or "git_data_dirs"
    storages_key: tuple[str, ...] = ()  # where they were read (lab.omnibus.keypaths)


def read_app(get: Getter, d: Dialect) -> AppFacts:
    f = AppFacts()
    url = _read(get, d, keypaths.EXTERNAL_URL)
    f.external_url = None if url is None else str(url)
    token = _read(get, d, keypaths.APP_GITALY_TOKEN)
    f.token = None if token is None else str(token)
    for key in keypaths.read_order(keypaths.APP_STORAGES, d.version):
        entries = _map(get(*key.path))
        if not entries:
            continue
        for storage, entry in entries.items():
            e = _map(entry)
            row = {"address": _str(e.get("gitaly_address"))}
            if e.get("gitaly_token") is not None:
                row["token"] = _str(e.get("gitaly_token"))
            f.storages[str(storage)] = row
        f.storages_from, f.storages_key = key.path[-1], key.path
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
    own = get(*_only(keypaths.GITALY_SECRET_KEY))
    if own is not None:
        return str(own).strip()
    from_file = _str(_map(secrets.get("gitaly")).get("gitlab_secret")).strip()
    return from_file or shell


def shell_secret(secrets: Mapping[str, Any], get: Getter) -> str:
    """gitlab_shell['secret_token'] from gitlab.rb, else gitlab-secrets.json's."""
    own = get(*_only(keypaths.SHELL_SECRET))
    if own is not None:
        return str(own).strip()
    return _str(_map(secrets.get("gitlab_shell")).get("secret_token")).strip()
