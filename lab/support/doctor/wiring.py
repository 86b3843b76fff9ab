"""What wires the app to each Gitaly node, read from the lab folder's files on both kinds
of node (an Omnibus node's gitlab.rb and gitlab-secrets.json, a source node's config.toml,
gitlab.yml and shell secret file) and compared by hash: tokens, the shell secret, storage
names and the API URL, each side named by its file and key. No Docker: files only.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import SpecError
from lab.model.topology import Lab, Node
from lab.omnibus import dialect as omnibus_dialect
from lab.omnibus import keypaths
from lab.omnibus import source_layout as source
from lab.render.gitlab_rb import app_url
from lab.render.secrets import fingerprint
from lab.spec.source_reader import (
    CONFIG_TOML_WHAT,
    GITLAB_YML_WHAT,
    SourceApp,
    SourceGitaly,
    Where,
    parse_config_toml,
    parse_gitlab_yml,
)
from lab.store.lab_folder import LabFolder
from lab.store.labdir import node_paths
from lab.store.layout import SECRETS_MAX_BYTES, read_no_links
from lab.support.doctor.checks import Check, Level


@dataclass
class Side:
    """One node's half of the wiring: each value with the file and key it came from."""

    node: str
    token: dict[str, tuple[str | None, Where]] = field(default_factory=dict)  # storage/"" ->
    secret: tuple[str | None, Where] | None = None
    storages: tuple[set[str], Where] | None = None
    url: tuple[str | None, Where] | None = None
    addresses: dict[str, str] = field(default_factory=dict)  # app: storage -> address


def _in_node(node: str, absolute: str) -> str | None:
    """The lab folder's path of a node's file (as the node sees it, its folder standing
    for its root), or None if it would leave the node's folder. Lexical: the read that
    follows refuses a link anywhere on the path, so no link can take it elsewhere."""
    rel = posixpath.normpath(absolute.lstrip("/") or ".")
    if rel == "." or rel.startswith("../") or rel == "..":
        return None
    return f"nodes/{node}/{rel}"


def _secret_file(lab_dir: Path, node: str, path: str, where: Where) -> tuple[str | None, Where]:
    """The shell secret in the file a node's config names; None when it is not there or
    empty (the check row says unset). Read once: its absence is the read's answer."""
    rel = _in_node(node, path)
    if rel is None:
        return None, where
    try:
        text = LabFolder(lab_dir).node_text(rel, "shell secret file").strip()
    except FileNotFoundError:
        return None, where
    return (text, Where(str(lab_dir / rel), "(the whole file)", None)) if text else (None, where)


def _omnibus_secret(lab_dir: Path, node: Node) -> tuple[str | None, Where]:
    rel = node_paths(node).secrets
    where = Where(str(lab_dir / rel), "gitlab_shell.secret_token")
    try:  # never through a link: the node's container may have left one there
        data = json.loads(read_no_links(lab_dir, rel, limit=SECRETS_MAX_BYTES))
    except (OSError, ValueError):
        return None, where
    value = data.get("gitlab_shell", {}).get("secret_token") if isinstance(data, dict) else None
    return (str(value) if value else None), where


def _node_file(lab_dir: Path, node: Node, absolute: str, what: str) -> tuple[str, str]:
    """(text, file name) of a source node's config file, read without following a link
    (LabFolder.node_text); missing, it is a SpecError as any unreadable one."""
    rel = f"nodes/{node.name}/{absolute.lstrip('/')}"
    try:
        return LabFolder(lab_dir).node_text(rel, what), str(lab_dir / rel)
    except FileNotFoundError as exc:
        raise LabFolder(lab_dir).unreadable(rel, exc) from None


def read_source_toml(lab_dir: Path, node: Node) -> SourceGitaly:
    """A source Gitaly node's config.toml in the lab folder, never through a link."""
    return parse_config_toml(*_node_file(lab_dir, node, source.CONFIG_TOML, CONFIG_TOML_WHAT))


def read_source_yml(lab_dir: Path, node: Node) -> SourceApp:
    """A source app node's gitlab.yml in the lab folder, never through a link."""
    return parse_gitlab_yml(*_node_file(lab_dir, node, source.GITLAB_YML, GITLAB_YML_WHAT))


def _rb_where(path: Path, setting: str, lab: Lab) -> Where:
    keys = keypaths.read_order(setting, lab.version)
    return Where(str(path), keys[0].ruby if keys else setting)


