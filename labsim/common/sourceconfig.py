"""What a node installed from source runs with: Gitaly's config.toml, the app's gitlab.yml
(stdlib only, plus the image's Ruby for YAML).

A source Gitaly reads no gitlab.rb and has no reconfigure: it starts from Gitaly's own
``config.toml`` (read here with ``tomllib``) and the GitLab-Shell secret file that names,
and a change takes effect when Gitaly restarts. ``load`` turns those files into the same
runtime dict the Omnibus path publishes (``simconfig.effective``), so the sim's Gitaly and
hooks run unchanged. Where the API URL and the secret live depends on the release
(boundaries in lab/omnibus/release.py; docs/fidelity.md, "Nodes installed from source"):

- before GITALY_SHELL_KEYS_IN_TOML: in gitlab-shell's ``config.yml`` (``gitlab_url``,
  ``secret_file``; default ``.gitlab_shell_secret`` beside it) in ``[gitlab-shell] dir``;
- from GITALY_SHELL_KEYS_IN_TOML: ``[gitlab-shell] gitlab_url`` and ``secret_file``;
- from GITALY_GITLAB_SECTION: ``[gitlab] url`` and ``secret_file`` (or ``secret``); an
  unset ``secret_file`` defaults to ``.gitlab_shell_secret`` in ``[gitlab-shell] dir``
  (Gitaly's ``setDefaults``).

From GITALY_GITLAB_SECTION Gitaly builds its GitLab API client when it starts: a URL
that is not http(s):// or http+unix:// (an unset one included) or an unreadable secret
file stops it, in the words of lab.omnibus.eras.gitaly_api_client_error. Before,
gitlab-shell's Ruby hooks read both on each push.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from typing import Any

from lab.omnibus import eras
from lab.omnibus import release as rel
from lab.omnibus.release import Version
from lab.omnibus.source_layout import (
    CONFIG_TOML,
    GITLAB_DIR,
    GITLAB_YML,
    SHELL_SECRET_FILE,
    SOURCE_HTTP_PORT,
    SYSTEM_CA_DIR,
)


class SourceConfigError(Exception):
    """config.toml could not be read; the message says where, as Gitaly's loader would."""


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _str(table: dict[str, Any], key: str) -> str:
    value = table.get(key)
    return value if isinstance(value, str) else ""


