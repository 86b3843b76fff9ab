"""`lab import`: a customer's gitlab.rb files (one per node) -> a lab spec.

Each file is evaluated as Ruby by the sim's own evaluator (``evaluate.rb``), so
import reads a file exactly as a sim node would, and a syntax error is reported
with its file and line. The settings are then mapped onto the spec's words:
roles, storages, TLS, tokens, ``internal_api_url`` and a version whose dialect
matches the keys used. Whatever has no place in a spec is returned as a note
(printed, and written as comments into the YAML): nothing is dropped silently.

Customer secret values are never copied into the spec: only whether the Gitaly
tokens *match* is kept, with fresh random tokens standing in for different ones.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from lab.errors import LabError, SpecError
from lab.model import GITALY_PORT, GITALY_TLS_PORT, default_storage_path
from lab.versions import DEFAULT_VERSION, Version, dialect_for, parse_supported

EVALUATOR = Path("sim/rootfs/opt/gitlab/embedded/sim/evaluate.rb")  # under images/
DEFAULT_NAME = "imported"
OMNIBUS_CONFIG_ENV = "GITLAB_OMNIBUS_CONFIG"

# Versions import picks from: the newest one inside the range the keys allow.
# 17.7.7 stands for "git_data_dirs and roles(['gitaly_role']) both present".
CANDIDATES = ("13.12.15", "15.9.8", "15.11.13", "16.11.10", "17.7.7", DEFAULT_VERSION)

# How support tickets usually spell a value someone removed before sending the file.
REDACTED_RE = re.compile(
    r"^\s*[<\[({]?\s*(redacted|filtered|removed|hidden|masked|secret|token|x{3,}|\*{3,}|\.{3})"
    r"\s*[>\])}]?\s*$", re.IGNORECASE)
SECRET_KEY_RE = re.compile(r"(token|secret|password|passwd|key_base|private_key)", re.IGNORECASE)

# Services a Gitaly-only node turns off; their `enable = false` is role evidence, not a setting.
_ROLE_SWITCHES = ("postgresql", "redis", "nginx", "puma", "unicorn", "sidekiq", "gitlab_workhorse",
                  "prometheus", "alertmanager", "gitlab_exporter", "gitlab_monitor", "gitlab_kas",
                  "node_exporter", "redis_exporter", "postgres_exporter", "pgbouncer_exporter",
                  "grafana", "gitlab_pages", "registry", "mattermost", "letsencrypt")
_LEGACY_GITALY_KEYS = ("listen_addr", "tls_listen_addr", "auth_token", "certificate_path",
                       "key_path", "storage")
_ADDR_RE = re.compile(r"^(tcp|tls|unix)://([^:/]+|\[[^\]]+\])(?::(\d+))?/?$")


# --- evaluating gitlab.rb ------------------------------------------------------

def evaluator_path() -> Path:
    from lab.engine.images import images_dir

    return images_dir() / EVALUATOR


_WHERE_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):\s*(?P<msg>.*)$")


def evaluate_rb(path: Path, *, ruby: str = "ruby", omnibus_config: str = "") -> dict[str, Any]:
    """The settings of one gitlab.rb as JSON data; SpecError naming file and line if it fails.

    ``omnibus_config`` is evaluated first, as Omnibus does with GITLAB_OMNIBUS_CONFIG.
    """
    from lab.engine.run import run

    if not path.is_file():
        raise SpecError("no such file", source=str(path))
    # GITLAB_OMNIBUS_CONFIG in our own environment must not leak into the customer's file.
    env = {k: v for k, v in os.environ.items() if k != OMNIBUS_CONFIG_ENV}
    if omnibus_config:
        env[OMNIBUS_CONFIG_ENV] = omnibus_config
    result = run([ruby, str(evaluator_path()), str(path)], check=False, env=env, timeout=60,
                 hint="import evaluates gitlab.rb with Ruby; install it (apt-get install ruby)")
    if result.returncode != 0:
        raise _ruby_error(path, result.stderr or result.stdout)
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise SpecError("evaluating it gave no settings", source=str(path)) from None
    if not isinstance(data, dict):
        raise SpecError("evaluating it gave no settings", source=str(path))
    return data


def _ruby_error(path: Path, output: str) -> SpecError:
    lines = [ln for ln in output.strip().splitlines() if not ln.startswith("gitlab-testlab-sim:")]
    for i, ln in enumerate(lines):
        m = _WHERE_RE.match(ln)
        if m and (m["file"].endswith(path.name) or m["file"] == OMNIBUS_CONFIG_ENV):
            detail = "\n".join([m["msg"], *lines[i + 1:]]).strip()
            source = str(path) if m["file"] != OMNIBUS_CONFIG_ENV else OMNIBUS_CONFIG_ENV
            return SpecError(f"not valid Ruby: {detail}", source=source, line=int(m["line"]))
    return SpecError(f"not valid Ruby: {' '.join(lines).strip() or 'ruby failed'}",
                     source=str(path))


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
    if SECRET_KEY_RE.search(path[-1]) and not is_redacted(value):
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
    internal_api_url: str | None = None
    external_url: str | None = None


@dataclass
class Evidence:
    """What the keys used say about the GitLab version (inclusive bounds)."""

    low: Version = field(default_factory=lambda: Version.parse("13.12.0"))
    high: Version = field(default_factory=lambda: Version(99, 0, 0))
    prefer_below: Version | None = None  # a soft bound: true if the range allows it
    reasons: list[str] = field(default_factory=list)

    def at_least(self, version: str, why: str) -> None:
        self.low = max(self.low, Version.parse(version))
        self.reasons.append(f"{why} => {version}+")

    def at_most(self, version: str, why: str) -> None:
        self.high = min(self.high, Version.parse(version))
        self.reasons.append(f"{why} => <= {version}")


def _enabled(s: Settings, service: str) -> bool | None:
    value = s.get(service, "enable")
    return value if isinstance(value, bool) else None


def _classify(node: NodeImport, ev: Evidence, notes: list[str]) -> None:
    s = node.settings
    roles_raw = s.get("roles")
    roles = [roles_raw] if isinstance(roles_raw, str) else [str(r) for r in roles_raw or []]
    if "gitaly_role" in roles:
        ev.at_least("17.6.0", f"{node.name}: roles(['gitaly_role'])")
    other_roles = [r for r in roles if r not in ("gitaly_role", "application_role")]
    if other_roles:
        notes.append(f"{node.name}: roles {other_roles} are not reproduced (the lab has app and "
                     "gitaly nodes only)")
    for svc in _ROLE_SWITCHES:
        s.get(svc, "enable")
    if s.get("unicorn", "enable") is not None:
        ev.at_most("13.12.15", f"{node.name}: unicorn['enable']")
    gitaly_on = _enabled(s, "gitaly") is not False
    web = _enabled(s, "puma")
    node.app = web is not False and (not roles or "application_role" in roles or web is True)
    # A node whose only job is Gitaly, even if it forgot to switch the web part off.
    node.gitaly = gitaly_on
    if node.gitaly and not node.app:
        # The lab sets this on every Gitaly-only node: no database there.
        s.get("gitlab_rails", "auto_migrate")
    if not node.app and not node.gitaly:
        raise SpecError("this node runs neither the GitLab application nor Gitaly "
                        "(puma['enable'] and gitaly['enable'] are both false)", source=node.source)


def _gitaly_side(node: NodeImport, ev: Evidence, notes: list[str]) -> None:
    s = node.settings
    conf = s.section("gitaly", "configuration")
    legacy = [k for k in _LEGACY_GITALY_KEYS if s.get("gitaly", k) is not None]
    if conf:
        ev.at_least("15.10.0", f"{node.name}: gitaly['configuration']")
    if legacy:
        ev.at_most("15.9.8", f"{node.name}: gitaly['{legacy[0]}'] (legacy key)")

    def pick(conf_path: tuple[str, ...], legacy_key: str) -> str:
        value = s.get("gitaly", "configuration", *conf_path) if conf else None
        if value is None:
            value = s.get("gitaly", legacy_key)
        return "" if value is None else str(value)

    listen = pick(("listen_addr",), "listen_addr")
    tls_listen = pick(("tls_listen_addr",), "tls_listen_addr")
    pick(("tls", "certificate_path"), "certificate_path")
    pick(("tls", "key_path"), "key_path")
    token = s.get("gitaly", "configuration", "auth", "token") if conf else None
    if token is None:
        token = s.get("gitaly", "auth_token")
    node.token = None if token is None else str(token)
    node.tls = bool(tls_listen)
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
    storage_list = s.get("gitaly", "configuration", "storage") if conf else None
    if isinstance(storage_list, list):
        for entry in storage_list:
            if isinstance(entry, dict) and entry.get("name"):
                node.storages[str(entry["name"])] = str(entry.get("path") or "")
                extra = sorted(set(entry) - {"name", "path"})
                if extra:
                    notes.append(f"{node.name}: storage {entry['name']!r} settings {extra} "
                                 "are not reproduced")
    dirs = s.section("git_data_dirs")
    for name, entry in dirs.items():
        if isinstance(entry, dict) and entry.get("path") and not entry.get("gitaly_address"):
            node.storages.setdefault(name, str(entry["path"]))
            s.get("git_data_dirs", name, "path")
    if node.gitaly and not node.storages:
        node.storages["default"] = default_storage_path("default")
        notes.append(f"{node.name}: no storages configured: the Omnibus default storage "
                     "'default' is assumed")
    if node.gitaly and not node.app:
        url = s.get("gitlab_rails", "internal_api_url")
        node.internal_api_url = None if url is None else str(url)


def _app_side(node: NodeImport, ev: Evidence, notes: list[str]) -> None:
    s = node.settings
    url = s.get("external_url")
    node.external_url = None if url is None else str(url)
    token = s.get("gitlab_rails", "gitaly_token")
    node.token = None if token is None else str(token)
    repo = s.section("gitlab_rails", "repositories_storages")
    dirs = s.section("git_data_dirs")
    key: tuple[str, ...]
    if repo:
        ev.at_least("17.8.0", f"{node.name}: gitlab_rails['repositories_storages']")
        source, key = repo, ("gitlab_rails", "repositories_storages")
    else:
        source, key = dirs, ("git_data_dirs",)
        if any(isinstance(e, dict) and e.get("gitaly_address") for e in dirs.values()):
            ev.at_most("17.7.7", f"{node.name}: git_data_dirs with gitaly_address")
    per_storage_tokens = set()
    for name, entry in source.items():
        if not isinstance(entry, dict):
            continue
        address = entry.get("gitaly_address")
        if address:
            node.app_storages[name] = str(address)
            s.get(*key, name, "gitaly_address")
            if entry.get("gitaly_token") is not None:
                per_storage_tokens.add(str(entry["gitaly_token"]))
                s.get(*key, name, "gitaly_token")
    if per_storage_tokens:
        if node.token is None and len(per_storage_tokens) == 1:
            node.token = per_storage_tokens.pop()
        else:
            notes.append(f"{node.name}: per-storage gitaly_token values are not reproduced; the "
                         "lab's app uses one token for every storage")


# --- putting the lab together -----------------------------------------------------

@dataclass(frozen=True)
class ImportResult:
    spec: dict[str, Any]
    version_reason: str
    unmapped: tuple[str, ...]  # settings with no place in a spec
    notes: tuple[str, ...]  # how something was mapped, worth a look
    sources: tuple[tuple[str, str], ...]  # (node, file)

    def to_yaml(self) -> str:
        head = ["# Lab spec imported by gitlab-testlab (lab import) from:"]
        head += [f"#   {node}: {src}" for node, src in self.sources]
        head.append(f"# Version {self.spec['version']}: {self.version_reason}")
        if self.unmapped:
            head.append("# NOT reproduced by this spec (check these by hand):")
            head += [f"#   - {line}" for line in self.unmapped]
        if self.notes:
            head.append("# Notes:")
            head += [f"#   - {line}" for line in self.notes]
        head.append("# Start it: lab up -f THIS_FILE")
        body = yaml.safe_dump(self.spec, sort_keys=False, default_flow_style=False, width=1000)
        return "\n".join(head) + "\n" + body


def _choose_version(ev: Evidence, asked: str | None, notes: list[str]) -> tuple[str, str]:
    why = "; ".join(ev.reasons) or "no version-specific keys"
    low, high = ev.low, ev.high
    if asked is not None:
        version = parse_supported(asked, source="--version")
        if not low <= version <= high:
            notes.append(f"--version {version} is outside what the files' keys suggest ({why}); "
                         f"the lab renders {version}'s keys")
        return str(version), f"given with --version ({why})"
    if low > high:
        notes.append(f"the files mix keys of different versions ({why}); picked the oldest "
                     "version the newest keys need")
        high = Version(99, 0, 0)
    fits = [v for v in map(Version.parse, CANDIDATES) if low <= v <= high]
    if ev.prefer_below is not None:
        soft = [v for v in fits if v < ev.prefer_below]
        fits = soft or fits
    if not fits:
        return str(low), why
    return str(fits[-1]), why


def _node_name(path: Path, by_folder: bool = False) -> str:
    """gitaly1.rb, gitlab-gitaly1.rb -> gitaly1; ``by_folder``: gitaly1/gitlab.rb -> gitaly1."""
    stem = path.name.removesuffix(".rb")
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
        if name in seen:
            raise SpecError(f"two files map to node {name!r} ({seen[name]} and {path}); name "
                            "them with --node NAME=FILE", source=str(path))
        seen[name] = path
    if not out:
        raise SpecError("give at least one gitlab.rb file")
    return out


TokenSource = Callable[[int], str]


def import_settings(inputs: Sequence[tuple[str, str, Mapping[str, Any]]], *,
                    version: str | None = None, name: str = DEFAULT_NAME,
                    token_hex: TokenSource = _secrets.token_hex) -> ImportResult:
    """Map evaluated settings, one (node name, source file, settings) per node, to a spec."""
    notes: list[str] = []
    ev = Evidence()
    nodes = [NodeImport(n, src, Settings(data)) for n, src, data in inputs]
    for node in nodes:
        _classify(node, ev, notes)
        _gitaly_side(node, ev, notes)
        if node.app:
            _app_side(node, ev, notes)
    apps = [n for n in nodes if n.app]
    if len(apps) > 1:
        raise SpecError("a lab has exactly one app node, but these files all run the "
                        f"application: {', '.join(n.source for n in apps)}")
    gitaly_only = [n for n in nodes if n.gitaly and not n.app]
    if gitaly_only and not any(n.settings.get("roles") for n in gitaly_only):
        # Without roles(['gitaly_role']) the files look older than 17.6, if that is possible.
        ev.prefer_below = Version.parse("17.6.0")
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
    app_url = f"http://{app.name}"
    if app.external_url and app.external_url.rstrip("/") != app_url:
        notes.append(f"{app.name}: external_url {app.external_url} becomes {app_url} in the lab")
    for node in nodes:
        entry: dict[str, Any] = {"roles": (["app"] if node.app else []) +
                                 (["gitaly"] if node.gitaly else [])}
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
        spec_nodes[node.name] = entry
    if not any("default" in n.storages for n in nodes if n.gitaly):
        notes.append("no storage named 'default' in the files; GitLab needs one, so the lab "
                     "spec will not load until one is added")
    chosen, why = _choose_version(ev, version, notes)
    unmapped: list[str] = []
    for node in nodes:
        unmapped += [f"{node.name}: {ruby_key(path)} = {shown(path, value)}"
                     for path, value in node.settings.leftovers()]
    notes.append("gitlab-secrets.json is not read: all nodes share the lab's file; set "
                 "`secrets: own` on a node to reproduce a secrets mismatch")
    spec = {"name": name, "version": chosen, "nodes": spec_nodes}
    return ImportResult(spec=spec, version_reason=why, unmapped=tuple(unmapped),
                        notes=tuple(notes), sources=tuple((n.name, n.source) for n in nodes))


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
        node = by_storage.get(storage)
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
            node.storages.setdefault(storage, default_storage_path(storage))
            by_storage[storage] = node
        if host != node.name:
            notes.append(f"{app.name}: storage {storage!r} is dialled at {address}; the lab "
                         f"dials {node.name}")
        if (scheme == "tls") != node.tls:
            notes.append(f"{app.name}: storage {storage!r} uses {scheme}:// but {node.name} "
                         f"{'listens with' if node.tls else 'has no'} TLS; the lab follows "
                         f"{node.name}")
        if port is not None and port != (GITALY_TLS_PORT if node.tls else GITALY_PORT):
            notes.append(f"{app.name}: storage {storage!r} port {port} becomes the lab's port")
    for node in nodes:
        if node.gitaly and node is not app and app.app_storages:
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
        if node is app or not node.gitaly:
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


def import_files(files: Sequence[tuple[str, Path]], *, version: str | None = None,
                 name: str = DEFAULT_NAME, ruby: str = "ruby") -> ImportResult:
    inputs = [(node, str(path), evaluate_rb(path, ruby=ruby)) for node, path in files]
    return import_settings(inputs, version=version, name=name)


def check_importable(result: ImportResult) -> None:
    """Raise if the spec would not load, so `lab import` never writes a broken file."""
    from lab.spec import Origins, build_lab

    try:
        lab = build_lab(result.spec, Origins())
    except SpecError as exc:
        raise LabError(f"the imported spec does not load: {exc}") from None
    dialect_for(lab.version)  # any supported version has a dialect
