"""What a node's gitlab.rb and gitlab-secrets.json mean to the sim (stdlib only).

evaluate.rb turns Ruby into plain JSON settings (inside the node, as Omnibus does);
``effective`` reads them with the node's release's dialect from lab.omnibus.dialect,
the module the renderer writes with (the image carries it), into the one dict every
sim service uses. ``check_release`` aborts reconfigure where that release would.
The host's unit tests import this module directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lab.omnibus import dialect, gitlab_secrets, keys
from lab.omnibus import praefect as omnibus_praefect
from lab.omnibus.release import DEFAULT_VERSION, VERSION_ENV, Version
from labsim.common import runstate

HERE = Path(__file__).resolve().parent
GITLAB_RB = "/etc/gitlab/gitlab.rb"
SECRETS_JSON = "/etc/gitlab/gitlab-secrets.json"
TRUSTED_CERTS = "/etc/gitlab/trusted-certs"
RUN_DIR = runstate.RUN_DIR
STATE_DIR = "/var/opt/gitlab/sim"
LOG_DIR = "/var/log/gitlab"
DEFAULT_SOCKET = dialect.DEFAULT_SOCKET
DEFAULT_WHITELIST = ["127.0.0.0/8", "::1/128"]
SERVER_VERSION = "gitlab-testlab-sim"
#: Gitaly streams git data in messages of at most this many bytes.
CHUNK = 32 * 1024


class ConfigError(Exception):
    """gitlab.rb could not be evaluated; the message names the file and line."""


def evaluate(gitlab_rb: str = GITLAB_RB, *, ruby: str = "ruby",
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run evaluate.rb on ``gitlab_rb`` (plus GITLAB_OMNIBUS_CONFIG) and return the settings."""
    # --disable-gems: evaluate.rb needs only the standard library, and loading RubyGems is
    # 80 of Ruby's 95 ms of start, paid by every boot and every reconfigure.
    proc = subprocess.run(
        [ruby, "--disable-gems", str(HERE / "evaluate.rb"), gitlab_rb], capture_output=True,
        text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise ConfigError((proc.stderr or proc.stdout).strip())
    data = json.loads(proc.stdout)
    if not isinstance(data, dict):
        raise ConfigError(f"{gitlab_rb}: evaluation gave no settings")
    return data


def node_version(env: Mapping[str, str] | None = None) -> Version:
    """The release this node plays: real Omnibus knows its own; the sim is told it."""
    text = (os.environ if env is None else env).get(VERSION_ENV, "").strip()
    try:
        return Version.parse(text) if text else Version.parse(DEFAULT_VERSION)
    except ValueError:
        return Version.parse(DEFAULT_VERSION)


def check_release(raw: dict[str, Any], version: Version) -> None:
    """Abort reconfigure where this release's Omnibus would (ConfigError with its words)."""
    unknown = list(keys.unknown_top_names(raw, version))
    if unknown:
        # Mixlib::Config strict mode stops at the first unknown name while reading gitlab.rb.
        raise ConfigError(f"{keys.UNKNOWN_TOP_ERROR} {unknown[0]}.")
    removed = dialect.removals(raw, version)
    if removed:
        raise ConfigError("\n".join([dialect.REMOVED_ABORT, *removed]))
    conflicts = dialect.legacy_conflicts(raw, version)
    if conflicts:
        raise ConfigError(conflicts[0])


def runs_gitaly(get: Any) -> bool:
    """Gitaly runs unless disabled; with roles set, only under a role that has it (Omnibus'
    roles: any role turns off the default services it does not name), or when enabled."""
    rs = set(dialect.roles(get))
    if rs and not rs & {"gitaly_role", "application_role"} and get("gitaly", "enable") is not True:
        return False
    return dialect.runs_gitaly(get)


def gitaly_settings(raw: dict[str, Any], version: Version | None = None) -> dict[str, Any]:
    """Gitaly's listeners, token and storages in this release's dialect."""
    d = dialect.dialect_for(version or node_version())
    f = dialect.read_gitaly(dialect.getter(raw), d)
    return {
        "listen_addr": f.listen_addr,
        "tls_listen_addr": f.tls_listen_addr,
        "certificate_path": f.certificate_path,
        "key_path": f.key_path,
        "token": f.token or "",
        "socket_path": f.socket_path,
        "storages": f.storages,
        # Gitaly judges tokens but lets every call through (internal/gitaly/server/auth).
        "transitioning": f.transitioning,
    }


def app_settings(raw: dict[str, Any], version: Version | None = None) -> dict[str, Any]:
    """The app's URL, port, Gitaly connections and monitoring whitelist."""
    d = dialect.dialect_for(version or node_version())
    get = dialect.getter(raw)
    f = dialect.read_app(get, d)
    token = f.token or ""
    storages: dict[str, dict[str, str]] = {
        name: {"address": row["address"] or f"unix:{DEFAULT_SOCKET}",
               "token": row.get("token") or token}
        for name, row in f.storages.items()
    }
    if not storages:
        storages["default"] = {"address": f"unix:{DEFAULT_SOCKET}", "token": token}

    external_url = f.external_url or "http://gitlab.example.com"
    url = urllib.parse.urlsplit(external_url)
    port = get("nginx", "listen_port") or url.port or 80
    whitelist = get("gitlab_rails", "monitoring_whitelist")
    return {
        "external_url": external_url.rstrip("/"),
        "port": int(port),
        "storages": storages,
        "monitoring_whitelist": whitelist if isinstance(whitelist, list) else DEFAULT_WHITELIST,
    }


def effective(raw: dict[str, Any], secrets: dict[str, Any],
              version: Version | None = None) -> dict[str, Any]:
    """The whole node: which services run and with what (secrets included).

    Values set in gitlab.rb win over gitlab-secrets.json, as Omnibus' SecretsHelper does.
    """
    version = version or node_version()
    d = dialect.dialect_for(version)
    get = dialect.getter(raw)
    node: dict[str, Any] = {"gitaly": None, "app": None, "trusted_certs": TRUSTED_CERTS,
                            "version": str(version)}
    has_app = dialect.runs_app(get, d)
    if runs_gitaly(get):
        gitaly = gitaly_settings(raw, version)
        internal = _str(get("gitlab_rails", "internal_api_url"))
        if not internal and has_app:
            internal = "http://localhost:" + str(app_settings(raw, version)["port"])
        gitaly["internal_api_url"] = internal
        gitaly["hook_secret"] = dialect.signing_secret(d, secrets, get)
        node["gitaly"] = gitaly
    if has_app:
        app = app_settings(raw, version)
        app["shell_secret"] = dialect.shell_secret(secrets, get)
        node["app"] = app
    node["praefect"] = praefect_settings(raw, version)
    node["postgresql"] = postgresql_settings(raw)
    return node


def praefect_settings(raw: dict[str, Any], version: Version) -> dict[str, Any] | None:
    """A Praefect node's listeners, external token, virtual storages and database
    (lab.omnibus.praefect, both dialects); None when Praefect is off."""
    f = omnibus_praefect.read_praefect(dialect.getter(raw), version)
    if not f.enabled:
        return None
    return {"listen_addr": f.listen_addr, "tls_listen_addr": f.tls_listen_addr,
            "certificate_path": f.certificate_path, "key_path": f.key_path,
            "token": f.token or "", "database": dict(f.database),
            "replication_factor": dict(f.replication_factor),
            "virtual_storages": {vs: [{"storage": b.storage, "address": b.address,
                                       "token": b.token} for b in nodes]
                                 for vs, nodes in f.virtual_storages.items()}}


def postgresql_settings(raw: dict[str, Any]) -> dict[str, Any] | None:
    """A database node's PostgreSQL (``roles(['postgres_role'])``); None elsewhere."""
    get = dialect.getter(raw)
    if "postgres_role" not in dialect.roles(get) or get("postgresql", "enable") is False:
        return None
    return {key: get("postgresql", key) for key in
            ("listen_address", "port", "trust_auth_cidr_addresses", "md5_auth_cidr_addresses")}


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def release(node: dict[str, Any]) -> Version:
    """The release a runtime config (``read_runtime()``) plays, for lab/omnibus/eras.py."""
    return Version.told(str(node.get("version") or ""))


def load_secrets(path: str = SECRETS_JSON, version: Version | None = None) -> dict[str, Any]:
    """Read gitlab-secrets.json; when absent write (mode 0600) what the node's release
    (``version``, else node_version()) generates on first reconfigure, as Omnibus does."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        data = gitlab_secrets.fill({}, version or node_version())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        return data
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object")
    return data


def load(gitlab_rb: str = GITLAB_RB, secrets_path: str = SECRETS_JSON) -> dict[str, Any]:
    """Evaluate the node's config as reconfigure would (raises ConfigError)."""
    raw = evaluate(gitlab_rb)
    version = node_version()
    check_release(raw, version)
    return effective(raw, load_secrets(secrets_path), version)


def write_runtime(node: dict[str, Any]) -> None:
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    tmp = os.path.join(RUN_DIR, "config.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(node, fh, indent=2)
    os.replace(tmp, runstate.RUNTIME)


read_runtime = runstate.read_runtime


def trusted_ca_pem(directory: str = TRUSTED_CERTS, *, with_system: bool = True) -> bytes:
    """The lab CA files (Omnibus trusts /etc/gitlab/trusted-certs) plus the system bundle."""
    pem = b""
    folder = Path(directory)
    if folder.is_dir():
        for cert in sorted(folder.iterdir()):
            if cert.is_file():
                pem += cert.read_bytes().rstrip(b"\n") + b"\n"
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    if with_system and system.is_file():
        pem += system.read_bytes()
    return pem


def chunks(data: bytes) -> Iterator[bytes]:
    """``data`` in CHUNK-sized pieces; at least one, since a stream's first message
    carries the request's header fields even when there is no data."""
    yield data[:CHUNK]
    for start in range(CHUNK, len(data), CHUNK):
        yield data[start:start + CHUNK]


def log(service: str, message: str, *, via_pid1: bool = False) -> None:
    """One log line to the container's stdout and /var/log/gitlab/<service>/current.

    ``via_pid1`` is for git hooks, whose own stdout goes to the pushing client.
    """
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {service}: {message}\n"
    _emit(line, os.path.join(service, "current"), via_pid1)


def log_json(path: str, record: dict[str, Any], *, via_pid1: bool = False,
             go: bool = False) -> None:
    """One structured log line as GitLab writes it (``gitlab-rails/exceptions_json.log``,
    ``gitlab-workhorse/current``): to /var/log/gitlab/<path> and to the container's
    stdout, where the Omnibus image's ``gitlab-ctl tail`` shows every log file too."""
    fields = dict(record)
    head = {"severity": fields.pop("severity")} if "severity" in fields else {}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
    # Ruby keeps insertion order; Go's logrus writes a map, which encoding/json sorts.
    line = json.dumps({**head, "time": stamp, **fields}, separators=(",", ":"),
                      sort_keys=go) + "\n"
    _emit(line, path, via_pid1)


def log_line(path: str, line: str) -> None:
    """A line exactly as a program writes it (no time or service prefix), e.g. the grpc C
    core's stderr, to /var/log/gitlab/<path> and the container's stdout."""
    _emit(line.rstrip("\n") + "\n", path, False)


def _emit(line: str, path: str, via_pid1: bool) -> None:
    """``line`` to the container's stdout (PID 1's, for hooks) and LOG_DIR/<path>.

    Logging never fails the service: a closed stdout or a full disk loses the line.
    """
    try:
        if via_pid1:
            with open("/proc/1/fd/1", "a") as out:
                out.write(line)
        else:
            os.write(1, line.encode())
    except OSError:
        pass
    try:
        target = os.path.join(LOG_DIR, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a") as fh:
            fh.write(line)
    except OSError:
        pass
