"""Files of nodes installed from source, read as data (never run): Gitaly's
``config.toml`` (tomllib), GitLab's ``config/gitlab.yml`` and gitlab-shell's
``config.yml`` (YAML through lab.spec.yamlfile: size, depth and alias limits, line
numbers). Errors name the file, the line and the key.

Which release writes which key: lab/render/source.py and docs/fidelity.md.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import SpecError
from lab.spec.yamlfile import Origins, error_at, load_yaml, read_user_file

# What each file is called in errors.
CONFIG_TOML_WHAT = "Gitaly config.toml"
GITLAB_YML_WHAT = "gitlab.yml"
SHELL_CONFIG_WHAT = "gitlab-shell config.yml"

# tomllib says where it stopped: "... (at line 3, column 7)".
_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class Where:
    """A file and the key (and line) a value came from: what doctor and import name."""

    file: str
    key: str
    line: int | None = None

    def __str__(self) -> str:
        at = f":{self.line}" if self.line is not None else ""
        return f"{self.file}{at} {self.key}"


@dataclass(frozen=True)
class SourceGitaly:
    """What a source Gitaly node's config.toml says about its wiring."""

    file: str
    token: str | None
    listen_addr: str | None
    tls_listen_addr: str | None
    storages: dict[str, str]  # name -> repositories folder
    api_url: str | None  # [gitlab] url (13.1+), [gitlab-shell] gitlab_url (13.0)
    secret_file: str | None
    shell_dir: str | None  # [gitlab-shell] dir: before 13.0 its config.yml has the URL
    where: dict[str, Where] = field(default_factory=dict)  # fact -> file and key
    clues: tuple[str, ...] = ()  # what the sections say about the release


@dataclass(frozen=True)
class SourceApp:
    """What a source app node's gitlab.yml says: storages and the shell secret's file."""

    file: str
    storages: dict[str, str]  # name -> gitaly_address
    tokens: dict[str, str]  # name -> gitaly_token (where set)
    secret_file: str | None
    where: dict[str, Where] = field(default_factory=dict)
    token: str | None = None  # the global gitaly.token

    def token_for(self, storage: str) -> str | None:
        """The token the app sends to ``storage``: Rails' GitalyClient.token, the storage's
        gitaly_token ``.presence || Gitlab.config.gitaly['token']`` (every release)."""
        return self.tokens.get(storage) or self.token

    def token_where(self, storage: str) -> Where | None:
        if self.tokens.get(storage):
            return self.where.get(f"token:{storage}")
        return self.where.get("token")


@dataclass(frozen=True)
class ShellConfig:
    """gitlab-shell's config.yml: where Gitaly before 13.0 found the API and the secret."""

    file: str
    gitlab_url: str | None
    secret_file: str | None
    where: dict[str, Where] = field(default_factory=dict)


def _key_line(text: str, table: str, key: str) -> int | None:
    """The line of ``key = ...`` inside ``[table]`` (``""``: the top level)."""
    current = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            current = header[1].strip('"')
        elif current == table and re.match(rf"^\"?{re.escape(key)}\"?\s*=", line):
            return number
    return None


