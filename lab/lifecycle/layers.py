"""A running lab's readiness layers: which probe each layer asks of which node.

In order: every container running; Praefect's database, made as soon as its node is up,
and its schema, migrated as soon as the first Praefect is up; each node's services up
(``probes.ServicesProbe``); Praefect counting a Gitaly node of each virtual storage
healthy; the app's ``/-/readiness``; Gitaly serving its storages (asked from the host
with each node's own token where the host can reach the lab network, else through the
app); Docker's healthchecks when asked for; the admin token accepted by the API.
``lab.lifecycle.readiness.wait_layers`` polls them; ``RunningLab.wait_ready`` runs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime

import requests

from lab.engine import docker as dk
from lab.engine.host import containers_routable
from lab.engine.run import Result
from lab.engine.snapshots import Container
from lab.errors import LabError
from lab.lifecycle import probes
from lab.lifecycle.contract import LabHandle
from lab.lifecycle.readiness import Layer, Probe, Verdict
from lab.model.topology import HTTP_PORT, Flavor, Node
from lab.omnibus import praefect
from lab.omnibus.node import (
    admin_token_cmd,
    failure_line,
    gitaly_check_cmd,
    node_services,
    ran_ok,
    readiness_cmd,
    token_check_cmd,
    token_status,
)
from lab.omnibus.source_layout import sim_listening_cmd
from lab.render.gitlab_rb import token_of

#: The layer that asks each node whether its own services run (an exec per node and round
#: on Omnibus; a sim node's PID 1 says so in a file read without an exec).
SERVICES_UP = "services up"
PRAEFECT_DATABASE = "praefect database"
PRAEFECT_MIGRATED = "praefect migrated"
PRAEFECT_ROUTES = "praefect routes"
#: Layers of Praefect and its database (its role, database and schema, which live in the
#: database node's volume, and its health checks' view of its Gitaly nodes): after a change
#: they matter only if one of their nodes changed.
SETUP_LAYERS = (PRAEFECT_DATABASE, PRAEFECT_MIGRATED, PRAEFECT_ROUTES)
APP_READY = "app ready"
ADMIN_TOKEN = "admin token"
#: Layers that ask the app node about itself: its `/-/readiness` (with ``?all=1`` also its
#: view of Gitaly) and the admin token its API accepts (kept in its own database).
APP_LAYERS = (APP_READY, ADMIN_TOKEN)
#: Seconds a source node's "services up" exec waits in the node for its port (a sim source
#: node listens within a second of its start); the readiness round then asks again.
SOURCE_UP_WITHIN = 2.0


def log_since_start(container: Container, since: str | None = None, *,
                    redact: Callable[[str], str]) -> str:
    """The container's log (with Docker's timestamps) since its latest start or ``since``."""
    stamp = since or container.state.started_at
    if not stamp and container.state.running:
        stamp = dk.inspect(container).state.started_at  # a listing has no start time
    try:
        after = datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        after = None
    return dk.logs(container, tail=None, since=None if after is None else f"{after:.6f}",
                   timestamps=True, redact=redact)


def services_hint(flavor: Flavor) -> str:
    """What a timed-out "services up" most likely means: an Omnibus reconfigure takes
    minutes; a sim node is up within a second, so there it is a node that failed."""
    if flavor is Flavor.OMNIBUS:
        return "Omnibus reconfigure may still be running; raise --timeout"
    return "a sim node starts within seconds: see the node's log (`lab logs NODE`)"


def readiness_layers(running: LabHandle, *, wait_gitaly: bool = True,
                     docker_health: bool = False) -> list[Layer]:
    """The layers ``running`` is waited through; ``wait_gitaly``: also the app's view of Gitaly."""
    asks = LabProbes(running)
    nodes = [n.name for n in running.lab.nodes]
    app = running.lab.app.name
    services = {n.name: _services_probe(asks, n) for n in running.lab.nodes}
    out = [Layer("containers running", {n: functools.partial(asks.running, n) for n in nodes})]
    db = running.lab.postgres_node
    out += praefect_setup_layers(running)
    out.append(Layer(SERVICES_UP, dict(services), hint=services_hint(running.lab.flavor)))
    if db is not None and running.lab.praefect_nodes:
        # A Praefect whose health checks have found no Gitaly node healthy yet routes
        # nothing, and a lab's first request would meet its error.
        storages = [s.name for p in running.lab.praefect_nodes for s in p.storages]
        out.append(Layer(PRAEFECT_ROUTES, {db.name: functools.partial(
            asks.praefect_routes, db.name, storages)}, hint="Praefect counts no Gitaly node "
            f"healthy: see `lab logs {running.lab.praefect_nodes[0].name}` and `praefect "
            "dial-nodes` there"))
    out.append(Layer(APP_READY, {app: lambda: asks.app_ready(wait_gitaly)}))
    gitaly = asks.gitaly(via_app=wait_gitaly)
    if gitaly:
        out.append(Layer("gitaly storages", gitaly,
                         hint="check the Gitaly node's log and the auth token settings"))
    if docker_health:
        out.append(Layer("healthchecks",
                         {n: functools.partial(asks.docker_health, n) for n in nodes}))
    out.append(Layer(ADMIN_TOKEN, {app: asks.admin_token}))
    return out


