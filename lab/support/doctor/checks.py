"""`lab doctor`'s judging: pure functions from facts to ``Check`` rows.

Each failure carries a one-line hint in the words of GitLab's guide. Nothing here
talks to Docker, a container or the network: the tests feed it facts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from lab.model.needs import GiB
from lab.support.doctor.facts import (
    INTERNAL_CHECK,
    SECRETS_PATH,
    ApiProbe,
    ClusterFacts,
    Gathered,
    GitalyProbe,
    HostFacts,
    NodeFacts,
    TlsFacts,
)

CERT_WARN_DAYS = 30


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
        if present and f.image_warning:
            out.append(Check("host", "image", Level.WARN, f.image_warning))
        elif present:
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


def start_hint(state: str, node: str, lab: str, stack: str = "") -> str:
    """How to get a node that is not running back, by its state. `lab up` is no answer while
    other nodes run (it says the lab is up), and would boot a new lab without the data.
    On a swarm (``stack``) an ended task's container is not started by hand (it would run
    outside Swarm): its service is scaled back up, as the `start` fault does."""
    if stack and state != "paused":
        return (f"scale its service back up (docker service scale {stack}_{node}=1), then "
                f"see lab logs {node}")
    if state == "missing":
        return (f"its container is gone: `lab down {lab}`, then `lab up` (a new lab, without "
                "the old data)")
    if state == "paused":
        return f"unpause its container (docker unpause; `lab status {lab}` names it)"
    return (f"start its container (docker start; `lab status {lab}` names it), then see "
            f"lab logs {node}")


def running_checks(nodes: Sequence[NodeFacts], lab: str, stack: str = "") -> list[Check]:
    return [Check(n.name, "container", Level.OK if n.state == "running" else Level.FAIL,
                  n.state,
                  "" if n.state == "running" else start_hint(n.state, n.name, lab, stack))
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
        if n.secrets_error:  # there, but unreadable as JSON: no secret in it counts
            out.append(Check(n.name, "secrets file", Level.FAIL,
                             f"{SECRETS_PATH} is present but {n.secrets_error}",
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


def gitaly_checks(app: str, probes: Sequence[GitalyProbe]) -> list[Check]:
    out = []
    for p in probes:
        what = f"{p.address} ({', '.join(p.storages)})"
        name = "gitaly reachable"
        whose = "Praefect's internal" if " as " in p.via else "the app's"
        if not p.error and not p.unreadable:
            out.append(Check(p.node, name, Level.OK, f"{what}: {p.via} OK with {whose} token"))
        elif p.unreadable:
            out.append(Check(p.node, name, Level.FAIL,
                             f"{what}: storages not readable: {', '.join(p.unreadable)}",
                             f"check the storage paths in {p.node}'s gitlab.rb"))
        else:
            out.append(Check(p.node, name, Level.FAIL, f"{what}: {p.error}",
                             _gitaly_hint(app, p.node, p.error, p.via)))
    return out


def cluster_checks(app: str, clusters: Sequence[ClusterFacts]) -> list[Check]:
    """Gitaly Cluster's three sides: the app's token = Praefect's external token; Praefect's
    token for each Gitaly node = that node's auth token; the storage name Praefect uses =
    one the node serves; Praefect reaches its database (`praefect sql-ping`)."""
    out: list[Check] = []
    for c in clusters:
        p = c.praefect
        if c.read_error:
            out.append(Check(p, "cluster wiring", Level.FAIL, f"could not read: {c.read_error}",
                             "fix the gitlab.rb named; lab doctor reads it with Ruby's parser"))
            continue
        if not c.app_storages:
            out.append(Check(p, "external token", Level.FAIL,
                             f"no storage in {app}'s gitlab.rb dials {p} ({c.address})",
                             f"point the virtual storage ({', '.join(c.virtual_storages)}) in "
                             f"{app}'s gitlab.rb at tcp://{p}:{c.address.rsplit(':', 1)[-1]}"))
        elif c.app_token_sha and c.app_token_sha == c.external_sha:
            out.append(Check(p, "external token", Level.OK,
                             f"{app} sends what {p} accepts ({c.app_token_sha})"))
        else:
            out.append(Check(p, "external token", Level.FAIL,
                             f"{app} sends {c.app_token_sha or 'no token'}, {p} accepts "
                             f"{c.external_sha or 'none'}: every Git call answers "
                             "7:permission denied",
                             f"set {app}'s gitlab_rails['gitaly_token'] (or the storage's "
                             f"gitaly_token) to {p}'s auth token (the external token)"))
        for b in c.backends:
            who = b.node or b.address
            if b.node is None:
                out.append(Check(p, "gitaly node", Level.FAIL,
                                 f"{b.storage} at {b.address} is no Gitaly node of this lab",
                                 f"fix the node address in {p}'s virtual storage"))
                continue
            if b.token_sha and b.token_sha == b.node_token_sha:
                out.append(Check(b.node, "internal token", Level.OK,
                                 f"{p} sends what {b.node} accepts ({b.token_sha})"))
            else:
                out.append(Check(b.node, "internal token", Level.FAIL,
                                 f"{p} sends {b.token_sha or 'no token'} to {who}, which "
                                 f"accepts {b.node_token_sha or 'none'}: {p} can't use it",
                                 f"set {b.node}'s Gitaly auth token to {p}'s token for it "
                                 "(the internal token), on both sides the same"))
            if b.storage in b.node_storages:
                out.append(Check(b.node, "storage name", Level.OK,
                                 f"{p} and {b.node} both call it {b.storage}"))
            else:
                out.append(Check(b.node, "storage name", Level.FAIL,
                                 f"{p} calls it {b.storage}, {b.node} serves "
                                 f"{', '.join(b.node_storages) or 'nothing'}",
                                 f"name {b.node}'s storage {b.storage} (gitaly storage name = "
                                 f"{p}'s node storage name)"))
        if c.sql_ping is None:
            out.append(Check(p, "database", Level.WARN, f"{p} is not running: `praefect "
                             f"sql-ping` not run ({c.database})", f"start {p}, then lab doctor"))
        elif c.sql_ping_ok:
            out.append(Check(p, "database", Level.OK, f"{c.database}: {c.sql_ping}"))
        else:
            out.append(Check(p, "database", Level.FAIL, f"{c.database}: {c.sql_ping}",
                             "is the PostgreSQL node up, and do the database settings of "
                             f"{p}'s gitlab.rb match it (host, port, user, password, dbname)?"))
    return out


def _gitaly_hint(app: str, node: str, error: str, via: str = "") -> str:
    low = error.lower()
    if " as " in via:  # asked as the Praefect in front of the node would
        app = via.split(" as ", 1)[1]
        if "permission denied" in low or "authentication required" in low:
            return (f"the token {app} sends {node} (its virtual storage's node token, the "
                    f"internal token) must equal {node}'s Gitaly auth token")
    if "permission denied" in low or "authentication required" in low:
        return (f"gitlab_rails['gitaly_token'] on {app} must equal {node}'s Gitaly auth token; "
                f"set the same token on both and reconfigure both")
    if "certificate" in low or "ssl" in low or "tls" in low or "handshake" in low:
        return (f"put the CA that signed {node}'s certificate into /etc/gitlab/trusted-certs on "
                f"{app} and make the certificate's SAN match the address")
    return (f"is Gitaly running and listening on {node} (gitlab-ctl status gitaly)? the "
            f"address in {app}'s gitlab.rb must reach it")


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


def judge(lab_name: str | None, g: Gathered, app: str | None) -> Report:
    checks = host_checks(g.host)
    if app is not None:
        if g.host.lab_running:
            checks += running_checks(g.nodes, lab_name or "", g.host.swarm_stack)
        else:
            start = (f"scale its services back up (docker service scale "
                     f"{g.host.swarm_stack}_NODE=1)" if g.host.swarm_stack else
                     "start its containers to keep their data (docker start; "
                     f"`lab status {lab_name or ''}` names them)")
            checks.append(Check("lab", "running", Level.WARN, "the lab is not running: only "
                                "its files were checked",
                                f"{start}, or `lab up` for a new lab; then lab doctor again"))
        checks += config_checks(g.nodes)
        checks += secrets_checks(app, g.nodes)
        checks += gitaly_checks(app, g.gitaly)
        checks += cluster_checks(app, g.cluster)
        checks += tls_checks(app, g.tls)
        checks += api_checks(app, g.api)
    return Report(lab_name, tuple(checks))
