"""Lab specs: YAML (or a built-in topology name) + overrides -> a validated ``Lab``.

Every value remembers where it came from (file and line, the topology, or a
``--set``), so an error can name the file, the line and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lab.errors import ReleaseTooOld, SpecError
from lab.model.topology import (
    Edition,
    Engine,
    Flavor,
    Install,
    Lab,
    Node,
    Role,
    SecretsPolicy,
    Storage,
    SwarmOptions,
    default_storage_path,
)
from lab.omnibus.dialect import OMNIBUS_DIRS, OMNIBUS_ROOTS
from lab.omnibus.praefect import cluster_unsupported, praefect_dialect
from lab.omnibus.secret_keys import ends_in_secret_word
from lab.spec.topologies import TOPOLOGIES, topology
from lab.spec.versions import DEFAULT_VERSION, parse_supported
from lab.spec.yamlfile import (
    Origins,
    Path_,
    apply_set,
    error_at,
    load_yaml,
    merge,
    parse_set,
    read_user_file,
    record_all,
    set_source,
)

T = TypeVar("T")

@dataclass(frozen=True)
class Field:
    """A key's value type: the loader checks it (``mapping``, ``check_fields``) and the
    JSON Schema is made from it (``lab.scenario.schema``), so both say the same.

    ``kind`` None: a choice or a value of several shapes, checked where it is read.
    ``nullable``: an empty value (``tls:``) means "not set"."""

    kind: type | tuple[type, ...] | None
    what: str = ""
    nullable: bool = False


TRUE_FALSE = "true or false"
LAB_FIELDS: dict[str, Field] = {
    "name": Field(str, "a lab name"),
    "topology": Field(None, nullable=True),
    "version": Field(None, nullable=True),  # its own message: quote it (see build_lab)
    "edition": Field(None),
    "flavor": Field(None),
    "image": Field(str, "an image reference", True),
    "tls": Field(bool, TRUE_FALSE),
    "gitaly_token": Field(str, "a token string", True),
    "engine": Field(None),
    "swarm": Field(dict, "a mapping", True),
    "nodes": Field(dict, "a mapping", True),
}
NODE_FIELDS: dict[str, Field] = {
    "roles": Field(list, "a list of roles"),
    "storages": Field(list, "a list of storage names", True),
    "secrets": Field(None),
    "tls": Field(bool, TRUE_FALSE, True),
    "tls_san": Field(list, "a list of DNS names", True),
    "trust_ca": Field(bool, TRUE_FALSE),
    "gitaly_token": Field(str, "a token string", True),
    "internal_api_url": Field(str, 'a URL (or "" to leave it unset)', True),
    "publish": Field(dict, "a mapping", True),
    "omnibus_config": Field(str, "Ruby text"),
    "gitaly_nodes": Field(list, "a list of gitaly node names", True),
    "replication_factor": Field(int, "a number of replicas", True),
    "place": Field(str, "a swarm node's host name or LABEL=VALUE", True),
    "install": Field(None),
}
SWARM_FIELDS: dict[str, Field] = {"publish": Field(bool, TRUE_FALSE),
                                  "encrypt": Field(bool, TRUE_FALSE)}
STORAGE_FIELDS: dict[str, Field] = {"name": Field(str, "a storage name"),
                                    "path": Field(str, "an absolute path", True)}
LAB_KEYS = tuple(LAB_FIELDS)
# Where a swarm lab's node runs: a swarm node's host name, or LABEL=VALUE of a node label.
PLACE_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,127}=)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
PORT_NAMES = {Role.APP: "http", Role.GITALY: "gitaly", Role.PRAEFECT: "praefect"}
# A node is one of: app (optionally with gitaly: all-in-one), gitaly, praefect, postgres.
ALONE_ROLES = (Role.PRAEFECT, Role.POSTGRES)
# \Z, not $: $ also matches before a final line break, and "gitaly1\n" is no name.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}\Z")
NODE_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}\Z")
STORAGE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
# An image reference as Docker's reference grammar defines it (distribution/reference,
# reference.go): [domain[:port]/]path-component[/path-component]*[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
IMAGE_RE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:"
    r"[0-9a-fA-F]{32,})?\Z")
MAX_IMAGE_NAME = 255  # the grammar's own cap on the name part
# A certificate name: DNS labels (RFC 1123), optionally a leading wildcard label.
DNS_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
# Storage paths live inside the node's container; these hold the system and Omnibus
# itself, so git data there would overwrite them.
# /var/run and /var/lock are links into /run in Debian and Ubuntu (the images' bases): the
# same folder under another name.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
               "/proc", "/root", "/run", "/sbin", "/sys", "/usr", "/var/lock", "/var/run",
               *OMNIBUS_DIRS)


def _unknown_topology(name: object, origins: Origins, path: Path_) -> SpecError:
    known = ", ".join(sorted(TOPOLOGIES))
    return error_at(origins, path, f"unknown topology {name!r}; known topologies: {known}")


# --- validation --------------------------------------------------------------

def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], path: Path_,
                origins: Origins) -> None:
    for k in data:
        if k not in allowed:
            raise error_at(origins, (*path, k),
                           f"unknown key {k!r}; valid keys here: {', '.join(allowed)}")


def _typed(value: Any, kind: type[T] | tuple[type, ...], what: str, path: Path_,
           origins: Origins) -> T:
    # bool is an int in Python; a port of `true` is a mistake, not 1.
    # A secret's value is not repeated (a --set on the command line, a CI log).
    shown = "(value not shown: a secret)" if path and ends_in_secret_word(path[-1]) else repr(value)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise error_at(origins, path, f"expected {what}, got {shown}")
    if not isinstance(value, kinds):
        raise error_at(origins, path, f"expected {what}, got {type(value).__name__} {shown}")
    return value  # type: ignore[return-value]


def _choice(value: Any, choices: Iterable[str], path: Path_, origins: Origins) -> str:
    options = list(choices)
    if value not in options:
        raise error_at(origins, path, f"{value!r} is not one of: {', '.join(options)}")
    return str(value)


def mapping(value: Any, path: Path_, origins: Origins,
            allowed: Sequence[str] | Mapping[str, Field] | None = None) -> dict[str, Any]:
    """``value`` as a mapping (None: empty), with only ``allowed`` keys if given, and
    each value of the type its ``Field`` says."""
    if value is None:
        return {}
    out = dict(_typed(value, dict, "a mapping", path, origins))
    if allowed is not None:
        _check_keys(out, tuple(allowed), path, origins)
    if isinstance(allowed, Mapping):
        check_fields(out, allowed, path, origins)
    return out


def check_fields(data: Mapping[str, Any], fields: Mapping[str, Field], path: Path_,
                 origins: Origins) -> None:
    """Each set value of the type its field says (an empty value is left to the reader:
    "not set" for some keys, an error that says more for others)."""
    for key, value in data.items():
        field = fields.get(key)
        if field is not None and field.kind is not None and value is not None:
            _typed(value, field.kind, field.what, (*path, key), origins)


def _storages(value: Any, path: Path_, origins: Origins) -> tuple[Storage, ...]:
    if value is None:
        return ()
    items = _typed(value, list, "a list of storage names", path, origins)
    out: list[Storage] = []
    for i, item in enumerate(items):
        ipath = (*path, str(i))
        if isinstance(item, str):
            name, spath = item, None
        else:
            item = mapping(item, ipath, origins, STORAGE_FIELDS)
            if "name" not in item:
                raise error_at(origins, ipath, "a storage needs a name")
            name = _typed(item["name"], str, "a storage name", (*ipath, "name"), origins)
            spath = item.get("path")
            if spath is not None:
                _typed(spath, str, "an absolute path", (*ipath, "path"), origins)
                check_storage_path(spath, (*ipath, "path"), origins)
                spath = spath.rstrip("/")
                if spath.endswith("/repositories"):
                    # Omnibus appends /repositories itself; accept either spelling.
                    spath = spath[: -len("/repositories")]
        if not STORAGE_RE.match(name):
            raise error_at(origins, ipath,
                           f"invalid storage name {name!r} (letters, digits, - and _)")
        out.append(Storage(name=name, path=spath or default_storage_path(name)))
    return tuple(out)


def check_storage_path(spath: str, path: Path_, origins: Origins) -> None:
    """A storage path: absolute, no ``.``/``..`` parts, not in a system directory."""
    hint = "; use a folder of its own such as /var/opt/gitlab/git-data-NAME"
    if not spath.startswith("/"):
        raise error_at(origins, path, f"expected an absolute path, got {spath!r}{hint}")
    parts = spath.split("/")
    if any(p in (".", "..") for p in parts) or "\0" in spath or any(c.isspace() for c in spath):
        raise error_at(origins, path, f"{spath!r} may not contain '.', '..' or spaces{hint}")
    clean = "/" + "/".join(p for p in parts if p)
    if clean.removesuffix("/repositories") in ("/", "/var", *OMNIBUS_ROOTS):
        raise error_at(origins, path, f"{spath!r} is a top-level folder, not a storage{hint}")
    for d in SYSTEM_DIRS:
        if clean == d or clean.startswith(d + "/"):
            raise error_at(origins, path, f"{spath!r} is inside the system directory {d}{hint}")


def check_image(ref: str, path: Path_, origins: Origins) -> str:
    name = ref.split("@", 1)[0]
    if not IMAGE_RE.match(ref) or len(name) > MAX_IMAGE_NAME:
        raise error_at(origins, path, f"{ref!r} is not a Docker image reference "
                       "(e.g. registry.example:5000/group/image:1.2.3, lower-case name, "
                       "no spaces or shell characters)")
    return ref


def check_dns_name(name: str, path: Path_, origins: Origins) -> str:
    labels = name.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]  # a wildcard is a certificate name too
    if len(name) > 253 or not labels or not all(DNS_LABEL_RE.match(x) for x in labels):
        raise error_at(origins, path, f"{name!r} is not a DNS name (letters, digits and - in "
                       "dot-separated labels, e.g. gitaly1 or gitaly1.example.com)")
    return name


def _opt_str(value: Any, what: str, path: Path_, origins: Origins) -> str | None:
    if value is None:
        return None
    return _typed(value, str, what, path, origins)


def _node(name: str, data: Any, lab_tls: bool, path: Path_, origins: Origins) -> Node:
    if not NODE_RE.match(name):
        raise error_at(origins, path, f"invalid node name {name!r}: it becomes a host name "
                       "(lower-case letters, digits and -, starting with a letter)")
    data = mapping(data, path, origins, NODE_FIELDS)
    if not data.get("roles"):
        raise error_at(origins, (*path, "roles"), "every node needs roles, e.g. [app] or [gitaly]")
    role_values = _typed(data["roles"], list, "a list of roles", (*path, "roles"), origins)
    roles: list[Role] = []
    for i, r in enumerate(role_values):
        rpath = (*path, "roles", str(i))
        role = Role(_choice(r, [x.value for x in Role], rpath, origins))
        roles.append(role)
    alone = [r for r in roles if r in ALONE_ROLES]
    if alone and len(set(roles)) > 1:
        raise error_at(origins, (*path, "roles"), f"a {alone[0].value} node has no other role "
                       "(GitLab's docs: Praefect and its database on nodes of their own)")
    storages = _storages(data.get("storages"), (*path, "storages"), origins)
    serves = Role.GITALY in roles or Role.PRAEFECT in roles
    if serves and not storages:
        what = "a praefect node needs its virtual storage, e.g. [default]" \
            if Role.PRAEFECT in roles else "a gitaly node needs at least one storage"
        raise error_at(origins, (*path, "storages"), what)
    if not serves and storages:
        raise error_at(origins, (*path, "storages"), "only gitaly and praefect nodes have "
                       "storages")
    if Role.PRAEFECT in roles and len(storages) != 1:
        raise error_at(origins, (*path, "storages"), "a praefect node serves one virtual "
                       "storage here (its name is the app's storage name)")
    backends: tuple[str, ...] = ()
    factor: int | None = None
    for key in ("gitaly_nodes", "replication_factor"):
        if key in data and Role.PRAEFECT not in roles:
            raise error_at(origins, (*path, key), "only praefect nodes have this key")
    if Role.PRAEFECT in roles:
        raw = data.get("gitaly_nodes")
        items = _typed(raw, list, "a list of gitaly node names", (*path, "gitaly_nodes"),
                       origins) if raw is not None else []
        if not items:
            raise error_at(origins, (*path, "gitaly_nodes"), "a praefect node needs the "
                           "gitaly nodes behind it, e.g. [gitaly1, gitaly2, gitaly3]")
        backends = tuple(_typed(b, str, "a node name", (*path, "gitaly_nodes", str(i)), origins)
                         for i, b in enumerate(items))
        if len(set(backends)) != len(backends):
            raise error_at(origins, (*path, "gitaly_nodes"), "a gitaly node is listed twice")
        if data.get("replication_factor") is not None:
            factor = _typed(data["replication_factor"], int, "a number of replicas",
                            (*path, "replication_factor"), origins)
            if not 1 <= factor <= len(backends):
                raise error_at(origins, (*path, "replication_factor"),
                               f"{factor} is not between 1 and the {len(backends)} gitaly "
                               "nodes behind this praefect")
    install = Install(_choice(data.get("install", "omnibus"), [i.value for i in Install],
                              (*path, "install"), origins))
    if install is Install.SOURCE and any(r in ALONE_ROLES for r in roles):
        raise error_at(origins, (*path, "install"), "only app and gitaly nodes can be "
                       "installed from source here (Praefect and its database run on Omnibus)")
    secrets = SecretsPolicy(_choice(data.get("secrets", "shared"),
                                    [p.value for p in SecretsPolicy], (*path, "secrets"), origins))
    tls_value = data.get("tls")
    tls = lab_tls if tls_value is None else _typed(tls_value, bool, "true or false",
                                                   (*path, "tls"), origins)
    tls = tls and (Role.GITALY in roles or Role.PRAEFECT in roles)
    san = data.get("tls_san")
    tls_san: tuple[str, ...] = ()
    if san is not None:
        items = _typed(san, list, "a list of DNS names", (*path, "tls_san"), origins)
        tls_san = tuple(check_dns_name(_typed(s, str, "a DNS name", (*path, "tls_san", str(i)),
                                              origins), (*path, "tls_san", str(i)), origins)
                        for i, s in enumerate(items))
    publish_raw = mapping(data.get("publish"), (*path, "publish"), origins)
    allowed_ports = [PORT_NAMES[r] for r in roles if r in PORT_NAMES]
    publish: list[tuple[str, int]] = []
    for pname, port in publish_raw.items():
        ppath = (*path, "publish", pname)
        _choice(pname, allowed_ports, ppath, origins)
        _typed(port, int, "a port number (0 = any free port)", ppath, origins)
        if not 0 <= port <= 65535:
            raise error_at(origins, ppath, f"port {port} is out of range 0-65535")
        publish.append((pname, port))
    return Node(
        name=name,
        roles=tuple(roles),
        storages=storages,
        secrets=secrets,
        tls=tls,
        tls_san=tls_san,
        trust_ca=_typed(data.get("trust_ca", True), bool, "true or false",
                        (*path, "trust_ca"), origins),
        gitaly_token=_opt_str(data.get("gitaly_token"), "a token string",
                              (*path, "gitaly_token"), origins),
        internal_api_url=_opt_str(data.get("internal_api_url"), "a URL (or \"\" to leave it unset)",
                                  (*path, "internal_api_url"), origins),
        publish=tuple(publish),
        omnibus_config=_typed(data.get("omnibus_config", ""), str, "Ruby text",
                              (*path, "omnibus_config"), origins),
        backends=backends,
        replication_factor=factor,
        place=_place(data.get("place"), (*path, "place"), origins),
        install=install,
    )


def _place(value: Any, path: Path_, origins: Origins) -> str | None:
    place = _opt_str(value, "a swarm node's host name or LABEL=VALUE", path, origins)
    if place is not None and not PLACE_RE.match(place):
        raise error_at(origins, path, f"{place!r} is neither a swarm node's host name nor "
                       "LABEL=VALUE of a node label (letters, digits, '.', '-', '_'), e.g. "
                       "worker2 or gitaly=yes")
    return place


def _swarm(data: Mapping[str, Any], engine: Engine, nodes: Sequence[Node],
           origins: Origins) -> SwarmOptions:
    raw = mapping(data.get("swarm"), ("swarm",), origins, SWARM_FIELDS)
    opts = SwarmOptions(**{k: _typed(v, bool, "true or false", ("swarm", k), origins)
                           for k, v in raw.items()})
    if engine is not Engine.SWARM:
        # Nothing of these would happen on Compose: say so rather than ignore them.
        if opts != SwarmOptions():
            raise error_at(origins, ("swarm",), "swarm options need engine: swarm "
                           "(lab up --engine swarm)")
        for node in nodes:
            if node.place is not None:
                raise error_at(origins, ("nodes", node.name, "place"), "placing a node on a "
                               "machine needs engine: swarm (lab up --engine swarm)")
    return opts


def _check_cluster(nodes: tuple[Node, ...], version: Any, origins: Origins) -> None:
    """A Praefect's backends are Gitaly-only nodes of no other Praefect; its database
    is the lab's one postgres node; the release has a cluster Omnibus can run."""
    praefects = [n for n in nodes if n.is_praefect]
    postgres = [n for n in nodes if n.is_postgres]
    if not praefects:
        if postgres:
            raise error_at(origins, ("nodes", postgres[0].name, "roles"),
                           "a postgres node is Praefect's database: the lab needs a praefect "
                           "node too")
        return
    problem = cluster_unsupported(version)
    if problem is not None:
        found = error_at(origins, ("version",), problem)
        raise ReleaseTooOld(problem, source=found.source, line=found.line, key=found.key)
    if len(postgres) != 1:
        raise error_at(origins, ("nodes",), "a lab with Praefect needs exactly one postgres "
                       f"node for Praefect's database, found {len(postgres)}")
    by_name = {n.name: n for n in nodes}
    owner: dict[str, str] = {}
    for p in praefects:
        for i, b in enumerate(p.backends):
            bpath = ("nodes", p.name, "gitaly_nodes", str(i))
            node = by_name.get(b)
            if node is None or not node.gitaly_only:
                raise error_at(origins, bpath, f"{b!r} is not a gitaly node of this lab")
            if b in owner:
                raise error_at(origins, bpath, f"{b!r} is already behind {owner[b]}")
            owner[b] = p.name
        if p.replication_factor not in (None, len(p.backends)) and \
                not praefect_dialect(version).replication_factor:
            raise error_at(origins, ("nodes", p.name, "replication_factor"),
                           f"GitLab {version} replicates every repository to every Gitaly "
                           "node of a virtual storage (default_replication_factor came with "
                           "13.9); leave it unset or use --version 13.9.0 or newer")


