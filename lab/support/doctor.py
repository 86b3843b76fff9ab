"""`lab doctor`: is this host fit for a lab, and is a running lab wired the way the guide says?

Two halves, kept apart so the judging is testable without Docker:
- ``gather_*`` collect *facts* (what Docker says, what is inside each container,
  what a Gitaly server answers);
- ``*_checks`` are pure functions from facts to ``Check`` rows, each failure
  carrying a one-line hint in the words of GitLab's guide.

Secrets are compared by hash only; a secret read from a container never leaves
this module except as a fingerprint or a short-lived JWT signed with it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from rich.table import Table

from lab.engine import docker as dk
from lab.engine.compose import detect
from lab.engine.host import containers_routable, mem_available, port_in_use
from lab.engine.images import image_for, sim_image_ref
from lab.engine.run import Result
from lab.errors import LabError, SpecError
from lab.lifecycle import probes
from lab.model.lab import Flavor, Lab, Node
from lab.omnibus import dialect as omnibus_dialect
from lab.omnibus import eras
from lab.omnibus import node as omnibus
from lab.omnibus.auth import encode_shell_jwt
from lab.omnibus.reader import read_rb
from lab.omnibus.release import DEFAULT_VERSION, Version
from lab.render.gitlab_rb import internal_api_url, node_token
from lab.render.secrets import fingerprint
from lab.store.labdir import RenderedLab

GiB = 1024 ** 3
# Omnibus: plan 4+ GB per app node (the guide); a Gitaly-only node runs a fraction of it.
OMNIBUS_APP_BYTES = 4 * GiB
OMNIBUS_GITALY_BYTES = 1 * GiB
SIM_NODE_BYTES = 256 * 1024 ** 2
OMNIBUS_IMAGE_BYTES = 4 * GiB  # a pulled gitlab-ce image, unpacked
OMNIBUS_NODE_DISK = 2 * GiB
SIM_NODE_DISK = 200 * 1024 ** 2
CERT_WARN_DAYS = 30
SECRETS_PATH = "/etc/gitlab/gitlab-secrets.json"
INTERNAL_CHECK = "/api/v4/internal/check"


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    scope: str  # "host" or a node name
    name: str
    level: Level
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"scope": self.scope, "check": self.name, "status": self.level.value,
                "detail": self.detail, "hint": self.hint}


@dataclass(frozen=True)
class Report:
    lab: str | None
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.level is Level.FAIL for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": not self.failed,
                "checks": [c.to_json() for c in self.checks]}


def _gb(n: int) -> str:
    return f"{n / GiB:.1f} GB"


# --- host ---------------------------------------------------------------------------

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
    flavor: str = ""


def memory_needed(lab: Lab) -> int:
    if lab.flavor is Flavor.OMNIBUS:
        return sum(OMNIBUS_APP_BYTES if n.is_app else OMNIBUS_GITALY_BYTES for n in lab.nodes)
    return SIM_NODE_BYTES * len(lab.nodes)


def disk_needed(lab: Lab, image_present: bool) -> int:
    if lab.flavor is Flavor.OMNIBUS:
        return (0 if image_present else OMNIBUS_IMAGE_BYTES) + OMNIBUS_NODE_DISK * len(lab.nodes)
    return SIM_NODE_DISK * len(lab.nodes)


def host_checks(f: HostFacts) -> list[Check]:
    out: list[Check] = []
    if f.docker_version:
        out.append(Check("host", "docker", Level.OK, f"Docker Engine {f.docker_version}"))
    else:
        out.append(Check("host", "docker", Level.FAIL, f.docker_error or "not reachable",
                         "start Docker (systemctl start docker) or set DOCKER_HOST"))
    if f.compose:
        out.append(Check("host", "compose", Level.OK, f.compose))
    else:
        out.append(Check("host", "compose", Level.FAIL, f.compose_error or "not found",
                         "install the Compose plugin (docker-compose-plugin) or docker-compose"))
    out.append(_resource("memory", f.mem_available, f.mem_needed, f.lab_running, f.flavor,
                         "free memory (stop other labs or containers); Omnibus wants ~4 GB "
                         "per app node"))
    out.append(_resource("disk", f.disk_free, f.disk_needed, f.lab_running, f.flavor,
                         f"free disk space under {f.disk_path or 'the Docker data root'} "
                         "(docker system prune, lab gc)"))
    if f.ports_busy:
        where = ", ".join(f"{port} ({w})" for w, port in f.ports_busy)
        out.append(Check("host", "ports", Level.FAIL, f"host ports in use: {where}",
                         "free them, or publish on any free port: --set "
                         "nodes.NODE.publish.http=0"))
    elif f.lab_running:
        out.append(Check("host", "ports", Level.OK, "held by the running lab"))
    elif f.ports_checked:
        out.append(Check("host", "ports", Level.OK, f"{f.ports_checked} fixed port(s) free"))
    for ref, present in f.images:
        if present:
            out.append(Check("host", "image", Level.OK, ref))
        elif ref.startswith("gitlab/"):
            out.append(Check("host", "image", Level.FAIL, f"{ref} is not present",
                             f"docker pull {ref}, or `lab images load FILE.tar` on an "
                             "air-gapped host"))
        else:
            out.append(Check("host", "image", Level.WARN if not f.flavor else Level.FAIL,
                             f"{ref} is not built", "lab images build"))
    return out


def _resource(name: str, have: int | None, need: int, running: bool, flavor: str,
              hint: str) -> Check:
    if have is None:
        return Check("host", name, Level.SKIP, "could not be measured on this host")
    if running or not need:
        return Check("host", name, Level.OK, f"{_gb(have)} free")
    detail = f"{_gb(have)} free, the {flavor} lab wants ~{_gb(need)}"
    if have < need // 2:
        return Check("host", name, Level.FAIL, detail, hint)
    if have < need:
        return Check("host", name, Level.WARN, detail, hint)
    return Check("host", name, Level.OK, detail)


# --- nodes --------------------------------------------------------------------------

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


def config_checks(nodes: Sequence[NodeFacts]) -> list[Check]:
    out = []
    for n in nodes:
        if n.config_skipped:
            out.append(Check(n.name, "gitlab.rb", Level.SKIP, n.config_skipped))
        elif n.config_error is None:
            out.append(Check(n.name, "gitlab.rb", Level.OK, "reads as a gitlab.rb (parsed, "
                             "never run on this host)"))
            hint = f"fix nodes/{n.name}/gitlab.rb, then reconfigure {n.name}"
            out += [Check(n.name, "gitlab.rb keys", Level.FAIL if fatal else Level.WARN, msg, hint)
                    for fatal, msg in n.findings]
            out += [Check(n.name, "gitlab.rb code", Level.WARN,
                          f"line {line}: `{text}` is Ruby code: not checked (doctor never "
                          "runs a gitlab.rb)") for line, text in n.code]
        else:
            # The first line names file, line and error; Ruby's caret lines follow it.
            lines = n.config_error.strip().splitlines()
            out.append(Check(n.name, "gitlab.rb", Level.FAIL, lines[0] if lines else "error",
                             f"fix nodes/{n.name}/gitlab.rb, then reconfigure {n.name} "
                             "(gitlab-ctl reconfigure)"))
    return out


def running_checks(nodes: Sequence[NodeFacts]) -> list[Check]:
    return [Check(n.name, "container", Level.OK if n.state == "running" else Level.FAIL,
                  n.state, "" if n.state == "running" else
                  f"start it: lab up (or docker start), then see lab logs {n.name}")
            for n in nodes]


def _copy_hint(app: str, node: str) -> str:
    return (f"copy /etc/gitlab/gitlab-secrets.json from the app node ({app}) to {node}, "
            f"then reconfigure {node}")


def secrets_checks(app: str, nodes: Sequence[NodeFacts]) -> list[Check]:
    """gitlab-secrets.json present everywhere, and Gitaly's signing secret equals the app's."""
    out: list[Check] = []
    by_name = {n.name: n for n in nodes}
    app_facts = by_name.get(app)
    app_sha = app_facts.shell_sha if app_facts else None
    for n in nodes:
        if n.secrets_present is None:
            continue
        if not n.secrets_present:
            out.append(Check(n.name, "secrets file", Level.FAIL,
                             f"{SECRETS_PATH} missing" + (f" ({n.secrets_error})"
                                                          if n.secrets_error else ""),
                             _copy_hint(app, n.name)))
            continue
        out.append(Check(n.name, "secrets file", Level.OK, f"present (shell secret "
                         f"{n.shell_sha or 'none'})"))
        if n.name == app:
            continue
        if app_sha is None:
            out.append(Check(n.name, "shell secret", Level.SKIP,
                             f"the app node's {SECRETS_PATH} could not be read"))
            continue
        if n.hook_sha == app_sha:
            out.append(Check(n.name, "shell secret", Level.OK, f"matches the app ({app_sha})"))
        else:
            which = "gitaly.gitlab_secret" if n.hook_sha != n.shell_sha else \
                "gitlab_shell.secret_token"
            out.append(Check(n.name, "shell secret", Level.FAIL,
                             f"{which} {n.hook_sha} differs from the app's {app_sha}: pushes "
                             "are rejected with 401 Unauthorized",
                             _copy_hint(app, n.name)))
    return out


@dataclass(frozen=True)
class GitalyProbe:
    node: str
    address: str  # what the app dials
    storages: tuple[str, ...]
    error: str = ""  # "" = ServerInfo answered
    unreadable: tuple[str, ...] = ()
    via: str = "ServerInfo"


def gitaly_checks(app: str, probes: Sequence[GitalyProbe]) -> list[Check]:
    out = []
    for p in probes:
        what = f"{p.address} ({', '.join(p.storages)})"
        name = "gitaly reachable"
        if not p.error and not p.unreadable:
            out.append(Check(p.node, name, Level.OK, f"{what}: {p.via} OK with the app's token"))
        elif p.unreadable:
            out.append(Check(p.node, name, Level.FAIL,
                             f"{what}: storages not readable: {', '.join(p.unreadable)}",
                             f"check the storage paths in {p.node}'s gitlab.rb"))
        else:
            out.append(Check(p.node, name, Level.FAIL, f"{what}: {p.error}",
                             _gitaly_hint(app, p.node, p.error)))
    return out


def _gitaly_hint(app: str, node: str, error: str) -> str:
    low = error.lower()
    if "permission denied" in low or "authentication required" in low:
        return (f"gitlab_rails['gitaly_token'] on {app} must equal {node}'s Gitaly auth token; "
                f"set the same token on both and reconfigure both")
    if "certificate" in low or "ssl" in low or "tls" in low or "handshake" in low:
        return (f"put the CA that signed {node}'s certificate into /etc/gitlab/trusted-certs on "
                f"{app} and make the certificate's SAN match the address")
    return (f"is Gitaly running and listening on {node} (gitlab-ctl status gitaly)? the "
            f"address in {app}'s gitlab.rb must reach it")


@dataclass(frozen=True)
class TlsFacts:
    node: str
    host: str  # the host name the app dials
    cert_pem: str | None
    app_ca_pems: tuple[str, ...]  # what the app trusts (its trusted-certs)
    node_ca_pems: tuple[str, ...]  # what the Gitaly node trusts (Gitaly calls itself)


def tls_checks(app: str, facts: Sequence[TlsFacts], now: dt.datetime | None = None) -> list[Check]:
    now = now or dt.datetime.now(dt.UTC)
    out: list[Check] = []
    for t in facts:
        if not t.cert_pem:
            out.append(Check(t.node, "tls certificate", Level.FAIL, "no certificate file",
                             f"put the certificate and key at the paths {t.node}'s gitlab.rb "
                             "names, then reconfigure"))
            continue
        cert = x509.load_pem_x509_certificate(t.cert_pem.encode())
        problems: list[tuple[Level, str, str]] = []
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName) \
                .value.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            sans = []
        if t.host not in sans:
            problems.append((Level.FAIL, f"SAN {sans} does not include {t.host!r}",
                             f"issue {t.node}'s certificate with DNS name {t.host} (the host "
                             f"in {app}'s tls:// address)"))
        ends = cert.not_valid_after_utc
        if ends <= now:
            problems.append((Level.FAIL, f"expired on {ends:%Y-%m-%d}",
                             f"renew {t.node}'s certificate"))
        elif ends - now < dt.timedelta(days=CERT_WARN_DAYS):
            problems.append((Level.WARN, f"expires on {ends:%Y-%m-%d}",
                             f"renew {t.node}'s certificate soon"))
        if not _issued_by_any(cert, t.app_ca_pems):
            problems.append((Level.FAIL, f"not signed by a CA that {app} trusts",
                             f"copy the CA certificate into /etc/gitlab/trusted-certs on {app}, "
                             f"then reconfigure {app}"))
        if not _issued_by_any(cert, t.node_ca_pems):
            problems.append((Level.WARN, f"{t.node} does not trust its own CA (Gitaly calls "
                             "itself)", f"copy the CA certificate into /etc/gitlab/trusted-certs "
                             f"on {t.node} too"))
        if not problems:
            out.append(Check(t.node, "tls certificate", Level.OK,
                             f"SAN {t.host}, trusted by {app}, valid until {ends:%Y-%m-%d}"))
        out += [Check(t.node, "tls certificate", lvl, detail, hint)
                for lvl, detail, hint in problems]
    return out


def _issued_by_any(cert: Any, ca_pems: Iterable[str]) -> bool:
    for pem in ca_pems:
        try:
            ca = x509.load_pem_x509_certificate(pem.encode())
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):  # not a CA PEM, or not this issuer
            continue
        return True
    return False


@dataclass(frozen=True)
class ApiProbe:
    node: str
    url: str | None  # None: internal_api_url not set
    http_status: int | None = None
    error: str = ""


def api_checks(app: str, probes: Sequence[ApiProbe]) -> list[Check]:
    out = []
    name = "internal API"
    for p in probes:
        if p.url is None:
            out.append(Check(p.node, name, Level.FAIL, "gitlab_rails['internal_api_url'] is not "
                             "set: git push fails",
                             f"set gitlab_rails['internal_api_url'] on {p.node} to the app's URL "
                             f"(http://{app}), then reconfigure {p.node}"))
        elif p.http_status == 200:
            out.append(Check(p.node, name, Level.OK,
                             f"{p.url}{INTERNAL_CHECK} accepts {p.node}'s secret"))
        elif p.http_status == 401:
            out.append(Check(p.node, name, Level.FAIL,
                             f"{p.url}{INTERNAL_CHECK}: 401 Unauthorized with {p.node}'s secret",
                             _copy_hint(app, p.node)))
        elif p.http_status is not None and p.http_status != 0:
            out.append(Check(p.node, name, Level.FAIL,
                             f"{p.url}{INTERNAL_CHECK}: HTTP {p.http_status}",
                             f"check that {p.url} is the app node's URL"))
        else:
            out.append(Check(p.node, name, Level.FAIL,
                             f"{p.url}{INTERNAL_CHECK}: unreachable ({p.error or 'no answer'})",
                             f"gitlab_rails['internal_api_url'] on {p.node} must reach the app "
                             f"(http://{app}); is the app up?"))
    return out


# --- gathering ----------------------------------------------------------------------

class LabHandle(Protocol):
    """What doctor and collect need from ``lab.lifecycle.handle.RunningLab``."""

    name: str
    path: Path
    lab: Lab
    rendered: RenderedLab

    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result: ...

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str: ...

    def container(self, node: str) -> Any: ...

    def status(self) -> Any: ...  # LabStatus: .nodes[i].node / .state, .to_json()


def docker_facts() -> tuple[str | None, str, str]:
    """(engine version, error, data root)."""
    try:
        cl = dk.client()
        version = str(cl.version().get("Version", "?"))
        root = str(cl.info().get("DockerRootDir", ""))
    except LabError as exc:
        return None, str(exc).splitlines()[0], ""
    return version, "", root


def gather_host(lab: Lab | None, *, image: str | None = None,
                lab_running: bool = False) -> HostFacts:
    version, error, root = docker_facts()
    try:
        tool = detect()
        compose, compose_error = f"{tool.name} {tool.version}", ""
    except LabError as exc:
        compose, compose_error = None, str(exc)
    disk_path = root if root and Path(root).exists() else str(Path.home())
    try:
        disk_free: int | None = shutil.disk_usage(disk_path).free
    except OSError:
        disk_free = None
    images: list[tuple[str, bool]] = []
    mem_needed = disk_needed_ = 0
    busy: list[tuple[str, int]] = []
    checked = 0
    if version is not None:
        ref = (image or image_for(lab)) if lab is not None else sim_image_ref()
        images.append((ref, dk.image_present(ref)))
    if lab is not None:
        mem_needed = memory_needed(lab)
        disk_needed_ = disk_needed(lab, all(p for _, p in images))
        if not lab_running:
            for node in lab.nodes:
                for pname, port in node.publish:
                    if port:
                        checked += 1
                        if port_in_use(port):
                            busy.append((f"{node.name} {pname}", port))
    return HostFacts(
        docker_version=version, docker_error=error, compose=compose,
        compose_error=compose_error, mem_available=mem_available(), disk_free=disk_free,
        disk_path=disk_path, mem_needed=mem_needed, disk_needed=disk_needed_,
        lab_running=lab_running, ports_busy=tuple(busy), ports_checked=checked,
        images=tuple(images), flavor=lab.flavor.value if lab else "",
    )


def read_config(path: Path, omnibus_config: str, version: Version | None = None
                ) -> tuple[str | None, tuple[tuple[bool, str], ...], tuple[tuple[int, str], ...]]:
    """(error, findings against ``version``, Ruby statements not read) for one node's file.

    The file is parsed statically (lab.omnibus.reader.read_rb), never run on this host.
    """
    try:
        read = read_rb(path, omnibus_config=omnibus_config)
    except SpecError as exc:
        return str(exc), (), ()
    findings = omnibus_dialect.findings(read.settings, version) if version is not None else []
    return None, tuple(findings), read.skipped


def _read_secrets(handle: LabHandle, node: str) -> tuple[dict[str, Any] | None, str]:
    """The node's own gitlab-secrets.json, read inside the container (None: missing)."""
    res = handle.exec(node, ["cat", SECRETS_PATH], check=False, timeout=30)
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        return None, lines[-1] if lines else ""
    try:
        data = json.loads(res.stdout)
    except ValueError:
        return {}, "not valid JSON"
    return (data if isinstance(data, dict) else {}), ""


