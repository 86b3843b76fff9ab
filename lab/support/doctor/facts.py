"""What `lab doctor` looks at: plain data about the host and a lab, no judging, no I/O.

``gather`` fills these in; ``checks`` judges them. Secrets appear here only as
fingerprints (``sha256:…``), except in ``Gathered.secrets``, which never leaves
the support room unredacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECRETS_PATH = "/etc/gitlab/gitlab-secrets.json"
INTERNAL_CHECK = "/api/v4/internal/check"


@dataclass(frozen=True)
class HostFacts:
    docker_version: str | None = None
    docker_error: str = ""
    compose: str | None = None  # "docker compose 2.24.1"
    compose_error: str = ""
    mem_available: int | None = None  # bytes
    disk_free: int | None = None  # bytes, where Docker keeps images and volumes
    disk_path: str = ""
    mem_needed: int = 0
    disk_needed: int = 0
    lab_running: bool = False
    ports_busy: tuple[tuple[str, int], ...] = ()  # (where, port)
    ports_checked: int = 0
    images: tuple[tuple[str, bool], ...] = ()  # (ref, present)
    image_warning: str = ""  # an omnibus lab's image is the sim (lab_image.sim_posing)
    flavor: str = ""
    swarm_stack: str = ""  # the lab's stack when it runs on a swarm (its services: STACK_NODE)


@dataclass(frozen=True)
class NodeFacts:
    name: str
    state: str  # running, exited, ..., "missing"
    config_error: str | None = None  # None: gitlab.rb evaluates
    config_skipped: str = ""  # why it was not evaluated
    secrets_present: bool | None = None  # None: not read (node not running)
    shell_sha: str | None = None
    hook_sha: str | None = None  # what Gitaly signs with: gitaly.gitlab_secret or the shell secret
    secrets_error: str = ""
    # What the lab's release says about the file: (aborts reconfigure?, message).
    findings: tuple[tuple[bool, str], ...] = ()
    code: tuple[tuple[int, str], ...] = ()  # Ruby statements read but not run


@dataclass(frozen=True)
class GitalyProbe:
    node: str
    address: str  # what the app dials
    storages: tuple[str, ...]
    error: str = ""  # "" = ServerInfo answered
    unreadable: tuple[str, ...] = ()
    via: str = "ServerInfo"


@dataclass(frozen=True)
class TlsFacts:
    node: str
    host: str  # the host name the app dials
    cert_pem: str | None
    app_ca_pems: tuple[str, ...]  # what the app trusts (its trusted-certs)
    node_ca_pems: tuple[str, ...]  # what the Gitaly node trusts (Gitaly calls itself)


@dataclass(frozen=True)
class ApiProbe:
    node: str
    url: str | None  # None: internal_api_url not set
    http_status: int | None = None
    error: str = ""


@dataclass(frozen=True)
class BackendFacts:
    """One Gitaly node as a Praefect's config names it, beside what that node says."""

    storage: str  # the storage name Praefect uses for it
    address: str
    token_sha: str | None  # the token Praefect sends it
    node: str | None = None  # the lab node at that address (None: none)
    node_token_sha: str | None = None  # the token the node accepts (its gitlab.rb)
    node_storages: tuple[str, ...] = ()  # the storage names the node serves


@dataclass(frozen=True)
class ClusterFacts:
    """A Praefect node's wiring, from the gitlab.rb files of the three sides."""

    praefect: str
    address: str  # where it listens (what the app should dial)
    external_sha: str | None  # the token it accepts
    app_storages: tuple[str, ...]  # the app's storages dialling it
    app_token_sha: str | None  # the token the app sends them
    virtual_storages: tuple[str, ...]
    backends: tuple[BackendFacts, ...] = ()
    database: str = ""  # host:port from its config
    sql_ping: str | None = None  # `praefect sql-ping`'s output (None: not run)
    sql_ping_ok: bool = False
    read_error: str = ""  # a file that could not be read


@dataclass
class Gathered:
    host: HostFacts
    nodes: list[NodeFacts] = field(default_factory=list)
    gitaly: list[GitalyProbe] = field(default_factory=list)
    tls: list[TlsFacts] = field(default_factory=list)
    api: list[ApiProbe] = field(default_factory=list)
    cluster: list[ClusterFacts] = field(default_factory=list)
    # node -> its gitlab-secrets.json as read inside the container (for collect's hash table)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