def build_lab(data: Mapping[str, Any], origins: Origins, *, force_version: bool = False) -> Lab:
    _check_keys(data, LAB_KEYS, (), origins)
    topo = str(data.get("topology") or "")
    name = _typed(data.get("name", topo or "lab"), str, "a lab name", ("name",), origins)
    if not NAME_RE.match(name):
        raise error_at(origins, ("name",), f"invalid lab name {name!r} "
                       "(lower-case letters, digits and -, at most 40)")
    vsource, vline = origins.of(("version",))
    raw_version = data.get("version")
    if raw_version is not None and not isinstance(raw_version, str):
        # Unquoted, YAML reads 17.10 as the number 17.1 and 0 or false as no version at all.
        raise error_at(origins, ("version",), f"expected a GitLab version X.Y.Z, got "
                       f"{raw_version!r}; write it in quotes, e.g. version: \"{DEFAULT_VERSION}\"")
    check_fields(data, LAB_FIELDS, (), origins)
    version = parse_supported(DEFAULT_VERSION if raw_version is None else raw_version,
                              source=vsource, line=vline, force=force_version)
    edition = Edition(_choice(data.get("edition", "ce"), [e.value for e in Edition],
                              ("edition",), origins))
    flavor = Flavor(_choice(data.get("flavor", "sim"), [f.value for f in Flavor],
                            ("flavor",), origins))
    lab_tls = _typed(data.get("tls", False), bool, "true or false", ("tls",), origins)
    nodes_raw = mapping(data.get("nodes"), ("nodes",), origins)
    if not nodes_raw:
        raise error_at(origins, ("nodes",), "a lab needs nodes (or a topology: "
                       f"{', '.join(sorted(TOPOLOGIES))})")
    nodes = tuple(_node(str(n), d, lab_tls, ("nodes", str(n)), origins)
                  for n, d in nodes_raw.items())
    apps = [n for n in nodes if n.is_app]
    if len(apps) != 1:
        raise error_at(origins, ("nodes",), f"a lab needs exactly one app node, found {len(apps)}")
    _check_cluster(nodes, version, origins)
    behind = {b for n in nodes for b in n.backends}
    seen: dict[str, str] = {}
    for node in nodes:
        if node.name in behind:
            continue  # its storage names are Praefect's, not the app's
        for s in node.storages:
            if s.name in seen:
                raise error_at(origins, ("nodes", node.name, "storages"),
                               f"storage {s.name!r} is already served by {seen[s.name]}")
            seen[s.name] = node.name
    if "default" not in seen:
        raise error_at(origins, ("nodes",), "GitLab needs a storage named 'default'; "
                       f"storages here: {', '.join(seen) or 'none'}")
    image = _opt_str(data.get("image"), "an image reference", ("image",), origins)
    if image is not None:
        check_image(image, ("image",), origins)
    token = _opt_str(data.get("gitaly_token"), "a token string", ("gitaly_token",), origins)
    engine = Engine(_choice(data.get("engine", "compose"), [e.value for e in Engine],
                            ("engine",), origins))
    swarm = _swarm(data, engine, nodes, origins)
    return Lab(name=name, version=version, edition=edition, flavor=flavor, nodes=nodes,
               gitaly_token=token, image=image, topology=topo, engine=engine, swarm=swarm)


