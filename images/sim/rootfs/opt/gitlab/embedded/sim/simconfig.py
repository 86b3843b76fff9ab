"""What a node's gitlab.rb and gitlab-secrets.json mean to the sim (stdlib only).

evaluate.rb turns Ruby into plain JSON settings; ``effective`` reads those settings
with Omnibus' defaults and dialects (legacy <= 15.9 keys, ``gitaly['configuration']``,
``git_data_dirs``, ``repositories_storages``) into the one dict every sim service uses.
The host's unit tests import this module directly.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GITLAB_RB = "/etc/gitlab/gitlab.rb"
SECRETS_JSON = "/etc/gitlab/gitlab-secrets.json"
TRUSTED_CERTS = "/etc/gitlab/trusted-certs"
RUN_DIR = "/run/gitlab-sim"
STATE_DIR = "/var/opt/gitlab/sim"
LOG_DIR = "/var/log/gitlab"
DEFAULT_SOCKET = "/var/opt/gitlab/gitaly/gitaly.socket"
DEFAULT_STORAGE_PATH = "/var/opt/gitlab/git-data"
DEFAULT_WHITELIST = ["127.0.0.0/8", "::1/128"]
SERVER_VERSION = "gitlab-testlab-sim"
#: Gitaly streams git data in messages of at most this many bytes.
CHUNK = 32 * 1024


class ConfigError(Exception):
    """gitlab.rb could not be evaluated; the message names the file and line."""


def evaluate(gitlab_rb: str = GITLAB_RB, *, ruby: str = "ruby",
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run evaluate.rb on ``gitlab_rb`` (plus GITLAB_OMNIBUS_CONFIG) and return the settings."""
    proc = subprocess.run(
        [ruby, str(HERE / "evaluate.rb"), gitlab_rb], capture_output=True, text=True,
        env=env, check=False,
    )
    if proc.returncode != 0:
        raise ConfigError((proc.stderr or proc.stdout).strip())
    data = json.loads(proc.stdout)
    if not isinstance(data, dict):
        raise ConfigError(f"{gitlab_rb}: evaluation gave no settings")
    return data


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _roles(raw: dict[str, Any]) -> list[str]:
    roles = raw.get("roles")
    if isinstance(roles, str):
        return [roles]
    return [str(r) for r in roles] if isinstance(roles, list) else []


def gitaly_enabled(raw: dict[str, Any]) -> bool:
    return _section(raw, "gitaly").get("enable") is not False


def app_enabled(raw: dict[str, Any]) -> bool:
    enable = _section(raw, "puma").get("enable")
    if enable is False:
        return False
    roles = _roles(raw)
    # With roles set, Omnibus runs only what the roles (or explicit enables) ask for.
    return not roles or "application_role" in roles or enable is True


def gitaly_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Gitaly's listeners, token and storages in either dialect."""
    legacy = _section(raw, "gitaly")
    conf = legacy.get("configuration")
    conf = conf if isinstance(conf, dict) else {}
    tls = conf.get("tls") if isinstance(conf.get("tls"), dict) else {}
    auth = conf.get("auth") if isinstance(conf.get("auth"), dict) else {}

    storages: dict[str, str] = {}
    if isinstance(conf.get("storage"), list):
        for entry in conf["storage"]:
            if isinstance(entry, dict) and entry.get("name"):
                storages[str(entry["name"])] = str(entry.get("path", ""))
    if not storages:
        for name, entry in _section(raw, "git_data_dirs").items():
            if isinstance(entry, dict) and entry.get("path"):
                # Omnibus appends /repositories to every git_data_dirs path.
                storages[name] = str(entry["path"]).rstrip("/") + "/repositories"
    if not storages:
        storages["default"] = DEFAULT_STORAGE_PATH + "/repositories"

    return {
        "listen_addr": _str(conf.get("listen_addr")) or _str(legacy.get("listen_addr")),
        "tls_listen_addr": (_str(conf.get("tls_listen_addr"))
                            or _str(legacy.get("tls_listen_addr"))),
        "certificate_path": (_str(tls.get("certificate_path"))
                             or _str(legacy.get("certificate_path"))),
        "key_path": _str(tls.get("key_path")) or _str(legacy.get("key_path")),
        "token": _str(auth.get("token")) or _str(legacy.get("auth_token")),
        "socket_path": (_str(conf.get("socket_path")) or _str(legacy.get("socket_path"))
                        or DEFAULT_SOCKET),
        "storages": storages,
    }