def _str(data: dict[str, Any], key: str, file: str, table: str, text: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        name = f"{table}.{key}" if table else key
        raise SpecError(f"must be a string, not {type(value).__name__}", source=file,
                        line=_key_line(text, table, key), key=name)
    return value


def _table(data: dict[str, Any], name: str, file: str, text: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise SpecError("must be a table", source=file, line=_key_line(text, "", name), key=name)
    return value


def read_config_toml(path: Path) -> SourceGitaly:
    """A config.toml the user named (lab import); a lab folder's: LabFolder.node_text."""
    return parse_config_toml(read_user_file(path, CONFIG_TOML_WHAT), str(path))


def parse_config_toml(text: str, file: str) -> SourceGitaly:
    """``text`` of the config.toml ``file`` (named in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_AT.search(str(exc))
        raise SpecError(f"not valid TOML: {_TOML_AT.sub('', str(exc)).strip()}", source=file,
                        line=int(m[1]) if m else None) from None
    where: dict[str, Where] = {}

    def at(fact: str, table: str, key: str) -> None:
        where[fact] = Where(file, f"{table}.{key}" if table else key,
                            _key_line(text, table, key))

    auth, gitlab = _table(data, "auth", file, text), _table(data, "gitlab", file, text)
    shell = _table(data, "gitlab-shell", file, text)
    token = _str(auth, "token", file, "auth", text)
    at("token", "auth", "token")
    raw_storages = data.get("storage", [])
    if not isinstance(raw_storages, list):
        raise SpecError("must be an array of tables ([[storage]] name, path)", source=file,
                        line=_key_line(text, "", "storage"), key="storage")
    storages: dict[str, str] = {}
    for i, s in enumerate(raw_storages):
        name = s.get("name") if isinstance(s, dict) else None
        spath = s.get("path") if isinstance(s, dict) else None
        if not isinstance(name, str) or not isinstance(spath, str):
            raise SpecError("each [[storage]] needs a name and a path (strings)", source=file,
                            key=f"storage[{i}]")
        storages[name] = spath
    where["storages"] = Where(file, "[[storage]] name", _key_line(text, "storage", "name"))
    url = _str(gitlab, "url", file, "gitlab", text)
    secret_file = _str(gitlab, "secret_file", file, "gitlab", text)
    if url is not None:
        at("api_url", "gitlab", "url")
    if secret_file is not None:
        at("secret_file", "gitlab", "secret_file")
    if url is None and "gitlab_url" in shell:  # 13.0's spelling
        url = _str(shell, "gitlab_url", file, "gitlab-shell", text)
        at("api_url", "gitlab-shell", "gitlab_url")
    if secret_file is None and "secret_file" in shell:
        secret_file = _str(shell, "secret_file", file, "gitlab-shell", text)
        at("secret_file", "gitlab-shell", "secret_file")
    clues = []
    if "gitaly-ruby" in data:
        clues.append("[gitaly-ruby]: Gitaly before 15.11")
    if "gitlab" in data:
        clues.append("[gitlab]: Gitaly 13.1 or later")
    elif "gitlab_url" in shell:
        clues.append("[gitlab-shell] gitlab_url: Gitaly 13.0")
    return SourceGitaly(
        file=file, token=token,
        listen_addr=_str(data, "listen_addr", file, "", text),
        tls_listen_addr=_str(data, "tls_listen_addr", file, "", text),
        storages=storages, api_url=url, secret_file=secret_file,
        shell_dir=_str(shell, "dir", file, "gitlab-shell", text),
        where=where, clues=tuple(clues))


def _yaml(text: str, file: str, what: str) -> tuple[dict[str, Any], Origins, str]:
    origins = Origins()
    return load_yaml(text, file, origins,
                     not_a_mapping=f"a {what} must be a mapping of keys"), origins, file


def _ystr(data: Any, path: tuple[str, ...], origins: Origins) -> str | None:
    cursor = data
    for part in path:
        if not isinstance(cursor, dict) or part not in cursor:
            return None
        cursor = cursor[part]
    if cursor is None:
        return None
    if not isinstance(cursor, str):
        raise error_at(origins, path, f"must be a string, not {type(cursor).__name__}")
    return cursor


def _ywhere(origins: Origins, path: tuple[str, ...]) -> Where:
    source, line = origins.of(path)
    return Where(source, ".".join(path), line)


def read_gitlab_yml(path: Path) -> SourceApp:
    """A gitlab.yml the user named (lab import); a lab folder's: LabFolder.node_text."""
    return parse_gitlab_yml(read_user_file(path, GITLAB_YML_WHAT), str(path))


def parse_gitlab_yml(text: str, file: str, environment: str = "production") -> SourceApp:
    data, origins, file = _yaml(text, file, GITLAB_YML_WHAT)
    env = data.get(environment)
    if not isinstance(env, dict):
        raise error_at(origins, (environment,), f"no {environment!r} section: is this GitLab's "
                       "config/gitlab.yml?")
    key = (environment, "repositories", "storages")
    raw = _ystr_map(env.get("repositories", {}), key, origins)
    storages: dict[str, str] = {}
    tokens: dict[str, str] = {}
    where: dict[str, Where] = {"storages": _ywhere(origins, key)}
    for name in raw:
        address = _ystr(data, (*key, name, "gitaly_address"), origins)
        if address is not None:
            storages[name] = address
            where[f"address:{name}"] = _ywhere(origins, (*key, name, "gitaly_address"))
        token = _ystr(data, (*key, name, "gitaly_token"), origins)
        if token is not None:
            tokens[name] = token
            where[f"token:{name}"] = _ywhere(origins, (*key, name, "gitaly_token"))
    secret_path = (environment, "gitlab_shell", "secret_file")
    secret_file = _ystr(data, secret_path, origins)
    if secret_file is not None:
        where["secret_file"] = _ywhere(origins, secret_path)
    token_path = (environment, "gitaly", "token")
    token = _ystr(data, token_path, origins) if isinstance(env.get("gitaly"), dict) else None
    if token is not None:
        where["token"] = _ywhere(origins, token_path)
    return SourceApp(file=file, storages=storages, tokens=tokens, secret_file=secret_file,
                     where=where, token=token)


def _ystr_map(repositories: Any, key: tuple[str, ...], origins: Origins) -> dict[str, Any]:
    storages = repositories.get("storages") if isinstance(repositories, dict) else None
    if storages is None:
        return {}
    if not isinstance(storages, dict):
        raise error_at(origins, key, "must be a mapping of storage names")
    return storages


def read_shell_config_yml(path: Path) -> ShellConfig:
    """A config.yml the user named (lab import)."""
    return parse_shell_config_yml(read_user_file(path, SHELL_CONFIG_WHAT), str(path))


def parse_shell_config_yml(text: str, file: str) -> ShellConfig:
    data, origins, file = _yaml(text, file, SHELL_CONFIG_WHAT)
    where: dict[str, Where] = {}
    url = _ystr(data, ("gitlab_url",), origins)
    secret = _ystr(data, ("secret_file",), origins)
    if url is not None:
        where["api_url"] = _ywhere(origins, ("gitlab_url",))
    if secret is not None:
        where["secret_file"] = _ywhere(origins, ("secret_file",))
    return ShellConfig(file=file, gitlab_url=url, secret_file=secret, where=where)