def hook_secret(data: Mapping[str, Any], version: Version | None = None) -> str:
    """What a Gitaly node signs internal API calls with, in its release's rule
    (lab.omnibus.dialect.signing_secret: the shell secret before 17.5, then
    gitaly.gitlab_secret falling back to it)."""
    d = omnibus_dialect.dialect_for(version or Version.parse(DEFAULT_VERSION))
    return omnibus_dialect.signing_secret(d, data, omnibus_dialect.getter({}))


def _shell(data: Mapping[str, Any]) -> str:
    shell = data.get("gitlab_shell")
    return str(shell.get("secret_token", "") if isinstance(shell, dict) else "").strip()


def _fp(value: str) -> str | None:
    return fingerprint(value) if value else None


@dataclass
class Gathered:
    host: HostFacts
    nodes: list[NodeFacts] = field(default_factory=list)
    gitaly: list[GitalyProbe] = field(default_factory=list)
    tls: list[TlsFacts] = field(default_factory=list)
    api: list[ApiProbe] = field(default_factory=list)
    # node -> its gitlab-secrets.json as read inside the container (for collect's hash table)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)


def node_states(status: Any) -> dict[str, str]:
    """node -> container state, from a ``LabStatus``."""
    return {str(n.node): str(n.state) for n in status.nodes}


