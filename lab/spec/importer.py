"""`lab import`: a customer's gitlab.rb files (one per node) -> a lab spec.

A customer's file is data: it is never run on this host. ``read_rb`` has Ruby's
own parser (Ripper, lab/spec/read_gitlab_rb.rb) read it and takes only literal
settings; any other statement (``system(...)``, a loop, a variable) is listed as
not reproduced with its line, and a syntax error names file and line. The version
is inferred from the keys used (or pinned); lab.omnibus.dialect then reads roles,
storages, TLS, tokens and ``internal_api_url`` in that release's terms. Whatever
has no place in a spec, and every key the release does not know, is returned as
a note (printed, and written as comments into the YAML): nothing is dropped silently.

Customer secret values are never copied into the spec: only whether the Gitaly
tokens *match* is kept, with fresh random tokens standing in for different ones.
"""

from __future__ import annotations

import json
import re
import secrets as _secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from lab.errors import BadInput, SpecError
from lab.model.topology import GITALY_PORT, GITALY_TLS_PORT, default_storage_path
from lab.omnibus import dialect as omnibus_dialect
from lab.omnibus import keypaths
from lab.omnibus import praefect as pf
from lab.omnibus.infer import VersionClues
from lab.omnibus.release import Version
from lab.omnibus.secret_keys import is_secret_key
from lab.spec.rb_reader import read_rb
from lab.spec.source_reader import (
    ShellConfig,
    SourceApp,
    SourceGitaly,
    read_config_toml,
    read_gitlab_yml,
    read_shell_config_yml,
)
from lab.spec.versions import DEFAULT_VERSION, newer_than_known, parse_supported, unsupported

DEFAULT_NAME = "imported"


# How support tickets usually spell a value someone removed before sending the file.
REDACTED_RE = re.compile(
    r"^\s*[<\[({]?\s*(redacted|filtered|removed|hidden|masked|secret|token|x{3,}|\*{3,}|\.{3})"
    r"\s*[>\])}]?\s*$", re.IGNORECASE)

# Services a Gitaly-only node turns off; their `enable = false` tells the role, not a setting.
_ROLE_SWITCHES = ("postgresql", "redis", "nginx", "puma", "unicorn", "sidekiq", "gitlab_workhorse",
                  "prometheus", "alertmanager", "gitlab_exporter", "gitlab_monitor", "gitlab_kas",
                  "node_exporter", "redis_exporter", "postgres_exporter", "pgbouncer_exporter",
                  "grafana", "gitlab_pages", "registry", "mattermost", "letsencrypt")
_ADDR_RE = re.compile(r"^(tcp|tls|unix)://([^:/]+|\[[^\]]+\])(?::(\d+))?/?\Z")


# --- reading settings ------------------------------------------------------------