def praefect_setup_layers(running: LabHandle) -> list[Layer]:
    """Praefect's database and its schema (none for a lab without Praefect and PostgreSQL).

    GitLab's docs: create Praefect's role and database on its PostgreSQL node once that
    node is up, then migrate from one Praefect (the "deploy node", whose auto_migrate is off
    until then). Praefect pings its database as it starts and exits when that fails, and
    from PRAEFECT_PER_REPOSITORY serves only once its first health checks are written to
    the schema."""
    db = running.lab.postgres_node
    if db is None or not running.lab.praefect_nodes:
        return []
    asks = LabProbes(running)
    deploy = running.lab.praefect_nodes[0]

    def configured(node: Node) -> Probe:
        # Each step needs only what reconfigure wrote (both nodes run Omnibus: the spec
        # refuses them from source): `sql-migrate` reads Praefect's config (Praefect need
        # not run yet), and psql, failing until PostgreSQL answers, is its own "services
        # up" (one exec a round instead of two).
        return probes.ServicesProbe(node.name, asks.exec_raw(node.name),
                                    asks.read_log(node.name), ())

    return [
        Layer(PRAEFECT_DATABASE, {db.name: After(
            configured(db), functools.partial(asks.praefect_database, db.name))},
            hint=f"see `lab logs {db.name}`"),
        Layer(PRAEFECT_MIGRATED, {deploy.name: After(
            configured(deploy), functools.partial(asks.praefect_migrated, deploy.name))},
            hint=f"see `lab logs {deploy.name}`; the database settings of its gitlab.rb must "
            "match the postgres node"),
    ]


def _services_probe(asks: LabProbes, node: Node) -> Probe:
    if node.from_source:
        # A source node has no reconfigure and no gitlab-ctl: up when Gitaly (or, on an
        # app node, the web server) listens.
        return functools.partial(asks.source_node_up, node)
    return probes.ServicesProbe(node.name, asks.exec_raw(node.name), asks.read_log(node.name),
                                node_services(asks.lab.version, app=node.is_app,
                                              gitaly=node.is_gitaly, praefect=node.is_praefect,
                                              postgres=node.is_postgres),
                                up_lines=asks.lab.flavor is Flavor.SIM)


@dataclass
class After:
    """``then``, asked once ``first`` has passed (``first`` is not asked again after that)."""

    first: Probe
    then: Probe
    passed: bool = False

    def __call__(self) -> Verdict:
        if not self.passed:
            seen = self.first()
            if not seen.ok:
                return seen
            self.passed = True
        return self.then()


def services_asked_of(layer: Layer, nodes: Collection[str]) -> Layer:
    """``layer`` asking only ``nodes`` whether their services are up: "services up" keeps
    only their probes, and a probe that asks after a node's services (``After``) goes
    straight to its own question for any other node."""
    if layer.name == SERVICES_UP:
        return replace(layer, probes={n: p for n, p in layer.probes.items() if n in nodes})
    return replace(layer, probes={n: p.then if isinstance(p, After) and n not in nodes else p
                                  for n, p in layer.probes.items()})