def gather_lab(handle: LabHandle, states: Mapping[str, str]) -> Gathered:
    lab = handle.lab
    running = any(s == "running" for s in states.values())
    host = gather_host(lab, image=handle.rendered.image, lab_running=running)
    g = Gathered(host=host)
    have_ruby = shutil.which("ruby") is not None
    for node in lab.nodes:
        state = states.get(node.name, "missing")
        rb = handle.path / "nodes" / node.name / "gitlab.rb"
        err: str | None = None
        findings: tuple[tuple[bool, str], ...] = ()
        code: tuple[tuple[int, str], ...] = ()
        skipped = ""
        if not have_ruby:
            skipped = "ruby is not installed on this host (apt-get install ruby)"
        elif not rb.is_file():
            err = f"{rb} is missing"
        else:
            err, findings, code = read_config(rb, node.omnibus_config, lab.version)
        facts = NodeFacts(node.name, state, config_error=err, config_skipped=skipped,
                          findings=findings, code=code)
        if state == "running":
            data, why = _read_secrets(handle, node.name)
            if data is not None:
                g.secrets[node.name] = data
            facts = replace(facts, secrets_present=data is not None,
                            shell_sha=_fp(_shell(data or {})),
                            hook_sha=_fp(hook_secret(data or {}, lab.version)),
                            secrets_error=why)
        g.nodes.append(facts)
    if states.get(lab.app.name) == "running":
        g.gitaly = probe_gitaly(handle)
    g.tls = tls_facts(handle.path, lab)
    for node in lab.external_gitaly_nodes:
        if states.get(node.name) == "running":
            g.api.append(probe_internal_api(handle, node, g.secrets.get(node.name, {})))
    return g