def read_side(lab_dir: Path, lab: Lab, node: Node) -> Side:
    side = Side(node.name)
    if node.from_source and node.is_app:
        app = read_source_yml(lab_dir, node)
        if app.token is not None:  # the global gitaly.token, for storages without one
            side.token[""] = (app.token, app.where["token"])
        for name, value in app.tokens.items():
            if value:  # Rails: an empty gitaly_token falls back to gitaly.token (.presence)
                side.token[name] = (value, app.where[f"token:{name}"])
        side.addresses = dict(app.storages)
        side.secret = _secret_file(lab_dir, node.name,
                                   app.secret_file or source.APP_SHELL_SECRET_FILE,
                                   Where(app.file, "production.gitlab_shell.secret_file"))
        return side
    if node.from_source:
        g = read_source_toml(lab_dir, node)
        side.token[""] = (g.token, g.where.get("token", Where(g.file, "auth.token")))
        side.storages = (set(g.storages), g.where["storages"])
        if g.api_url is not None:
            side.url = (g.api_url, g.where["api_url"])
        side.secret = _secret_file(lab_dir, node.name, g.secret_file or source.SHELL_SECRET_FILE,
                                   g.where.get("secret_file", Where(g.file, "gitlab.secret_file")))
        return side
    rb = lab_dir / node_paths(node).gitlab_rb
    get = omnibus_dialect.getter(LabFolder(lab_dir).gitlab_rb(
        node_paths(node).gitlab_rb, node.omnibus_config).settings)
    d = lab.dialect
    side.secret = _omnibus_secret(lab_dir, node)
    if node.is_app:
        a = omnibus_dialect.read_app(get, d)
        side.token[""] = (a.token, _rb_where(rb, keypaths.APP_GITALY_TOKEN, lab))
        for name, row in a.storages.items():
            side.addresses[name] = row.get("address", "")
            if "token" in row:
                key = "".join(f"['{p}']" for p in a.storages_key[1:])
                side.token[name] = (row["token"], Where(
                    str(rb), f"{a.storages_key[0]}{key}['{name}']['gitaly_token']"))
        return side
    f = omnibus_dialect.read_gitaly(get, d)
    side.token[""] = (f.token, _rb_where(rb, keypaths.GITALY_TOKEN, lab))
    side.storages = (set(f.storages), _rb_where(rb, keypaths.GITALY_STORAGES, lab))
    side.url = (f.internal_api_url, _rb_where(rb, keypaths.INTERNAL_API_URL, lab))
    return side


def _fp(value: str | None) -> str:
    return "unset" if not value else fingerprint(value)


def _host(address: str) -> str:
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def wiring_checks(lab: Lab, app: Side, gitaly: Side) -> list[Check]:
    """The app's side against one Gitaly node's side, by hash, naming both files and keys."""
    out: list[Check] = []
    served = sorted(n for n, a in app.addresses.items() if _host(a) == gitaly.node)
    for name in served or [""]:
        sent, sent_at = app.token.get(name) or app.token.get("", (None, Where("?", "?")))
        held, held_at = gitaly.token.get("", (None, Where("?", "?")))
        level = Level.OK if sent == held and sent else Level.FAIL
        out.append(Check(gitaly.node, "gitaly token (files)", level,
                         f"{sent_at}: {_fp(sent)} / {held_at}: {_fp(held)}",
                         "" if level is Level.OK else "make both the same token, then "
                         "reconfigure (Omnibus) or restart (source) both nodes"))
    if app.secret is not None and gitaly.secret is not None:
        (a, a_at), (g, g_at) = app.secret, gitaly.secret
        level = Level.OK if a == g and a else Level.FAIL
        out.append(Check(gitaly.node, "shell secret (files)", level,
                         f"{a_at}: {_fp(a)} / {g_at}: {_fp(g)}",
                         "" if level is Level.OK else f"copy {app.node}'s secret to "
                         f"{gitaly.node}, then restart Gitaly"))
    if gitaly.storages is not None:
        names, at = gitaly.storages
        missing = [n for n in served if n not in names]
        out.append(Check(gitaly.node, "storage names (files)",
                         Level.FAIL if missing else Level.OK,
                         f"app storages on {gitaly.node}: {', '.join(served) or 'none'} / "
                         f"{at}: {', '.join(sorted(names))}",
                         f"add {', '.join(missing)} to {at.file}" if missing else ""))
    if gitaly.url is not None:
        url, at = gitaly.url
        want = app_url(lab)
        level = Level.OK if url and url.rstrip("/") == want else Level.WARN
        out.append(Check(gitaly.node, "internal API URL (files)", level,
                         f"{at}: {url or 'unset'} (the app is {want})"))
    return out


def wiring_report(lab_dir: Path, lab: Lab) -> list[Check]:
    """Every Gitaly node of a lab with a source node against its app, from the files."""
    if not any(n.from_source for n in lab.nodes):
        return []
    try:
        app = read_side(lab_dir, lab, lab.app)
        sides = [read_side(lab_dir, lab, n) for n in lab.external_gitaly_nodes
                 if lab.praefect_of(n) is None]
    except SpecError as exc:
        return [Check("lab", "wiring (files)", Level.FAIL, str(exc))]
    return [c for side in sides for c in wiring_checks(lab, app, side)]