class LabProbes:
    """Each probe, asking one running lab through its handle."""

    def __init__(self, handle: LabHandle) -> None:
        self.handle = handle
        self.lab = handle.lab

    def read_log(self, node: str) -> probes.LogFn:
        def read(since: str | None) -> str:
            return log_since_start(self.handle.container(node), since,
                                   redact=self.handle.redactor)
        return read

    def exec_raw(self, node: str) -> Callable[[list[str], float | None], Result]:
        def run_it(cmd: list[str], timeout: float | None) -> Result:
            return self.handle.exec(node, cmd, check=False, timeout=timeout)
        return run_it

    # container() hands out snapshots listed this poll round: their state is fresh enough.
    def running(self, node: str) -> Verdict:
        st = self.handle.container(node).state
        return Verdict(st.running, st.status)

    def docker_health(self, node: str) -> Verdict:
        st = self.handle.container(node).state
        return Verdict(st.health in ("healthy", ""), f"healthcheck {st.health or 'none'}")

    def app_ready(self, all_checks: bool) -> Verdict:
        res = self.handle.exec(self.lab.app.name, readiness_cmd(all_checks=all_checks),
                               check=False, timeout=20)
        if res.returncode == 0:
            return Verdict(True, "ready")
        return Verdict(False, f"/-/readiness: {failure_line(res)}")

    def praefect_database(self, node: str) -> Verdict:
        """Praefect's role and database on its PostgreSQL node: made once, then there. One
        psql does both (``database_setup_cmd``); it fails until PostgreSQL answers."""
        res = self.handle.exec(node, praefect.database_setup_cmd(
            self.handle.rendered.secrets.praefect_db_password), check=False, timeout=60)
        if res.returncode != 0:
            return Verdict(False, f"{praefect.DB_NAME} not made yet: {failure_line(res)}")
        # psql stops at the first error (ON_ERROR_STOP): exit 0 means the role is set and
        # the database is there, made now or before.
        made = "created" if praefect.database_made(res.stdout) else "exists"
        return Verdict(True, f"{praefect.DB_NAME} {made}")

    def praefect_migrated(self, node: str) -> Verdict:
        res = self.handle.exec(node, praefect.praefect_cmd("sql-migrate"), check=False,
                               timeout=300)
        if res.returncode == 0:
            return Verdict(True, "praefect sql-migrate done")
        return Verdict(False, f"praefect sql-migrate: {failure_line(res)}")

    def praefect_routes(self, node: str, storages: list[str]) -> Verdict:
        """Praefect's health checks (``node_status`` on its database node ``node``) count
        a Gitaly node of each virtual storage healthy."""
        res = self.handle.exec(node, praefect.routing_cmd(storages), check=False, timeout=60)
        if res.returncode != 0:
            return Verdict(False, f"reading node_status: {failure_line(res)}")
        none = praefect.unroutable(res.stdout, storages)
        if none:
            return Verdict(False, f"no Gitaly node of {', '.join(none)} healthy yet")
        return Verdict(True, "a healthy Gitaly node in each virtual storage")

    def source_node_up(self, node: Node) -> Verdict:
        what, port = ("the web server", HTTP_PORT) if node.is_app else ("Gitaly",
                                                                         node.gitaly_port)
        res = self.handle.exec(node.name, sim_listening_cmd(port, within=SOURCE_UP_WITHIN),
                               check=False, timeout=30)
        if res.returncode == 0:
            return Verdict(True, f"{what} listens on {port}")
        return Verdict(False, f"{what} not listening on {port} yet "
                       "(installed from source: see its log)")

    def gitaly_host_side(self, node: Node) -> Verdict:
        """ServerInfo from the host to the node's lab-network address, with its own token."""
        # Imported late: the gRPC stack is only needed once a lab is up.
        from lab.client.gitaly import GitalyError, node_server_info, unreadable_storages

        ip = self.handle.container(node.name).ip
        if ip is None:
            return Verdict(False, "no address on the lab network yet")
        sec = self.handle.rendered.secrets
        try:
            # "Is Gitaly up" only: trust the lab CA and accept the node's first
            # certificate name. Whether the app's view matches is doctor's question.
            info = node_server_info(ip, node, token_of(self.lab, sec, node),
                                    ca_pem=sec.tls.get("ca.crt", ""),
                                    server_name=node.san_names[0])
        except GitalyError as exc:
            return Verdict(False, f"ServerInfo: {exc}")
        missing = unreadable_storages(info, (s.name for s in node.storages))
        if missing:
            return Verdict(False, f"storages not readable yet: {', '.join(missing)}")
        return Verdict(True, "ServerInfo answered")

    def gitaly_from_app(self) -> Verdict:
        res = self.handle.exec(self.lab.app.name,
                               gitaly_check_cmd(source=self.lab.app.from_source), check=False,
                               timeout=300)
        # The task exits 0 even when it prints FAIL: read its verdict per storage.
        return probes.gitaly_check_status(res, list(self.lab.storages))

    def gitaly(self, *, via_app: bool = True) -> dict[str, Probe]:
        """Gitaly serving: each external node asked with its own token from the host, and
        (``via_app``) the app's view. Without ``via_app`` — a scenario that breaks the
        app's side on purpose — only the nodes themselves, where the host can reach them."""
        local = containers_routable()  # else the app node is asked instead
        out: dict[str, Probe] = {}
        if local:
            out = {n.name: functools.partial(self.gitaly_host_side, n)
                   for n in (*self.lab.external_gitaly_nodes, *self.lab.praefect_nodes)}
        # An all-in-one node's Gitaly listens on a socket only; ask the app about it.
        if via_app and (not local or self.lab.app.is_gitaly):
            out[self.lab.app.name] = self.gitaly_from_app
        return out

    def token_works(self) -> bool:
        token = self.handle.admin_token
        try:
            url = self.handle.http_url
        except LabError:
            res = self.handle.exec(self.lab.app.name, token_check_cmd(token),
                                   check=False, timeout=20)
            return token_status(res.stdout)
        with requests.Session() as s:
            s.trust_env = False  # a lab is on loopback; a proxy would only get in the way
            try:
                r = s.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": token}, timeout=10)
            except requests.RequestException:
                return False
        return token_status(r.status_code)

    def admin_token(self) -> Verdict:
        if self.token_works():
            return Verdict(True, "admin token works")
        res = self.handle.exec(self.lab.app.name,
                               admin_token_cmd(self.handle.admin_token,
                                               source=self.lab.app.from_source),
                               check=False, timeout=600)
        if not ran_ok(res):
            return Verdict(False, f"creating the admin token: {failure_line(res)}")
        if self.token_works():
            return Verdict(True, "admin token created")
        return Verdict(False, "admin token created but GET /api/v4/user does not accept it yet")