def app_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """The app's URL, port, Gitaly connections and monitoring whitelist."""
    rails = _section(raw, "gitlab_rails")
    token = _str(rails.get("gitaly_token"))
    source = rails.get("repositories_storages")
    if not isinstance(source, dict) or not source:
        source = _section(raw, "git_data_dirs")
    storages: dict[str, dict[str, str]] = {}
    for name, entry in source.items():
        entry = entry if isinstance(entry, dict) else {}
        storages[name] = {
            "address": _str(entry.get("gitaly_address")) or f"unix:{DEFAULT_SOCKET}",
            "token": _str(entry.get("gitaly_token")) or token,
        }
    if not storages:
        storages["default"] = {"address": f"unix:{DEFAULT_SOCKET}", "token": token}

    external_url = _str(raw.get("external_url")) or "http://gitlab.example.com"
    url = urllib.parse.urlsplit(external_url)
    port = _section(raw, "nginx").get("listen_port") or url.port or 80
    whitelist = rails.get("monitoring_whitelist")
    return {
        "external_url": external_url.rstrip("/"),
        "port": int(port),
        "storages": storages,
        "monitoring_whitelist": whitelist if isinstance(whitelist, list) else DEFAULT_WHITELIST,
    }


def effective(raw: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The whole node: which services run and with what (secrets included)."""
    shell_secret = _str(_section(secrets, "gitlab_shell").get("secret_token")).strip()
    gitaly_secret = _str(_section(secrets, "gitaly").get("gitlab_secret")).strip()
    node: dict[str, Any] = {"gitaly": None, "app": None, "trusted_certs": TRUSTED_CERTS}
    has_app = app_enabled(raw)
    if gitaly_enabled(raw):
        gitaly = gitaly_settings(raw)
        internal = _str(_section(raw, "gitlab_rails").get("internal_api_url"))
        if not internal and has_app:
            internal = "http://localhost:" + str(app_settings(raw)["port"])
        gitaly["internal_api_url"] = internal
        # 17.5+ Gitaly signs with gitaly.gitlab_secret, which defaults to the shell secret.
        gitaly["hook_secret"] = gitaly_secret or shell_secret
        node["gitaly"] = gitaly
    if has_app:
        app = app_settings(raw)
        app["shell_secret"] = shell_secret
        node["app"] = app
    return node


def fresh_secrets() -> dict[str, Any]:
    """A new gitlab-secrets.json like the one reconfigure writes on first boot."""
    return {
        "gitlab_workhorse": {"secret_token": _random.token_urlsafe(32)},
        "gitlab_shell": {"secret_token": _random.token_hex(64)},
        "gitlab_rails": {
            "secret_key_base": _random.token_hex(64),
            "db_key_base": _random.token_hex(64),
            "otp_key_base": _random.token_hex(64),
        },
    }


def load_secrets(path: str = SECRETS_JSON) -> dict[str, Any]:
    """Read gitlab-secrets.json; when absent write a fresh one (mode 0600), as Omnibus does."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        data = fresh_secrets()
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
    return effective(evaluate(gitlab_rb), load_secrets(secrets_path))


def write_runtime(node: dict[str, Any]) -> None:
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    tmp = os.path.join(RUN_DIR, "config.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(node, fh, indent=2)
    os.replace(tmp, os.path.join(RUN_DIR, "config.json"))


def read_runtime() -> dict[str, Any]:
    with open(os.path.join(RUN_DIR, "config.json")) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


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
    try:
        if via_pid1:
            with open("/proc/1/fd/1", "a") as out:
                out.write(line)
        else:
            os.write(1, line.encode())
    except OSError:
        pass
    try:
        os.makedirs(os.path.join(LOG_DIR, service), exist_ok=True)
        with open(os.path.join(LOG_DIR, service, "current"), "a") as fh:
            fh.write(line)
    except OSError:
        pass