def probe_gitaly(handle: LabHandle) -> list[GitalyProbe]:
    """Each external Gitaly node, called the way the app calls it: its address, its token."""
    lab, sec = handle.lab, handle.rendered.secrets
    app = lab.app
    token = node_token(sec.gitaly_token, app)
    local = containers_routable()
    rake: Result | None = None
    out = []
    for node in lab.external_gitaly_nodes:
        storages = tuple(s.name for s in node.storages)
        if local:
            out.append(_server_info_probe(handle, node, token, storages))
            continue
        if rake is None:
            # The rake task checks every storage at once, and may take minutes: run it once.
            rake = handle.exec(app.name, omnibus.gitaly_check_cmd(), check=False, timeout=300)
        out.append(_rake_probe(rake, node, storages))
    return out


def _server_info_probe(handle: LabHandle, node: Node, token: str,
                       storages: tuple[str, ...]) -> GitalyProbe:
    # Imported late: the gRPC stack is only needed once a lab is up.
    from lab.client.gitaly import GitalyError, node_server_info, unreadable_storages

    ip = dk.ip_address(handle.container(node.name))
    if ip is None:
        return GitalyProbe(node.name, node.gitaly_address, storages, "no address on the lab "
                           "network (is the node up?)")
    ca = handle.rendered.secrets.tls.get("ca.crt", "") if handle.lab.app.trust_ca else ""
    try:
        # The app dials the node name: the certificate must carry it.
        info = node_server_info(ip, node, token, ca_pem=ca, server_name=node.name)
    except GitalyError as exc:
        return GitalyProbe(node.name, node.gitaly_address, storages, str(exc))
    return GitalyProbe(node.name, node.gitaly_address, storages,
                       unreadable=unreadable_storages(info, storages))