def read_shell_config(path: str, *, ruby: str = "ruby", aliases: bool = False) -> dict[str, Any]:
    """gitlab-shell's config.yml (or the app's gitlab.yml, whose ``production: &base``
    needs ``aliases``) as data, parsed by Ruby's YAML as gitlab-shell and Rails do (the
    image has Ruby, not PyYAML); {} when the file is absent. Never ERB: a user's file is
    data here, where Rails would evaluate it."""
    if not os.path.isfile(path):
        return {}
    opts = ", aliases: true" if aliases else ""
    proc = subprocess.run(
        [ruby, "-ryaml", "-rjson", "-e",
         f"puts JSON.generate(YAML.safe_load(File.read(ARGV[0]){opts}) || {{}})", path],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SourceConfigError(f"{path}: {(proc.stderr or proc.stdout).strip()}")
    data = json.loads(proc.stdout)
    return data if isinstance(data, dict) else {}


def api_and_secret(data: dict[str, Any], version: Version,
                   shell_config: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """(internal API URL, secret file, inline secret) where ``version`` looks for them."""
    shell = _table(data, "gitlab-shell")
    shell_dir = _str(shell, "dir")
    default_file = os.path.join(shell_dir, ".gitlab_shell_secret") if shell_dir \
        else SHELL_SECRET_FILE
    if version < rel.GITALY_SHELL_KEYS_IN_TOML:
        yml = shell_config or {}
        return (_str(yml, "gitlab_url"), _str(yml, "secret_file") or default_file, "")
    if version < rel.GITALY_GITLAB_SECTION:
        return (_str(shell, "gitlab_url"), _str(shell, "secret_file") or default_file, "")
    gitlab = _table(data, "gitlab")
    return (_str(gitlab, "url"), _str(gitlab, "secret_file") or default_file,
            _str(gitlab, "secret"))


def gitaly_from_toml(data: dict[str, Any], version: Version, config_path: str,
                     shell_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runtime "gitaly" section from a parsed config.toml (secret file read here)."""
    auth, tls = _table(data, "auth"), _table(data, "tls")
    storages: dict[str, str] = {}
    for row in data.get("storage") or []:
        if isinstance(row, dict) and isinstance(row.get("name"), str):
            storages[row["name"]] = _str(row, "path")
    url, secret_file, inline = api_and_secret(data, version, shell_config)
    secret, secret_error = inline.strip(), ""
    if not inline:
        try:
            with open(secret_file) as fh:
                secret = fh.read().strip()  # gitlabnet trims it before signing
        except OSError as exc:
            # Go's os.ReadFile error: "open PATH: no such file or directory".
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            secret_error = f"open {secret_file}: {why.lower()}"
    return {
        "listen_addr": _str(data, "listen_addr"),
        "tls_listen_addr": _str(data, "tls_listen_addr"),
        "certificate_path": _str(tls, "certificate_path"),
        "key_path": _str(tls, "key_path"),
        "token": _str(auth, "token"),
        "transitioning": auth.get("transitioning") is True,
        "socket_path": _str(data, "socket_path"),
        "storages": storages,
        "internal_api_url": url,
        "hook_secret": secret,
        # From GITALY_GITLAB_SECTION Gitaly builds its API client at start, or stops.
        "start_error": eras.gitaly_api_client_error(version, url, secret_error),
        "config_path": config_path,
    }


def load(version: Version, config_path: str = CONFIG_TOML) -> dict[str, Any]:
    """The runtime dict of a source Gitaly node (SourceConfigError when unreadable)."""
    try:
        with open(config_path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SourceConfigError(f"load config: config_path {config_path!r}: "
                                f"{exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"load config: config_path {config_path!r}: {exc}") from exc
    shell_config = None
    if version < rel.GITALY_SHELL_KEYS_IN_TOML:
        shell_dir = _str(_table(data, "gitlab-shell"), "dir")
        shell_config = read_shell_config(os.path.join(shell_dir, "config.yml"))
    return {"gitaly": gitaly_from_toml(data, version, config_path, shell_config),
            "app": None, "install": "source", "version": str(version),
            "trusted_certs": ""}


DEFAULT_WHITELIST = ["127.0.0.0/8", "::1/128"]


def app_shell_secret(secret_file: str) -> str:
    """The app's shell secret as Rails reads it (Gitlab::Shell.secret_token: the file,
    chomped). A missing or empty file is made as Rails' gitlab_shell_secret_token
    initializer does (Gitlab::Shell.ensure_secret_token!: SecureRandom.hex(16))."""
    try:
        with open(secret_file) as fh:
            secret = fh.read()
    except OSError:
        secret = ""
    if not secret:
        secret = os.urandom(16).hex()
        with open(secret_file, "w") as fh:
            fh.write(secret)
    return secret.rstrip("\n")


def app_from_yml(data: dict[str, Any], environment: str = "production") -> dict[str, Any]:
    """The runtime "app" section from a parsed gitlab.yml (the shell secret read here).

    Rails (config/initializers/1_settings.rb, lib/gitlab/gitaly_client.rb): the URL from
    gitlab.host/port/https; each storage's gitaly_address, and its token
    ``gitaly_token.presence || gitaly.token``; gitlab_shell.secret_file, relative to
    Rails.root, default Rails.root/.gitlab_shell_secret; monitoring.ip_whitelist.
    """
    env = _table(data, environment)
    gitlab, gitaly = _table(env, "gitlab"), _table(env, "gitaly")
    storages: dict[str, dict[str, str]] = {}
    raw = _table(_table(env, "repositories"), "storages")
    for name, entry in raw.items():
        row = entry if isinstance(entry, dict) else {}
        storages[str(name)] = {"address": _str(row, "gitaly_address"),
                               "token": _str(row, "gitaly_token") or _str(gitaly, "token")}
    https = gitlab.get("https") is True
    host = _str(gitlab, "host") or "localhost"
    port = gitlab.get("port")
    default_port = 443 if https else 80
    url = f"{'https' if https else 'http'}://{host}"
    if isinstance(port, int) and port != default_port:
        url += f":{port}"
    shell = _table(env, "gitlab_shell")
    secret_file = _str(shell, "secret_file") or ".gitlab_shell_secret"
    whitelist = _table(env, "monitoring").get("ip_whitelist")
    return {
        "external_url": url,
        "port": SOURCE_HTTP_PORT,
        "storages": storages,
        "monitoring_whitelist": whitelist if isinstance(whitelist, list) else DEFAULT_WHITELIST,
        "shell_secret": app_shell_secret(os.path.join(GITLAB_DIR, secret_file)),
        # Gitaly's certificate, trusted through the system store (the guide's way).
        "trusted_certs": SYSTEM_CA_DIR,
        "config_path": GITLAB_YML,
    }


def load_app(version: Version, yml_path: str = GITLAB_YML) -> dict[str, Any]:
    """The runtime dict of a source app node (SourceConfigError when unreadable)."""
    if not os.path.isfile(yml_path):
        # Ruby's File.read, as Rails' settings loader meets it.
        raise SourceConfigError(f"No such file or directory @ rb_sysopen - {yml_path} "
                                "(Errno::ENOENT)")
    data = read_shell_config(yml_path, aliases=True)
    return {"gitaly": None, "app": app_from_yml(data), "install": "source",
            "version": str(version), "trusted_certs": SYSTEM_CA_DIR}