@dataclass(frozen=True)
class SpecRequest:
    """What a user asked for on the command line."""

    topology: str | None = None
    file: Path | None = None
    sets: tuple[str, ...] = ()
    version: str | None = None
    flavor: str | None = None
    name: str | None = None
    force_version: bool = False
    engine: str | None = None


def _value_at(data: Mapping[str, Any], path: Path_) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def resolve(req: SpecRequest) -> Lab:
    origins = Origins()
    data: dict[str, Any] = {}
    if req.file is not None:
        source = str(req.file)
        data = load_yaml(read_user_file(Path(req.file), "spec file"), source, origins)
    base_name = req.topology or data.get("topology")
    if base_name is not None:
        path: Path_ = ("topology",)
        if req.topology is not None:
            origins.record(path, "command line", None)
        if not isinstance(base_name, str) or base_name not in TOPOLOGIES:
            raise _unknown_topology(base_name, origins, path)
        base = topology(base_name)
        base_origins = Origins()
        record_all(base, (), f"topology {base_name!r}", None, base_origins)
        for place in list(origins.places):
            # Where the file replaces a mapping (``gitaly1: null``), what the topology had
            # below it is gone: errors there belong to the file's line.
            if not isinstance(_value_at(data, place), dict):
                base_origins.forget_below(place)
        base_origins.places.update(origins.places)
        origins = base_origins
        data = merge(base, data)
        data["topology"] = base_name
    elif req.file is None:
        raise SpecError("name a topology (" + ", ".join(sorted(TOPOLOGIES)) +
                        ") or a spec file with -f FILE")
    for key, value in (("version", req.version), ("flavor", req.flavor), ("name", req.name),
                       ("engine", req.engine)):
        if value is not None:
            data[key] = value
            origins.record((key,), f"--{key}", None)
    for assignment in req.sets:
        key, value = parse_set(assignment)
        data = apply_set(data, key, value, origins, source=set_source(assignment))
    return build_lab(data, origins, force_version=req.force_version)