def _rake_probe(res: Result, node: Node, storages: tuple[str, ...]) -> GitalyProbe:
    # The task exits 0 even when it prints FAIL: its verdict is per storage.
    st = probes.gitaly_check_status(res, storages)
    error = "" if st.ok else st.detail
    return GitalyProbe(node.name, node.gitaly_address, storages, error,
                       via="gitlab-rake gitlab:gitaly:check")


def _read(path: Path) -> str | None:
    if path.is_symlink():
        return None  # a container may link its /etc/gitlab files to any host file
    try:
        return path.read_text()
    except OSError:
        return None


def _cas(folder: Path) -> tuple[str, ...]:
    if not folder.is_dir():
        return ()
    return tuple(t for p in sorted(folder.iterdir()) if p.is_file() and (t := _read(p)))


def tls_facts(lab_dir: Path, lab: Lab) -> list[TlsFacts]:
    """The mounted certificate files: what each TLS Gitaly node serves and who trusts what."""
    out = []
    app_dir = lab_dir / "nodes" / lab.app.name
    for node in lab.external_gitaly_nodes:
        if not node.tls:
            continue
        ndir = lab_dir / "nodes" / node.name
        out.append(TlsFacts(node.name, node.name, _read(ndir / "ssl" / f"{node.name}.crt"),
                            _cas(app_dir / "trusted-certs"), _cas(ndir / "trusted-certs")))
    return out


