"""The validated, typed lab: frozen dataclasses with no side effects.

``lab.spec.labspec`` builds these from YAML; renderers and the engine only read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lab.omnibus import praefect
from lab.omnibus.dialect import Dialect, dialect_for
from lab.omnibus.praefect import PraefectDialect, praefect_dialect
from lab.omnibus.release import Version


class Role(StrEnum):
    APP = "app"
    GITALY = "gitaly"
    # Gitaly Cluster: Praefect in front of Gitaly nodes, and Praefect's own database.
    PRAEFECT = "praefect"
    POSTGRES = "postgres"


class Flavor(StrEnum):
    OMNIBUS = "omnibus"
    SIM = "sim"


class Engine(StrEnum):
    """What runs the lab: Docker Compose on one engine, or a stack on a Docker Swarm."""

    COMPOSE = "compose"
    SWARM = "swarm"


@dataclass(frozen=True)
class SwarmOptions:
    """How a lab runs on a swarm (``engine: swarm``); lab.lifecycle.swarm reads them."""

    publish: bool = False  # the spec's ports through Swarm's own publishing (every interface)
    encrypt: bool = False  # the lab's overlay network encrypted (IPsec between machines)


class Edition(StrEnum):
    CE = "ce"
    EE = "ee"


class Install(StrEnum):
    """How a node is installed: the Omnibus package (gitlab.rb, reconfigure) or from source
    (Gitaly's config.toml, GitLab's gitlab.yml; a change applies by restart)."""

    OMNIBUS = "omnibus"
    SOURCE = "source"


class SecretsPolicy(StrEnum):
    SHARED = "shared"  # byte-identical copy of the lab's one gitlab-secrets.json
    OWN = "own"  # a freshly generated file of its own (the guide's failure case)
    NONE = "none"  # no file mounted: the node generates one when it boots


GITALY_PORT = 8075
GITALY_TLS_PORT = 9999
HTTP_PORT = 80
GIT_DATA_ROOT = "/var/opt/gitlab"


@dataclass(frozen=True)
class Storage:
    name: str
    # The git_data_dirs-style path; Omnibus appends /repositories (see repositories_path).
    path: str

    @property
    def repositories_path(self) -> str:
        return f"{self.path.rstrip('/')}/repositories"


def default_storage_path(name: str) -> str:
    suffix = "" if name == "default" else f"-{name}"
    return f"{GIT_DATA_ROOT}/git-data{suffix}"


@dataclass(frozen=True)
class Node:
    name: str
    roles: tuple[Role, ...]
    storages: tuple[Storage, ...] = ()
    secrets: SecretsPolicy = SecretsPolicy.SHARED
    tls: bool = False
    # DNS names in the Gitaly certificate; the app dials the node name, so a
    # different list reproduces a SAN mismatch.
    tls_san: tuple[str, ...] = ()
    trust_ca: bool = True
    gitaly_token: str | None = None  # None: the lab's token
    # Gitaly nodes: None means the app's URL; "" leaves the setting out.
    internal_api_url: str | None = None
    publish: tuple[tuple[str, int], ...] = ()  # (port name, host port; 0 = any free port)
    omnibus_config: str = ""  # GITLAB_OMNIBUS_CONFIG; the mounted gitlab.rb wins over it
    # Praefect nodes: the Gitaly nodes behind it (each one's storage is named after the
    # node in Praefect's config) and how many of them hold each repository (None: all).
    backends: tuple[str, ...] = ()
    replication_factor: int | None = None

    # engine swarm: the machine it runs on, a swarm node's host name or "LABEL=VALUE" of
    # a node label; None: Swarm's own scheduling.
    place: str | None = None
    install: Install = Install.OMNIBUS

    @property
    def from_source(self) -> bool:
        return self.install is Install.SOURCE

    @property
    def replicas(self) -> int:
        """How many Gitaly nodes hold each repository of a Praefect node's virtual storage."""
        return self.replication_factor or len(self.backends)

    @property
    def is_app(self) -> bool:
        return Role.APP in self.roles

    @property
    def is_praefect(self) -> bool:
        return Role.PRAEFECT in self.roles

    @property
    def is_postgres(self) -> bool:
        return Role.POSTGRES in self.roles

    @property
    def is_gitaly(self) -> bool:
        return Role.GITALY in self.roles

    @property
    def gitaly_only(self) -> bool:
        return self.is_gitaly and not self.is_app

    @property
    def san_names(self) -> tuple[str, ...]:
        return self.tls_san or (self.name,)

    @property
    def gitaly_port(self) -> int:
        """The port clients dial for Gitaly's gRPC here (Praefect's, on a Praefect node)."""
        if self.is_praefect:
            return praefect.TLS_PORT if self.tls else praefect.PORT
        return GITALY_TLS_PORT if self.tls else GITALY_PORT

    @property
    def gitaly_address(self) -> str:
        """The address the app node (or Praefect) dials for this Gitaly or Praefect node."""
        scheme = "tls" if self.tls else "tcp"
        return f"{scheme}://{self.name}:{self.gitaly_port}"

    def published(self, port_name: str) -> int | None:
        for name, host_port in self.publish:
            if name == port_name:
                return host_port
        return None


@dataclass(frozen=True)
class Lab:
    name: str
    version: Version
    edition: Edition
    flavor: Flavor
    nodes: tuple[Node, ...]
    gitaly_token: str | None = None  # None: random per lab, kept with the lab's secrets
    image: str | None = None  # overrides the flavour's image
    topology: str = ""
    engine: Engine = Engine.COMPOSE
    swarm: SwarmOptions = SwarmOptions()

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.version)

    @property
    def praefect_dialect(self) -> PraefectDialect:
        return praefect_dialect(self.version)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def app(self) -> Node:
        return next(n for n in self.nodes if n.is_app)

    @property
    def gitaly_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_gitaly)

    @property
    def external_gitaly_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.gitaly_only)

    @property
    def praefect_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_praefect)

    @property
    def postgres_node(self) -> Node | None:
        return next((n for n in self.nodes if n.is_postgres), None)

    @property
    def cluster_gitaly_nodes(self) -> tuple[Node, ...]:
        """The Gitaly nodes behind a Praefect: their storages are Praefect's, not the app's."""
        behind = {b for p in self.praefect_nodes for b in p.backends}
        return tuple(n for n in self.gitaly_nodes if n.name in behind)

    def praefect_of(self, node: Node) -> Node | None:
        """The Praefect node ``node`` (a Gitaly node) stands behind, if any."""
        return next((p for p in self.praefect_nodes if node.name in p.backends), None)

    @property
    def storages(self) -> dict[str, Node]:
        """Storage name the app knows -> the node serving it (a Praefect node serves its
        virtual storages; the Gitaly nodes behind it are hidden from the app)."""
        behind = {n.name for n in self.cluster_gitaly_nodes}
        out = {s.name: n for n in self.gitaly_nodes if n.name not in behind
               for s in n.storages}
        out.update({s.name: n for n in self.praefect_nodes for s in n.storages})
        return out

    @property
    def any_tls(self) -> bool:
        return any(n.tls for n in self.nodes)

    @property
    def project_name(self) -> str:
        return f"glt-{self.name}"