class Settings:
    """Evaluated gitlab.rb settings that remember which keys were read.

    What was never read is what the spec cannot express: ``leftovers`` lists it.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)
        self.used: set[tuple[str, ...]] = set()

    def get(self, *path: str) -> Any:
        cursor: Any = self.data
        for part in path:
            if not isinstance(cursor, dict) or part not in cursor:
                return None
            cursor = cursor[part]
        # A non-empty mapping is not consumed by being read: its keys are, one by one.
        if not (isinstance(cursor, dict) and cursor):
            self.used.add(path)
        # Reading a missing key in gitlab.rb auto-vivifies an empty hash: that is "unset".
        return None if cursor == {} else cursor

    def section(self, *path: str) -> dict[str, Any]:
        value = self.get(*path)
        return value if isinstance(value, dict) else {}

    def leftovers(self) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield from self._walk(self.data, ())

    def _walk(self, value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        if path in self.used:
            return
        if isinstance(value, dict) and value:
            for k, v in value.items():
                yield from self._walk(v, (*path, str(k)))
        elif path and value != {}:
            yield path, value


def ruby_key(path: Sequence[str]) -> str:
    return path[0] + "".join(f"['{p}']" for p in path[1:])


def is_redacted(value: Any) -> bool:
    return isinstance(value, str) and bool(REDACTED_RE.match(value))


def shown(path: Sequence[str], value: Any) -> str:
    """A value fit for a note: anything secret-looking is not repeated."""
    if is_secret_key(path[-1]) and not is_redacted(value):
        return "<secret, not copied>"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _addr(value: Any) -> tuple[str, str, int | None] | None:
    m = _ADDR_RE.match(str(value or "").strip())
    if not m:
        return None
    return m[1], m[2], int(m[3]) if m[3] else None


def _port(listen: str) -> int | None:
    tail = listen.rsplit(":", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


# --- per node -------------------------------------------------------------------

@dataclass
class NodeImport:
    name: str
    source: str
    settings: Settings
    app: bool = False
    gitaly: bool = False
    tls: bool = False
    storages: dict[str, str] = field(default_factory=dict)  # name -> git_data_dirs-style path
    token: str | None = None  # None: not set
    app_storages: dict[str, str] = field(default_factory=dict)  # app: storage -> address
    praefect: pf.PraefectFacts | None = None  # a Praefect node's settings
    praefect_token: str | None = None  # behind a Praefect: the token it sends this node
    postgres: bool = False  # Praefect's PostgreSQL node (roles(['postgres_role']))
    backends: list[str] = field(default_factory=list)  # a Praefect's Gitaly nodes, in order
    internal_api_url: str | None = None
    external_url: str | None = None
    skipped: tuple[tuple[int, str], ...] = ()  # Ruby statements that are not settings
    source_install: bool = False  # read from config.toml / gitlab.yml (install: source)


def _roles(s: Settings) -> list[str]:
    raw = s.data.get("roles")
    return [raw] if isinstance(raw, str) else [str(r) for r in raw or []] \
        if isinstance(raw, list) else []


def _mark_read(s: Settings, *settings: str) -> None:
    """Mark these settings (every spelling in lab.omnibus.keypaths) as expressed by the lab."""
    for setting in settings:
        for key in keypaths.rows(setting):
            s.get(*key.path)


def _classify(node: NodeImport, d: omnibus_dialect.Dialect, notes: list[str]) -> None:
    s = node.settings
    roles = _roles(s)
    s.get("roles")
    other_roles = [r for r in roles if r not in ("gitaly_role", "application_role",
                                                  "postgres_role")]
    if other_roles:
        notes.append(f"{node.name}: roles {other_roles} are not reproduced (the lab has app, "
                     "gitaly, praefect and postgres nodes only)")
    # Services a Gitaly-only node turns off tell the role; they are not settings of their own.
    for svc in _ROLE_SWITCHES:
        s.get(svc, "enable")
    node.app = omnibus_dialect.runs_app(s.get, d)
    node.gitaly = omnibus_dialect.runs_gitaly(s.get)
    # The lab writes these on every node it renders (no database on a Gitaly node,
    # /etc/gitlab mounted from the host).
    written = [keypaths.MANAGE_ETC]
    if node.gitaly and not node.app:
        written += [keypaths.AUTO_MIGRATE, keypaths.RAKE_CACHE_CLEAR]
    _mark_read(s, *written)
    if s.data.get("praefect") and not node.app:
        facts = pf.read_praefect(s.get, d.version)
        if facts.enabled:
            node.praefect, node.gitaly, node.token = facts, False, facts.token
            node.tls = bool(facts.tls_listen_addr)
            _mark_read(s, keypaths.GITALY_ENABLED, keypaths.AUTO_MIGRATE,
                       keypaths.RAKE_CACHE_CLEAR)
            s.get(*keypaths.rows(keypaths.PRAEFECT_AUTO_MIGRATE_KEY)[0].path)
            return
    if "postgres_role" in roles and not node.app:
        node.postgres, node.gitaly = True, False
        for key in ("listen_address", "trust_auth_cidr_addresses", "md5_auth_cidr_addresses",
                    "sql_user_password", "port"):
            s.get("postgresql", key)
        _mark_read(s, keypaths.AUTO_MIGRATE)
        return
    if not node.app and not node.gitaly:
        raise SpecError(f"this node runs neither the GitLab application, Gitaly nor Praefect "
                        f"({d.default_web_server}['enable'] and gitaly['enable'] are both "
                        f"false in {d.version.series})", source=node.source)


def _spec_path(repositories: str) -> tuple[str, bool]:
    """A storage's repositories folder -> the spec's (git_data_dirs-style) path."""
    path = repositories.rstrip("/")
    if path.endswith("/repositories"):
        return path.removesuffix("/repositories"), True
    return path, False


def _take_storages(node: NodeImport, storages: Mapping[str, str], notes: list[str]) -> None:
    """A Gitaly node's storages (name -> repositories folder) in the spec's terms."""
    for name, repositories in storages.items():
        path, standard = _spec_path(repositories)
        if not standard:
            notes.append(f"{node.name}: storage {name!r} keeps repositories in {repositories}; "
                         f"the lab keeps them in {path}/repositories")
        node.storages[name] = path


def _gitaly_side(node: NodeImport, d: omnibus_dialect.Dialect, notes: list[str]) -> None:
    s = node.settings
    f = omnibus_dialect.read_gitaly(s.get, d)
    peek = omnibus_dialect.getter(s.data)
    for name, repositories in f.storages.items():
        # git_data_dirs beside Gitaly's own list (before DIRS_FROM_GITALY_STORAGES) only makes
        # the folders.
        if f.storages_from == "git_data_dirs" or \
                str(peek("git_data_dirs", name, "path") or "").rstrip("/") == \
                _spec_path(repositories)[0]:
            s.get("git_data_dirs", name, "path")
    node.token = f.token
    node.tls = bool(f.tls_listen_addr)
    listen, tls_listen = f.listen_addr, f.tls_listen_addr
    if node.gitaly and not node.app:
        if node.tls:
            notes.append(f"{node.name}: TLS listener {tls_listen}: the lab makes its own CA and "
                         f"a certificate for {node.name} (customer certificate files not used)")
            if listen:
                notes.append(f"{node.name}: also listens without TLS on {listen}; the lab's TLS "
                             "node listens on TLS only")
        elif not listen:
            notes.append(f"{node.name}: no listen_addr: the customer's Gitaly listens on its "
                         "socket only; the lab listens on TCP so the app can reach it")
        expected = GITALY_TLS_PORT if node.tls else GITALY_PORT
        port = _port(tls_listen or listen)
        if port is not None and port != expected:
            notes.append(f"{node.name}: listens on port {port}; the lab uses {expected}")
    _take_storages(node, f.storages, notes)
    if node.gitaly and not f.storages_from:
        notes.append(f"{node.name}: no storages configured: the Omnibus default storage "
                     "'default' is assumed")
    if node.gitaly and not node.app:
        node.internal_api_url = f.internal_api_url


def _app_side(node: NodeImport, d: omnibus_dialect.Dialect, notes: list[str]) -> None:
    s = node.settings
    f = omnibus_dialect.read_app(s.get, d)
    node.external_url = f.external_url
    node.token = f.token
    key = f.storages_key
    per_storage_tokens = set()
    for name, row in f.storages.items():
        if row["address"]:
            node.app_storages[name] = row["address"]
            s.get(*key, name, "gitaly_address")
        if "token" in row:
            per_storage_tokens.add(row["token"])
            s.get(*key, name, "gitaly_token")
    if per_storage_tokens:
        if node.token is None and len(per_storage_tokens) == 1:
            node.token = per_storage_tokens.pop()
        else:
            notes.append(f"{node.name}: per-storage gitaly_token values are not reproduced; the "
                         "lab's app uses one token for every storage")


# What a node installed from source was read from: a gitlab.yml, a config.toml, or a
# config.toml with gitlab-shell's config.yml (Gitaly before 13.0).
SourceFacts = SourceApp | SourceGitaly | tuple[SourceGitaly, ShellConfig]


def _source_side(node: NodeImport, facts: SourceFacts, notes: list[str]) -> None:
    """A node installed from source: its config.toml (+ gitlab-shell's config.yml) or its
    gitlab.yml, read as data, give the same facts a gitlab.rb gives."""
    node.source_install = True
    if isinstance(facts, SourceApp):
        notes.append(f"{node.name}: installed from source (install: source); the sim flavour "
                     "runs it from its gitlab.yml and .gitlab_shell_secret (`lab up -f SPEC`); "
                     "the omnibus flavour does not run a source app node: set its install to "
                     "omnibus there to boot the lab with the same wiring")
    else:
        notes.append(f"{node.name}: installed from source (install: source); the sim flavour "
                     "runs it from its config.toml (`lab up -f SPEC`)")
    if isinstance(facts, SourceApp):
        node.app = True
        node.app_storages = dict(facts.storages)
        # Per storage as Rails picks it: the storage's gitaly_token, else gitaly.token.
        tokens = {t for t in map(facts.token_for, facts.storages or facts.tokens) if t}
        if len(tokens) == 1:
            node.token = tokens.pop()
        elif tokens:
            notes.append(f"{node.name}: per-storage gitaly_token values are not reproduced; "
                         "the lab's app uses one token for every storage")
        return
    gitaly, shell = facts if isinstance(facts, tuple) else (facts, None)
    node.gitaly = True
    node.token = gitaly.token
    node.tls = bool(gitaly.tls_listen_addr)
    _take_storages(node, gitaly.storages, notes)
    node.internal_api_url = gitaly.api_url if gitaly.api_url is not None else \
        (shell.gitlab_url if shell is not None else None)
    if gitaly.api_url is None and shell is None and gitaly.shell_dir:
        notes.append(f"{node.name}: the API URL is in gitlab-shell's config.yml under "
                     f"{gitaly.shell_dir} (Gitaly before 13.0); give that file as "
                     f"--node {node.name}=config.yml to read it")
    notes += [f"{node.name}: {clue}" for clue in gitaly.clues]


def release_findings(settings: Mapping[str, Any], version: Version) -> list[str]:
    """What ``version``'s Omnibus says about these settings: unknown keys and removals."""
    return [message for _, message in omnibus_dialect.findings(settings, version)]


# --- putting the lab together -----------------------------------------------------

@dataclass(frozen=True)
class ImportResult:
    spec: dict[str, Any]
    version_reason: str
    unmapped: tuple[str, ...]  # settings with no place in a spec
    notes: tuple[str, ...]  # how something was mapped, worth a look
    sources: tuple[tuple[str, str], ...]  # (node, file)
    unknown: tuple[str, ...] = ()  # what the release's Omnibus would reject or ignore

    def to_yaml(self) -> str:
        head = ["# Lab spec imported by gitlab-testlab (lab import) from:"]
        head += [f"#   {node}: {src}" for node, src in self.sources]
        head.append(f"# Version {self.spec['version']}: {self.version_reason}")
        if self.unmapped:
            head.append("# NOT reproduced by this spec (check these by hand):")
            head += [f"#   - {line}" for line in self.unmapped]
        if self.unknown:
            head.append(f"# Not settings of GitLab {self.spec['version']} (check these first):")
            head += [f"#   - {line}" for line in self.unknown]
        if self.notes:
            head.append("# Notes:")
            head += [f"#   - {line}" for line in self.notes]
        head.append("# Start it: lab up -f THIS_FILE")
        body = yaml.safe_dump(self.spec, sort_keys=False, default_flow_style=False, width=1000)
        return "\n".join(_one_line(h) for h in head) + "\n" + body


def _one_line(comment: str) -> str:
    """A comment line of the spec, whatever the customer's file put in it: a line break
    (YAML also breaks at \\x85, \\u2028, \\u2029) or other control character is written as
    its escape, so no text of the file becomes a spec key."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                   for c in comment)


def _node_name(path: Path, by_folder: bool = False) -> str:
    """gitaly1.rb, gitlab-gitaly1.rb, gitaly1.toml -> gitaly1; ``by_folder``:
    gitaly1/gitlab.rb -> gitaly1; gitaly1/config.toml (or config.yml) -> gitaly1 always."""
    stem = path.name
    for suffix in (".rb", ".toml", ".yml", ".yaml"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem.removesuffix(suffix)
            break
    if stem == "config" and path.parent.name not in ("", ".", "/"):
        stem = path.parent.name
    for prefix in ("gitlab.", "gitlab-", "gitlab_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            stem = stem[len(prefix):]
    if stem == "gitlab" and by_folder and path.parent.name not in ("", ".", "/"):
        stem = path.parent.name
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"node-{name}" if name else "node"
    return name[:40]


def node_inputs(files: Sequence[Path], named: Sequence[str]) -> list[tuple[str, Path]]:
    """(node name, file) for positional files and ``--node NAME=FILE`` forms."""
    out: list[tuple[str, Path]] = []
    for form in named:
        name, sep, file = form.partition("=")
        if not sep or not name or not file:
            raise SpecError("expected NAME=FILE, e.g. --node gitaly1=gitaly1.rb",
                            source=f"--node {form}")
        out.append((name.strip(), Path(file)))
    # Several files all called gitlab.rb (a lab directory, copies of /etc/gitlab):
    # their folders name the nodes.
    by_folder = sum(p.name == "gitlab.rb" for p in files) > 1
    out += [(_node_name(p, by_folder), p) for p in files]
    seen: dict[str, Path] = {}
    for name, path in out:
        # A Gitaly config.toml and gitlab-shell's config.yml of the same node (before 13.0).
        pair = {source_kind(path), source_kind(seen[name])} if name in seen else set()
        if name in seen and pair != {"toml", "shell"}:
            raise SpecError(f"two files map to node {name!r} ({seen[name]} and {path}); name "
                            "them with --node NAME=FILE", source=str(path))
        seen[name] = path
    if not out:
        raise SpecError("give at least one gitlab.rb file (or a source node's config.toml / "
                        "gitlab.yml)")
    return out


TokenSource = Callable[[int], str]


def import_settings(inputs: Sequence[tuple[str, str, Mapping[str, Any]]], *,
                    version: str | None = None, name: str = DEFAULT_NAME,
                    token_hex: TokenSource = _secrets.token_hex,
                    skipped: Mapping[str, Sequence[tuple[int, str]]] | None = None,
                    sources: Mapping[str, SourceFacts] | None = None
                    ) -> ImportResult:
    """Map read settings, one (node name, source file, settings) per node, to a spec.

    ``skipped``: per node, the (line, statement) pairs the reader did not take;
    ``sources``: per node installed from source, what its files say (its settings are {}).
    """
    notes: list[str] = []
    clues = VersionClues()
    nodes = [NodeImport(n, src, Settings(data), skipped=tuple((skipped or {}).get(n, ())))
             for n, src, data in inputs]
    for node in nodes:
        clues.add(node.name, node.settings.data)
    if not any("gitaly_role" in _roles(n.settings) for n in nodes) and \
            any(isinstance(n.settings.data.get("gitaly"), dict) and
                n.settings.data["gitaly"].get("enable") is not False and
                not n.settings.data.get("external_url") for n in nodes):
        # Without roles(['gitaly_role']) the files look older than GITALY_ROLE, if possible.
        clues.no_roles_on_gitaly_nodes()
    asked = parse_supported(version, source="--version", force=True) \
        if version is not None else None
    if asked is not None and newer_than_known(asked):
        # `lab import` has no --force-version: the spec is imported in the newest known terms.
        raise SpecError(f"{unsupported(asked)}, or import with --version {DEFAULT_VERSION} and "
                        f"start the spec with `lab up -f SPEC --version {asked} "
                        "--force-version`", source="--version", key="version")
    release, why = clues.choose(asked, notes)
    chosen = str(release)
    d = omnibus_dialect.dialect_for(release)
    for node in nodes:
        if sources and node.name in sources:
            _source_side(node, sources[node.name], notes)
            continue
        _classify(node, d, notes)
        if node.praefect is None and not node.postgres:
            _gitaly_side(node, d, notes)
        if node.app:
            _app_side(node, d, notes)
    _cluster(nodes, notes)
    apps = [n for n in nodes if n.app]
    if len(apps) > 1:
        raise SpecError("a lab has exactly one app node, but these files all run the "
                        f"application in GitLab {d.version.series} "
                        f"({d.default_web_server} is not disabled): "
                        f"{', '.join(n.source for n in apps)}")
    if not apps:
        app = NodeImport("gitlab" if all(n.name != "gitlab" for n in nodes) else "app",
                         "(made up)", Settings({}), app=True)
        notes.append(f"no file runs the application: added app node {app.name!r}")
        nodes.insert(0, app)
        apps = [app]
    app = apps[0]
    _storages_from_app(app, nodes, notes)

    spec_nodes: dict[str, Any] = {}
    tokens = _token_overrides(app, nodes, notes, token_hex)
    tokens.update(_internal_token_overrides(nodes, notes, token_hex))
    app_url = f"http://{app.name}"
    if app.external_url and app.external_url.rstrip("/") != app_url:
        notes.append(f"{app.name}: external_url {app.external_url} becomes {app_url} in the lab")
    for node in nodes:
        entry: dict[str, Any] = {"roles": (["app"] if node.app else []) +
                                 (["gitaly"] if node.gitaly else []) +
                                 (["praefect"] if node.praefect else []) +
                                 (["postgres"] if node.postgres else [])}
        if node.praefect is not None:
            entry["storages"] = list(node.praefect.virtual_storages)[:1]
            entry["gitaly_nodes"] = list(node.backends)
            factor = next(iter(node.praefect.replication_factor.values()), None)
            if factor is not None and factor != len(node.backends):
                entry["replication_factor"] = factor
            if node.praefect.tls_listen_addr:
                entry["tls"] = True
        if node.gitaly:
            entry["storages"] = [
                {"name": s} if _same_path(p, default_storage_path(s)) else
                {"name": s, "path": p.rstrip("/")}
                for s, p in node.storages.items()
            ]
            if node.tls and not node.app:
                entry["tls"] = True
        if node.name in tokens:
            entry["gitaly_token"] = tokens[node.name]
        if node.gitaly and not node.app:
            url = _internal_api(node, app, notes)
            if url is not None:
                entry["internal_api_url"] = url
        if node.app:
            entry["publish"] = {"http": 0}
        if node.source_install:
            entry["install"] = "source"
        spec_nodes[node.name] = entry
    behind = {b for n in nodes for b in n.backends}
    if not any("default" in n.storages for n in nodes if n.gitaly and n.name not in behind) \
            and not any(n.praefect and "default" in n.praefect.virtual_storages for n in nodes):
        notes.append("no storage named 'default' in the files; GitLab needs one, so the lab "
                     "spec will not load until one is added")
    unmapped: list[str] = []
    unknown: list[str] = []
    for node in nodes:
        unmapped += [f"{node.name}: line {line}: `{text}` is Ruby code, not a setting "
                     "(read, never run)" for line, text in node.skipped]
        unmapped += [f"{node.name}: {ruby_key(path)} = {shown(path, value)}"
                     for path, value in node.settings.leftovers()]
        unknown += [f"{node.name}: {line}"
                    for line in release_findings(node.settings.data, d.version)]
    notes.append("gitlab-secrets.json is not read: all nodes share the lab's file; set "
                 "`secrets: own` on a node to reproduce a secrets mismatch")
    spec = {"name": name, "version": chosen, "nodes": spec_nodes}
    return ImportResult(spec=spec, version_reason=why, unmapped=tuple(unmapped),
                        notes=tuple(notes), sources=tuple((n.name, n.source) for n in nodes),
                        unknown=tuple(unknown))


def _same_path(a: str, b: str) -> bool:
    a = a.rstrip("/").removesuffix("/repositories")
    return a == b.rstrip("/")


def _storages_from_app(app: NodeImport, nodes: list[NodeImport], notes: list[str]) -> None:
    """Check the app's storage addresses against the Gitaly nodes; make up missing nodes."""
    by_storage = {s: n for n in nodes if n.gitaly for s in n.storages}
    for storage, address in app.app_storages.items():
        parsed = _addr(address)
        if parsed is None:
            notes.append(f"{app.name}: storage {storage!r} has address {address!r}, which the "
                         "lab cannot reproduce")
            continue
        scheme, host, port = parsed
        if scheme == "unix":
            if app.gitaly:
                app.storages.setdefault(storage, default_storage_path(storage))
            continue
        node = by_storage.get(storage) or next(
            (n for n in nodes if n.praefect is not None and storage in n.praefect.virtual_storages),
            None)
        if node is None:
            node = next((n for n in nodes if n.name == host and n is not app), None)
            if node is None:
                node = NodeImport(_node_name(Path(host.split(".")[0] + ".rb")), "(made up)",
                                  Settings({}), gitaly=True, tls=scheme == "tls")
                node.token = app.token
                node.internal_api_url = f"http://{app.name}"
                nodes.append(node)
                notes.append(f"no file for the Gitaly server at {address}: added node "
                             f"{node.name!r} from the app's settings")
            if node.praefect is None:
                node.storages.setdefault(storage, default_storage_path(storage))
            by_storage[storage] = node
        if host != node.name:
            notes.append(f"{app.name}: storage {storage!r} is dialled at {address}; the lab "
                         f"dials {node.name}")
        if (scheme == "tls") != node.tls:
            notes.append(f"{app.name}: storage {storage!r} uses {scheme}:// but {node.name} "
                         f"{'listens with' if node.tls else 'has no'} TLS; the lab follows "
                         f"{node.name}")
        if node.praefect is not None:
            expected = pf.TLS_PORT if node.tls else pf.PORT
        else:
            expected = GITALY_TLS_PORT if node.tls else GITALY_PORT
        if port is not None and port != expected:
            notes.append(f"{app.name}: storage {storage!r} port {port} becomes the lab's port")
    for node in nodes:
        if node.gitaly and node is not app and app.app_storages and node.praefect_token is None:
            unused = [s for s in node.storages if s not in app.app_storages]
            if unused:
                notes.append(f"{node.name}: storages {unused} are not in the app's settings; "
                             "the lab's app will know them")


def _token_overrides(app: NodeImport, nodes: Sequence[NodeImport], notes: list[str],
                     token_hex: TokenSource) -> dict[str, str]:
    """Per-node gitaly_token only where a node's token differs from the app's.

    Values are never copied: a different token becomes a fresh random one (one per
    distinct customer value), an unset one stays unset ("").
    """
    out: dict[str, str] = {}
    app_value = "" if app.token is None else app.token
    if is_redacted(app_value):
        notes.append(f"{app.name}: gitaly_token was redacted; assumed equal to the Gitaly "
                     "nodes' tokens (a fresh random one is used)")
    if app_value == "" and any(n.gitaly and n is not app for n in nodes):
        out[app.name] = ""
        notes.append(f"{app.name}: gitlab_rails['gitaly_token'] is not set: the app sends no "
                     "token")
    fresh: dict[str, str] = {}
    for node in nodes:
        # Behind a Praefect a Gitaly node takes Praefect's internal token, not the app's.
        if node is app or not (node.gitaly or node.praefect) or node.praefect_token is not None:
            continue
        value = "" if node.token is None else node.token
        if is_redacted(value) or is_redacted(app_value):
            if is_redacted(value):
                notes.append(f"{node.name}: Gitaly auth token was redacted; assumed equal to "
                             "the app's")
            if app_value == "":
                out[node.name] = ""
            continue
        if value == app_value:
            if value == "":
                out[node.name] = ""
            continue
        if value == "":
            out[node.name] = ""
            notes.append(f"{node.name}: Gitaly has no auth token (auth off)")
            continue
        if value not in fresh:
            fresh[value] = token_hex(32)
        out[node.name] = fresh[value]
        notes.append(f"{node.name}: Gitaly's auth token differs from the app's gitaly_token; "
                     "kept as a different (random) token")
    return out


def _cluster(nodes: list[NodeImport], notes: list[str]) -> None:
    """Each Praefect's Gitaly nodes (by the host of each node address, else by the storage
    name), named as Praefect names their storages, and its database node."""
    praefects = [n for n in nodes if n.praefect is not None]
    for p in praefects:
        assert p.praefect is not None
        facts = p.praefect
        if len(facts.virtual_storages) > 1:
            notes.append(f"{p.name}: virtual storages {list(facts.virtual_storages)[1:]} are not "
                         "reproduced (the lab's Praefect serves one)")
        for vs in list(facts.virtual_storages)[:1]:
            for b in facts.virtual_storages[vs]:
                parsed = _addr(b.address)
                host = parsed[1] if parsed else ""
                node = next((n for n in nodes if n.gitaly and not n.app and
                             (n.name == host or (host and n.name == _node_name(
                                 Path(host.split(".")[0] + ".rb"))))), None) or \
                    next((n for n in nodes if n.gitaly and not n.app and b.storage in n.storages),
                         None) or \
                    next((n for n in nodes if n.gitaly and not n.app and
                          n.name == _node_name(Path(b.storage + ".rb"))), None)
                if node is None:
                    node = NodeImport(_node_name(Path(b.storage + ".rb")), "(made up)",
                                      Settings({}), gitaly=True,
                                      tls=bool(parsed and parsed[0] == "tls"))
                    node.storages[b.storage] = pf.DEFAULT_GITALY_DATA
                    node.token = b.token
                    nodes.append(node)
                    notes.append(f"no file for Praefect's Gitaly node {b.storage} at "
                                 f"{b.address}: added node {node.name!r}")
                # The lab's Praefect names each node's storage after the node: the node takes
                # Praefect's name for it (a valid host name), so a storage the node calls
                # otherwise stays a mismatch, as in the customer's files.
                wanted = _node_name(Path(b.storage + ".rb"))
                if wanted != node.name and wanted == b.storage and \
                        all(n.name != wanted for n in nodes):
                    notes.append(f"{node.name}: named {wanted}, the storage name {p.name} "
                                 "gives it (the lab names each Gitaly node's storage after it)")
                    node.name = wanted
                elif node.name != b.storage:
                    notes.append(f"{p.name}: calls {node.name}'s storage {b.storage!r}; the lab "
                                 f"names it {node.name!r}")
                if b.storage not in node.storages:
                    notes.append(f"{node.name}: serves {', '.join(node.storages) or 'nothing'} "
                                 f"but {p.name} calls its storage {b.storage!r}: kept as that "
                                 "mismatch (lab doctor: storage name)")
                p.backends.append(node.name)
                node.praefect_token = b.token
        db = facts.database.get("host", "")
        if not any(n.postgres for n in nodes):
            made = NodeImport("praefect-db" if all(n.name != "praefect-db" for n in nodes)
                              else "praefect-postgres", "(made up)", Settings({}),
                              postgres=True)
            nodes.append(made)
            notes.append(f"no file for Praefect's PostgreSQL ({db or 'not set'}): added node "
                         f"{made.name!r}")
        elif db and all(n.name != db for n in nodes if n.postgres):
            notes.append(f"{p.name}: database host {db} becomes the lab's postgres node")


def _internal_token_overrides(nodes: Sequence[NodeImport], notes: list[str],
                              token_hex: TokenSource) -> dict[str, str]:
    """A Gitaly node behind Praefect whose token differs from the one Praefect sends it gets
    a fresh random token (values are never copied)."""
    out: dict[str, str] = {}
    fresh: dict[str, str] = {}
    sent = {n.praefect_token for n in nodes if n.praefect_token is not None}
    if len(sent) > 1:
        notes.append("Praefect sends different tokens to its Gitaly nodes; the lab's Praefect "
                     "sends one internal token")
    for node in nodes:
        if node.praefect_token is None:
            continue
        value = "" if node.token is None else node.token
        if value == node.praefect_token or is_redacted(value) or \
                is_redacted(node.praefect_token):
            continue
        if value not in fresh:
            fresh[value] = token_hex(32) if value else ""
        out[node.name] = fresh[value]
        notes.append(f"{node.name}: its Gitaly auth token differs from the token Praefect sends "
                     "it; kept as a different (random) token")
    return out


def _internal_api(node: NodeImport, app: NodeImport, notes: list[str]) -> str | None:
    """The spec's internal_api_url: None = the app (default), "" = unset."""
    url = node.internal_api_url
    if url is None:
        notes.append(f"{node.name}: gitlab_rails['internal_api_url'] is not set (git push "
                     "fails without it); kept unset")
        return ""
    lab_url = f"http://{app.name}"
    if url.rstrip("/") == lab_url:
        return None
    host = urlsplit(url).hostname or ""
    app_host = urlsplit(app.external_url or "").hostname or ""
    if host and host in (app_host, app.name):
        notes.append(f"{node.name}: internal_api_url {url} points at the app; the lab uses "
                     f"{lab_url}")
        return None
    notes.append(f"{node.name}: internal_api_url {url} does not point at the app node; kept "
                 "as is (edit it if it reaches the app in the customer's network)")
    return url


def source_kind(path: Path) -> str | None:
    """``toml`` (Gitaly's config.toml), ``gitlab.yml``, ``shell`` (gitlab-shell's
    config.yml) or None (a gitlab.rb), by the file's name."""
    if path.suffix == ".toml":
        return "toml"
    if path.suffix in (".yml", ".yaml"):
        return "shell" if path.stem == "config" else "gitlab.yml"
    return None


def read_sources(files: Sequence[tuple[str, Path]]) -> dict[str, SourceFacts]:
    """Node -> what its source-installation files say (a config.toml with the gitlab-shell
    config.yml of the same node, or a gitlab.yml)."""
    toml: dict[str, SourceGitaly] = {}
    shell: dict[str, ShellConfig] = {}
    out: dict[str, SourceFacts] = {}
    for node, path in files:
        kind = source_kind(path)
        if kind == "toml":
            toml[node] = read_config_toml(path)
        elif kind == "shell":
            shell[node] = read_shell_config_yml(path)
        elif kind == "gitlab.yml":
            out[node] = read_gitlab_yml(path)
    for node, cfg in shell.items():
        if node not in toml:
            raise SpecError(f"gitlab-shell's config.yml for node {node!r} comes with that node's "
                            f"Gitaly config.toml (--node {node}=config.toml)", source=cfg.file)
    for node, gitaly in toml.items():
        out[node] = (gitaly, shell[node]) if node in shell else gitaly
    return out


def import_files(files: Sequence[tuple[str, Path]], *, version: str | None = None,
                 name: str = DEFAULT_NAME, ruby: str = "ruby") -> ImportResult:
    sources = read_sources(files)
    rb_files = [(node, path) for node, path in files if source_kind(path) is None]
    read = [(node, path, read_rb(path, ruby=ruby)) for node, path in rb_files]
    inputs = [(node, str(path), rb.settings) for node, path, rb in read]
    inputs += [(node, _source_file(facts), {}) for node, facts in sources.items()]
    return import_settings(inputs, version=version, name=name,
                           skipped={node: rb.skipped for node, _, rb in read},
                           sources=sources)


def _source_file(facts: SourceFacts) -> str:
    if isinstance(facts, tuple):
        return f"{facts[0].file} + {facts[1].file}"
    return facts.file


def check_importable(result: ImportResult) -> None:
    """Raise if the spec would not load, so `lab import` never writes a broken file."""
    from lab.spec.labspec import build_lab
    from lab.spec.yamlfile import Origins

    try:
        lab = build_lab(result.spec, Origins())
    except SpecError as exc:
        raise BadInput(f"the imported spec does not load: {exc}") from None
    omnibus_dialect.dialect_for(lab.version)  # any supported version has a dialect