def curl_check_cmd(url: str, headers: Mapping[str, str]) -> list[str]:
    """GET the internal check endpoint; prints only the HTTP status."""
    args = [a for name, value in headers.items() for a in ("-H", f"{name}: {value}")]
    return ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            *args, url.rstrip("/") + INTERNAL_CHECK]


def probe_internal_api(handle: LabHandle, node: Node, secrets: Mapping[str, Any]) -> ApiProbe:
    """From inside the Gitaly node, signed with that node's own secret the way the lab's
    release signs (Gitlab-Shared-Secret before 15.2, the JWT from 15.2, both until 15.5)."""
    url = internal_api_url(handle.lab, node)
    if url is None:
        return ApiProbe(node.name, None)
    secret = hook_secret(secrets, handle.lab.version)
    if not secret:
        return ApiProbe(node.name, url, error=f"{node.name} has no shell secret to sign with")
    headers = eras.internal_api_headers(eras.release(str(handle.lab.version)), secret,
                                        encode_shell_jwt)
    res = handle.exec(node.name, curl_check_cmd(url, headers), check=False, timeout=30)
    code = res.stdout.strip()[-3:]
    status = int(code) if code.isdigit() else None
    return ApiProbe(node.name, url, status, (res.stderr.strip().splitlines() or [""])[-1])