def resolved_spec(lab: Lab) -> dict[str, Any]:
    """The lab as a plain spec (no secrets), for the manifest and `lab import`."""
    nodes: dict[str, Any] = {}
    for n in lab.nodes:
        entry: dict[str, Any] = {"roles": [r.value for r in n.roles]}
        if n.storages:
            entry["storages"] = [{"name": s.name, "path": s.path} for s in n.storages]
        entry["secrets"] = n.secrets.value
        if n.is_gitaly or n.is_praefect:
            entry["tls"] = n.tls
        if n.tls_san:
            entry["tls_san"] = list(n.tls_san)
        if not n.trust_ca:
            entry["trust_ca"] = False
        if n.gitaly_token is not None:
            entry["gitaly_token"] = "<set>"
        if n.internal_api_url is not None:
            entry["internal_api_url"] = n.internal_api_url
        if n.publish:
            entry["publish"] = dict(n.publish)
        if n.omnibus_config:
            entry["omnibus_config"] = n.omnibus_config
        if n.backends:
            entry["gitaly_nodes"] = list(n.backends)
        if n.replication_factor is not None:
            entry["replication_factor"] = n.replication_factor
        if n.place is not None:
            entry["place"] = n.place
        if n.from_source:
            entry["install"] = n.install.value
        nodes[n.name] = entry
    out: dict[str, Any] = {"name": lab.name}
    if lab.topology:
        out["topology"] = lab.topology
    out.update({"version": str(lab.version), "edition": lab.edition.value,
                "flavor": lab.flavor.value})
    if lab.image:
        out["image"] = lab.image
    if lab.engine is not Engine.COMPOSE:
        out["engine"] = lab.engine.value
    if lab.swarm != SwarmOptions():
        out["swarm"] = {"publish": lab.swarm.publish, "encrypt": lab.swarm.encrypt}
    out["nodes"] = nodes
    return out