def judge(lab_name: str | None, g: Gathered, app: str | None) -> Report:
    checks = host_checks(g.host)
    if app is not None:
        if g.host.lab_running:
            checks += running_checks(g.nodes)
        else:
            checks.append(Check("lab", "running", Level.WARN, "the lab is not running: only "
                                "its files were checked", "lab up, then lab doctor again"))
        checks += config_checks(g.nodes)
        checks += secrets_checks(app, g.nodes)
        checks += gitaly_checks(app, g.gitaly)
        checks += tls_checks(app, g.tls)
        checks += api_checks(app, g.api)
    return Report(lab_name, tuple(checks))


def doctor(handle: LabHandle | None, *,
           states: Mapping[str, str] | None = None) -> tuple[Report, Gathered]:
    """Run every check that applies: host only without a lab, all of them for a running one.

    ``states`` (node -> container state) saves asking Docker again when the caller has them.
    """
    if handle is None:
        g = Gathered(host=gather_host(None))
        return judge(None, g, None), g
    if states is None:
        try:
            states = node_states(handle.status())
        except LabError:  # Docker cannot be asked: every node counts as missing
            states = {}
    g = gather_lab(handle, states)
    return judge(handle.name, g, handle.lab.app.name), g


# --- output -------------------------------------------------------------------------

STYLE = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "bold red", Level.SKIP: "dim"}


def format_table(report: Report) -> Any:
    title = f"lab doctor: {report.lab}" if report.lab else "lab doctor: host"
    table = Table(title=title, title_justify="left")
    for col in ("status", "where", "check", "detail", "hint"):
        table.add_column(col, overflow="fold")
    for c in report.checks:
        table.add_row(f"[{STYLE[c.level]}]{c.level.value}[/]", c.scope, c.name, c.detail,
                      c.hint)
    return table


def format_text(report: Report) -> str:
    """Plain text (for bundles and logs): one line per check, hint indented below."""
    lines = [f"lab doctor: {report.lab or 'host'}"]
    for c in report.checks:
        lines.append(f"{c.level.value:<4}  {c.scope:<10} {c.name:<18} {c.detail}")
        if c.hint:
            lines.append(f"{'':<17}hint: {c.hint}")
    lines.append("result: " + ("FAIL" if report.failed else "OK"))
    return "\n".join(lines) + "\n"


def gathered_json(g: Gathered) -> dict[str, Any]:
    """The facts (no secret values: ``secrets`` is left out) for a bundle."""
    data = asdict(g)
    data.pop("secrets", None)
    return data

