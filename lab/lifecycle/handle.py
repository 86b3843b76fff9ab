"""A running lab: up, attach, the handle (exec, logs, faults, apply, readiness), down.

This is the API the CLI, scenarios, doctor and the pytest plugin share.
``up`` renders a lab into the per-user state folder (``lab.store.state``), starts it
with Compose and waits through the readiness layers; any failure or Ctrl-C
during ``up`` removes what it started. Every resource carries the lab's labels,
so ``down`` (and ``lab.lifecycle.gc``) remove exactly those.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn

from lab.engine import docker as dk
from lab.engine.compose import Compose, detect
from lab.engine.host import port_in_use
from lab.engine.images import image_for
from lab.engine.redaction import Redaction
from lab.engine.run import Result
from lab.engine.snapshots import Container, Network
from lab.errors import (
    BadInput,
    LabAlreadyUp,
    LabBusy,
    LabDamaged,
    LabError,
    LabNotFound,
    NotReady,
    PortInUse,
)
from lab.lifecycle.folder import reclaim
from lab.lifecycle.gc import check_owner, sweep
from lab.lifecycle.lab_image import ensure_image, sim_posing
from lab.lifecycle.readiness import (
    Clock,
    Layer,
    Progress,
    ReadyReport,
    wait_layers,
)
from lab.lifecycle.timeouts import default_timeout
from lab.model.topology import HTTP_PORT, Engine, Flavor, Lab, Node
from lab.omnibus.node import (
    exited_during_reconfigure,
    reconfigure_cmd,
    reconfigure_then_restart_cmd,
    restart_cmd,
)
from lab.omnibus.source_layout import service_restart_cmd
from lab.render.compose_file import (
    DIR_LABEL,
    HOME_LABEL,
    ID_LABEL,
    LAB_LABEL,
    compose_dict,
)
from lab.render.compose_file import labels as lab_labels
from lab.spec.labspec import NAME_RE
from lab.store import ownership, state
from lab.store.lab_folder import LabFolder
from lab.store.labdir import RenderedLab, render_files, write_lab
from lab.store.layout import ADMIN_TOKEN, SECRETS_STORE

if TYPE_CHECKING:
    from lab.client.gitlab import GitLab
    from lab.lifecycle.node_actions import NodeAction, NodeActions
    from lab.lifecycle.status import LabStatus

# What `lab up` needs only once its containers are starting (the readiness layers and their
# probes, the gRPC stack of Gitaly's) or for other commands (faults, apply, status) is
# imported where it is used, not above: every module imported here is loaded, compiled
# and run before Compose starts, and those milliseconds are added to every `lab up`.
# ``_up`` loads the readiness modules in a thread while Compose runs, when this process
# only waits.
WHILE_COMPOSING = ("lab.lifecycle.layers", "lab.lifecycle.status", "lab.client.gitaly")

# Nodes installed from source (issue 29): on the sim an app node runs from its gitlab.yml
# and a Gitaly node from its config.toml. No official image runs a source app node, and
# on the omnibus flavour the CNG Gitaly service renders but is unchecked here, so `lab up`
# leaves those to the user (README, "Nodes installed from source").
SOURCE_APP_NOT_RUNNABLE = (
    "node {node} is an app node installed from source (install: source): the sim flavour "
    "runs it (--flavor sim), but no official image runs a source app node, so the omnibus "
    "flavour does not: its gitlab.yml renders (`lab render -o DIR`) and `lab import` and "
    "`lab doctor` read it; set its install to omnibus to run the same wiring here")
SOURCE_ALL_IN_ONE_NOT_RUNNABLE = (
    "node {node} is an app node installed from source that also serves Gitaly storages: "
    "the sim runs a source app node beside Gitaly nodes only (give its storages to a "
    "Gitaly node, or leave its install at omnibus)")
SOURCE_OMNIBUS_NOT_RUNNABLE = (
    "node {node} is a Gitaly node installed from source, which the omnibus flavour runs on "
    "Cloud Native GitLab's Gitaly image; that service is rendered but not checked by this "
    "toolkit, so `lab up` does not start it: `lab render --flavor omnibus -o DIR` writes "
    "the lab to start by hand (README, \"Nodes installed from source\"), or use --flavor sim")


def source_not_runnable(lab: Lab) -> str:
    """Why ``lab`` can't start because of a node installed from source ('' when it can)."""
    apps = [n for n in lab.nodes if n.from_source and n.is_app]
    if apps and lab.flavor is not Flavor.SIM:
        return SOURCE_APP_NOT_RUNNABLE.format(node=", ".join(n.name for n in apps))
    both = [n.name for n in apps if n.is_gitaly]
    if both:
        return SOURCE_ALL_IN_ONE_NOT_RUNNABLE.format(node=", ".join(both))
    gitaly = [n.name for n in lab.nodes if n.from_source and not n.is_app]
    if gitaly and lab.flavor is not Flavor.SIM:
        return SOURCE_OMNIBUS_NOT_RUNNABLE.format(node=", ".join(gitaly))
    return ""


# How long a node's container may be missing from every poll round's listing before it
# counts as gone (the rounds come fast at first, so this is a time, not a count).
UNLISTED_SECONDS = 2.0
# Readiness rounds: the first pause, growing to the longest (lab.lifecycle.readiness).
# A sim node serves 1-2 s after its start, and a layer passes at most one pause after the
# node got there: a longest pause of 1 s added ~0.5 s to a sim boot. A round before
# reconfigure ends reads only the new part of each node's log (no exec), so polling
# Omnibus' minutes twice a second costs little.
FIRST_POLL_INTERVAL = 0.1
POLL_INTERVAL = 0.5
# How long the engine may take to finish a create that an interrupted Compose had sent.
CREATE_SETTLE_SECONDS = 1.0
COMPOSE_UP_TIMEOUT = 600.0


# --- the handle --------------------------------------------------------------------

def check_ports(lab: Lab, taken: Callable[[int], bool] = port_in_use) -> None:
    """Fail before starting anything if a fixed host port is in use."""
    seen: dict[int, str] = {}
    for node in lab.nodes:
        for pname, port in node.publish:
            if not port:
                continue
            where = f"node {node.name!r} ({pname})"
            if port in seen:
                raise PortInUse(f"host port {port} is published twice: by {seen[port]} and "
                                f"{where}")
            seen[port] = where
            if taken(port):
                raise PortInUse(
                    f"host port {port} on 127.0.0.1, published by {where}, is already in use; "
                    f"free it, or use --set nodes.{node.name}.publish.{pname}=0 for any free port")


def _http_url(app: Container) -> str | None:
    """GitLab's address on the host, from the app container; None if it publishes no HTTP."""
    port = app.published_port(HTTP_PORT)
    return None if port is None else f"http://127.0.0.1:{port}"


class RunningLab:
    """A handle on a rendered (and maybe running) lab."""

    def __init__(self, rendered: RenderedLab, *, leave_up: bool = True,
                 clock: Clock | None = None) -> None:
        self.rendered = rendered
        self.lab: Lab = rendered.lab
        self.name: str = rendered.lab.name
        self.path: Path = rendered.path
        self.leave_up = leave_up  # what the end of a `with` block does: leave it up, or down
        self.clock = clock or Clock()
        self._compose: Compose | None = None
        # The containers listed at the start of the current readiness poll round (or of
        # apply's changes in place); every probe (exec) of it uses them instead of listing again.
        self._round: dict[str, Container] | None = None
        # When the poll rounds began to list no container for a node (see _watch).
        self._unlisted: dict[str, float] = {}
        # Everything this handle shows (exec errors, logs, readiness log tails) passes it:
        # the lab's secrets and the shapes of others; apply adds new secrets.
        self.redactor = Redaction()
        self.redactor.learn(rendered.secrets, rendered.lab)
        self.last_actions: NodeActions | None = None  # what the latest apply did, and why

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {str(self.path)!r})"

    # --- the engine (lab.lifecycle.swarm overrides these for a swarm) ---
    @classmethod
    def check_engine(cls) -> None:
        """Say before anything starts what this engine lacks (here: a Compose tool)."""
        detect()  # the result is cached for RunningLab.compose

    def start(self, *, timeout: float | None = None,
              progress: Progress | None = None) -> list[str]:
        """Start the rendered lab's nodes; the readiness layers it waited for on the way
        (the wait for the rest comes after, ``wait_ready(passed=...)``).

        A Gitaly Cluster lab starts in the order GitLab's docs set one up: its PostgreSQL
        node, Praefect's role and database there once it is up, then Praefect and its
        schema (``layers.praefect_setup_layers``, waited for here within ``timeout``):
        Praefect pings its database as it starts and exits when it is not there (Gitaly
        ``initDatabase``). The Gitaly nodes need neither, and start right after the
        database node, while PostgreSQL (or Omnibus' reconfigure, minutes) starts. So does
        the app on Omnibus; on the sim, whose nodes boot within a second, the app starts
        last, while Praefect's first health check is a tick (1 s) away, where its boot's
        CPU delays nobody (before Praefect: 0.6 s later ready, measured). One group at a
        time: the engine starts containers one after another anyway, and an exec meanwhile
        waits its turn (tried: a Compose run beside the database wait slowed both)."""
        db = [n.name for n in self.lab.nodes if n.is_postgres]
        setup: list[Layer] = []
        if db:
            from lab.lifecycle.layers import praefect_setup_layers

            setup = praefect_setup_layers(self)
        if not setup:
            self.compose.run(self.compose.up_cmd(), timeout=COMPOSE_UP_TIMEOUT,
                             redact=self.redactor)
            return []
        praefects = [n.name for n in self.lab.praefect_nodes]
        others = [n.name for n in self.lab.nodes if n.name not in (*db, *praefects)]
        last = [self.lab.app.name] if self.lab.flavor is Flavor.SIM else []
        began = self.clock.now()
        whole = default_timeout(self.lab) if timeout is None else timeout
        database, migrated = setup
        started: list[str] = []
        passed: list[str] = []
        for group, then in ((db, None), ([n for n in others if n not in last], database),
                            (praefects, migrated), (last, None)):
            if group:
                self.compose.run(self.compose.up_cmd(group, no_deps=True),
                                 timeout=COMPOSE_UP_TIMEOUT, redact=self.redactor)
                started += group
            if then is not None:
                self._wait([then], timeout=max(1.0, whole - (self.clock.now() - began)),
                           progress=progress, watching=started)
                passed.append(then.name)
        return passed

    def __enter__(self) -> RunningLab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.leave_up:
            self.down()

    # --- addressing ---
    @property
    def compose(self) -> Compose:
        if self._compose is None:
            self._compose = Compose(detect(), self.lab.project_name, self.path)
        return self._compose

    @property
    def labels(self) -> dict[str, str]:
        """The labels every resource of this lab carries: name, folder and owner ids."""
        return lab_labels(self.lab, str(self.path), owner=self.rendered.owner)

    @property
    def admin_token(self) -> str:
        return self.rendered.secrets.admin_token

    @property
    def admin_token_file(self) -> Path:
        return self.path / ADMIN_TOKEN

    @property
    def client(self) -> GitLab:
        """A client of this lab as its admin: ``.api`` (REST) and ``.git`` (git over HTTP)."""
        from lab.client.gitlab import GitLab  # requests, only when asked

        return GitLab.connect(self.http_url, self.admin_token)

    def _node(self, node: str) -> Node:
        try:
            return self.lab.node(node)
        except KeyError:
            names = ", ".join(n.name for n in self.lab.nodes)
            raise BadInput(f"lab {self.name!r} has no node {node!r}; nodes: {names}") from None

    def _containers(self) -> dict[str, Container]:
        out: dict[str, Container] = {}
        for c in dk.containers(self.labels):
            node = c.node
            # A container being replaced by Compose may linger for a moment; prefer the live one.
            if node and (node not in out or c.status == "running"):
                out[node] = c
        return out

    def container(self, node: str) -> Container:
        """The node's container, as listed (and inspected) just now or this poll round."""
        self._node(node)
        live = self._round if self._round is not None else self._containers()
        c = live.get(node)
        if c is None:
            raise BadInput(f"node {node!r} of lab {self.name!r} has no container; is the lab up? "
                           f"(`lab status {self.name}`, `lab up`)")
        return c

    def how_to_run(self, node: str, container: Container) -> str:
        """What brings a node whose container is not running back, for a message."""
        return {"paused": f"`docker unpause {container.name}`",
                "created": f"`docker start {container.name}`",
                "exited": f"`docker start {container.name}`"}.get(
                    container.status, f"`lab down {self.name}`, then `lab up`")

    @property
    def http_url(self) -> str:
        app = self.lab.app.name
        url = _http_url(self.container(app))
        if url is None:
            raise BadInput(f"the app node {app!r} publishes no HTTP port; add "
                           f"`publish: {{http: 0}}` to it (or --set nodes.{app}.publish.http=0)")
        return url

    # --- acting on nodes ---
    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result:
        return dk.exec_in(self.container(node), cmd, check=check, timeout=timeout,
                          redact=self.redactor)

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        return dk.logs(self.container(node), tail=tail, since=since, redact=self.redactor)

    def follow_logs(self, node: str, *, tail: int = 200,
                    since: str | None = None) -> Iterator[str]:
        """The node's log lines as they come (redacted); ends when its container stops."""
        return dk.follow_logs(self.container(node), tail=tail, since=since,
                              redact=self.redactor)

    def exec_attached(self, node: str, cmd: list[str], *, tty: bool) -> NoReturn:
        """Hand this process over to `docker exec` in ``node``: the user's terminal runs
        ``cmd`` and its exit code is ours."""
        dk.exec_attached(self.container(node), cmd, tty=tty)

    def _network(self) -> Network:
        nets = dk.networks(self.labels)
        if not nets:
            raise BadInput(f"lab {self.name!r} has no network; is it up?")
        return nets[0]

    def act(self, node: str, verb: str) -> None:
        """Run a fault verb on ``node``: stop, pause, disconnect, their undos (see faults)."""
        from lab.lifecycle import faults

        faults.verb(verb).run(faults.NodeTarget(node, self.container(node), self._network))

    # --- changing the lab ---
    def apply(self, new_lab: Lab, *, timeout: float | None = None,
              progress: Progress | None = None, wait_gitaly: bool = True,
              docker_health: bool = False) -> list[str]:
        """Re-render in place (secrets kept) and change only the nodes that need it.

        As an admin would: a node whose gitlab.rb or gitlab-secrets.json changed runs
        `gitlab-ctl reconfigure` in its running container (Omnibus restarts the
        services whose configuration changed); a changed container (image, ports,
        environment, networks) is recreated, and files read only at start restart the
        node (``lab.lifecycle.node_actions``). Then waits as `wait_ready` does
        (``wait_gitaly``, ``docker_health`` as there). Returns the touched nodes.
        """
        from lab.lifecycle.node_actions import Action, apply_actions

        if new_lab.name != self.name:
            new_lab = replace(new_lab, name=self.name)
        d = str(self.path)
        # The state the lab is in, as rendered (render_files only for a handle that did not
        # render it itself: lab.store.labdir.RenderedLab.contents).
        old_image, old_owner = self.rendered.image, self.rendered.owner
        old_files = self.rendered.contents or {f.path: f.content for f in render_files(
            self.lab, self.rendered.secrets, old_image, d, old_owner)}
        old_services = compose_dict(self.lab, old_image, d, old_owner)["services"]
        image = image_for(new_lab)
        ensure_image(new_lab, image, progress)
        reclaim(self.path, image, self.labels)
        rendered = write_lab(new_lab, self.path, image=image)
        LabFolder(self.path).save_spec(new_lab)
        # What the toolkit renders, not what is on disk: gitlab-secrets.json there also
        # holds what each node's reconfigure added, which is no reason to change it.
        new_files = dict(rendered.contents)
        new_services = compose_dict(new_lab, image, d, rendered.owner)["services"]
        todo = apply_actions(old_services, new_services, old_files, new_files,
                          version=new_lab.version,
                          gitaly_nodes={n.name for n in new_lab.nodes if n.is_gitaly},
                          app_nodes={n.name for n in new_lab.nodes if n.is_app},
                          source_nodes={n.name for n in new_lab.nodes if n.from_source})
        self.rendered, self.lab = rendered, new_lab
        self.redactor.learn(rendered.secrets, new_lab)
        self.last_actions = todo
        recreate = todo.names(Action.RECREATE)
        anew = [a.node for a in todo.nodes if a.anew]
        if anew:
            live = self._containers()
            for node in anew:
                if node in live:
                    dk.remove_container(live[node])
        if recreate or todo.names(Action.REMOVE):
            # --no-deps: only these nodes; --remove-orphans drops removed nodes.
            self.compose.run(self.compose.up_cmd(recreate, no_deps=True),
                             timeout=COMPOSE_UP_TIMEOUT, redact=self.redactor)
        in_place = [a for a in todo.nodes if a.action in (Action.RECONFIGURE, Action.RESTART)]
        done = self._in_place_all(in_place)
        restart = [a.node for a in in_place if a.node not in done]
        if restart:
            # The files are bind-mounted; the image's wrapper reconfigures on start.
            self.compose.run(self.compose.restart_cmd(restart), timeout=COMPOSE_UP_TIMEOUT,
                             redact=self.redactor)
        if todo.changed or todo.names(Action.REMOVE):
            # Only the nodes whose container was recreated or restarted are asked whether
            # their services run: the untouched ones were up and nothing of theirs changed,
            # gitlab-ctl exits 0 only after Chef's run or runit's restart, and a source
            # node's init script only once its services listen again. The lab-wide
            # layers (containers running, Gitaly storages) prove the lab serves, as always;
            # the database layers run again only if one of their nodes was touched, and the
            # app's own (app ready, admin token) only if the app node was (wait_ready says
            # why; "app ready" is asked whenever it includes the app's view of Gitaly).
            self.wait_ready(timeout=timeout, progress=progress, wait_gitaly=wait_gitaly,
                            docker_health=docker_health,
                            services_of=[n for n in todo.changed if n not in done],
                            setup_of=todo.changed, app_of=todo.changed)
        return todo.changed

    def _in_place_all(self, actions: list[NodeAction]) -> set[str]:
        """Each node's change in its running container, side by side (each waits on its own
        node, as an admin with a terminal per node would); the nodes where it succeeded."""
        if not actions:
            return set()
        # One listing for every exec of this phase (each looked again: a listing and an
        # inspect per node, per exec): a change in place keeps each container, and an exec
        # into one that is not running fails as it did (then the caller restarts it).
        self._round = self._containers()
        try:
            with ThreadPoolExecutor(max_workers=len(actions), thread_name_prefix="apply") as ex:
                return {a.node for a, ok in zip(actions, ex.map(self._in_place, actions),
                                                strict=True) if ok}
        finally:
            self._round = None

    def _in_place(self, action: NodeAction) -> bool:
        """A reconfigure, or a reconfigure and a restart of the node's services (reconfigure
        links a new trusted CA and applies gitlab.rb; the restart makes the services read
        the files they read only at start; no reconfigure when nothing it reads changed);
        False: do it by restarting the container.

        A node installed from source has no gitlab-ctl: its services restart through the
        install guide's init script, which reads its files again; where that fails (files
        its services cannot start on), the container restart shows why at boot.
        """
        from lab.lifecycle.node_actions import Action

        if action.action is Action.RESTART and self._node(action.node).from_source:
            return self._ran(action.node, service_restart_cmd())
        if action.action is Action.RECONFIGURE:
            return self._reconfigure(action.node)
        return self._ran(action.node, reconfigure_then_restart_cmd() if action.reconfigure
                         else restart_cmd())

    def _reconfigure(self, node: str) -> bool:
        """`gitlab-ctl reconfigure` in the node's running container; False: it failed there.

        A failed reconfigure leaves a running node on its old configuration, where a
        boot (the image's wrapper under `set -e`) ends the container; the caller
        restarts such a node so that it fails as it would at boot, and readiness says why.
        """
        return self._ran(node, reconfigure_cmd())

    def _ran(self, node: str, cmd: list[str]) -> bool:
        """``cmd`` succeeded in the node's running container (False: it failed, or the
        container is not running, where a fault left it stopped: a restart starts it)."""
        try:
            res = self.exec(node, cmd, check=False, timeout=COMPOSE_UP_TIMEOUT)
        except LabError:
            return False
        return res.returncode == 0

    # --- readiness ---
    def _watch(self, watching: Collection[str] | None = None) -> None:
        live = self._round = self._containers()
        for node in self.lab.nodes:
            if watching is not None and node.name not in watching:
                continue
            c = live.get(node.name)
            if c is None:
                # One listing can miss a container the engine is still starting (seen once
                # with Compose v2 right after `up -d`); missing for a while, it is gone.
                since = self._unlisted.setdefault(node.name, self.clock.now())
                if self.clock.now() - since >= UNLISTED_SECONDS:
                    raise NotReady(node.name, "its container is gone (removed from outside?)")
                continue
            self._unlisted.pop(node.name, None)
            self._check_alive(node, c)

    def _check_alive(self, node: Node, c: Container) -> None:
        """NotReady, with the node's log tail, when its container has ended."""
        st = c.state
        if st.gone:
            from lab.lifecycle.layers import log_since_start

            oom = " (killed: out of memory)" if st.oom_killed else ""
            # The image's wrapper runs under `set -e`: a failed reconfigure ends it.
            during = " during `gitlab-ctl reconfigure`" if exited_during_reconfigure(
                log_since_start(c, redact=self.redactor)) else ""
            raise NotReady(node.name, f"container exited{during} with code "
                           f"{st.exit_code}{oom}", dk.log_tail(c, redact=self.redactor),
                           hint=f"its config: nodes/{node.name}/gitlab.rb in {self.path} "
                           "(a failed `lab up` removes a new lab's folder; `--keep` leaves "
                           "lab and folder to look at); full log: "
                           f"`lab logs {node.name} --lab {self.name}`")

    def _log_tail(self, node: str) -> str:
        try:
            return dk.log_tail(self.container(node), redact=self.redactor)
        except LabError:
            return ""

    def layers(self, *, wait_gitaly: bool = True, docker_health: bool = False,
               progress: Progress | None = None) -> list[Layer]:
        """The readiness layers ``wait_ready`` passes (``lab.lifecycle.layers``)."""
        from lab.lifecycle.layers import readiness_layers

        return readiness_layers(self, wait_gitaly=wait_gitaly, docker_health=docker_health)

    def wait_ready(self, *, timeout: float | None = None, progress: Progress | None = None,
                   wait_gitaly: bool = True, docker_health: bool = False,
                   services_of: Collection[str] | None = None,
                   setup_of: Collection[str] | None = None,
                   app_of: Collection[str] | None = None,
                   passed: Collection[str] = ()) -> ReadyReport:
        """Wait layer by layer; ``docker_health=True`` also waits for Docker's health status;
        ``services_of``: the "services up" layer asks these nodes only (default: all);
        ``setup_of``: the one-time setup layers (``layers.SETUP_LAYERS``) run only when one
        of their nodes is among these (default: always); ``app_of``: the layers that ask
        the app about itself (``layers.APP_LAYERS``) run only when the app node is among
        these (default: always), except that "app ready" always runs with ``wait_gitaly``,
        where it also asks the app's view of Gitaly; ``passed``: layers ``start`` already
        waited for (not asked again). A layer left with no probe is skipped.

        The toolkit's own probes decide readiness. Docker runs a container's first
        health check only after its interval (5 s), when the layers before it have
        already proved the node serves; the compose file keeps the check for people
        who run the lab by hand, but waiting for it would add those seconds to every
        `lab up` and every change.
        """
        from lab.lifecycle.layers import APP_LAYERS, APP_READY, SETUP_LAYERS, services_asked_of

        layers = self.layers(wait_gitaly=wait_gitaly, docker_health=docker_health,
                             progress=progress)
        if services_of is not None:
            layers = [services_asked_of(layer, services_of) for layer in layers]
        setup = {n for layer in layers if layer.name in SETUP_LAYERS for n in layer.probes}
        if setup_of is not None and not setup & set(setup_of):
            layers = [layer for layer in layers if layer.name not in SETUP_LAYERS]
        if app_of is not None and self.lab.app.name not in app_of:
            # The app's container, files and services are as they were when it last passed
            # these, so they would pass again: `/-/readiness` without ?all=1 is the app's
            # answer about itself (no other node's), and the token lives in the app's own
            # database. With wait_gitaly, "app ready" also asks the app's view of Gitaly,
            # which a changed Gitaly node changes (Rails' channel reconnects after a
            # restart, docs/fidelity.md): then it is asked.
            skip = set(APP_LAYERS) - ({APP_READY} if wait_gitaly else set())
            layers = [layer for layer in layers if layer.name not in skip]
        # "services up" of an apply whose nodes all changed in place asks nobody: its round
        # would only list the containers, which the next layer does anyway.
        layers = [layer for layer in layers if layer.probes and layer.name not in passed]
        return self._wait(layers, timeout=timeout, progress=progress)

    def _wait(self, layers: list[Layer], *, timeout: float | None, progress: Progress | None,
              watching: Collection[str] | None = None) -> ReadyReport:
        """``wait_layers`` on this lab; ``watching``: only these nodes must not be gone."""
        try:
            return wait_layers(layers,
                               timeout=default_timeout(self.lab) if timeout is None else timeout,
                               watch=functools.partial(self._watch, watching),
                               log_tail=self._log_tail, clock=self.clock,
                               interval=POLL_INTERVAL, first_interval=FIRST_POLL_INTERVAL,
                               progress=progress)
        finally:
            self._round = None  # outside a wait, every call looks again
            self._unlisted.clear()

    # --- inspection ---
    def status(self) -> LabStatus:
        from lab.lifecycle.status import LabStatus, NodeStatus

        live = self._containers()
        nodes = []
        for node in self.lab.nodes:
            c = live.get(node.name)
            if c is None:
                nodes.append(NodeStatus(node.name, tuple(r.value for r in node.roles), "missing",
                                        "", {}, tuple(s.name for s in node.storages), ""))
                continue
            nodes.append(NodeStatus(node.name, tuple(r.value for r in node.roles), c.status,
                                    c.state.health, dict(c.ports),
                                    tuple(s.name for s in node.storages), c.name))
        app = live.get(self.lab.app.name)
        url = None if app is None else _http_url(app)
        return LabStatus(self.name, self.path, self.lab.flavor.value, str(self.lab.version),
                         self.rendered.image, url, tuple(nodes), self.image_warning)

    @property
    def image_warning(self) -> str:
        """Said wherever this lab is reported when it is omnibus on the sim image."""
        return sim_posing(self.lab, self.rendered.image)

    # --- teardown ---
    def down(self, *, purge: bool = False) -> None:
        """Remove the lab's containers, network and volumes; with ``purge`` its directory too.

        Through the Engine API by label, not `compose down`: a lab's data goes with
        it, so a graceful stop buys nothing, and Compose's stop-then-remove one by
        one (plus starting the v1 tool) made `lab down` 1.75x slower than Compose.
        The labels also catch what Compose would not know (a node removed from the
        file, a crashed `up`), and they hold this lab's owner ids, so a same-named
        lab of another folder is never touched (Compose goes by project name alone).
        A folder ``purge`` could not delete raises ``Incomplete``.
        """
        which = self.labels
        if ID_LABEL in which:
            # By name and ids, not path: a copied or moved folder keeps its id, and its
            # resources may still name the old path.
            which = {k: v for k, v in which.items() if k != DIR_LABEL}
        _mark_down(self.path)
        sweep(which)
        state.clear_up_marker(self.path)
        if purge:
            # Root-owned leftovers of a boot (Omnibus writes into /etc/gitlab): give them
            # back first; purge says what still could not be deleted.
            with contextlib.suppress(LabError):
                reclaim(self.path, self.rendered.image, self.labels)
            LabFolder(self.path).purge()


# --- module API ----------------------------------------------------------------------

def _mark_down(path: Path) -> None:
    """Before the first resource goes: a `lab down` killed half-way leaves this marker (and
    what it had not removed yet) for `lab gc`, which finishes the job."""
    if ownership.is_own_folder(path):  # never into a folder that is not the toolkit's
        with contextlib.suppress(OSError):
            state.write_up_marker(path, "down")


# The handle class of each engine. Compose's is RunningLab; another engine's handle
# subclasses it and registers itself here when its module is imported (lab.lifecycle.swarm,
# which lab/lifecycle/__init__.py imports), so this module never imports it back: the import
# graph has no circle (tests/unit/test_import_graph.py).
HANDLES: dict[Engine, type[RunningLab]] = {Engine.COMPOSE: RunningLab}


def handle_class(lab: Lab) -> type[RunningLab]:
    """The handle for the lab's engine: Compose here, a stack on a swarm in lab.lifecycle.swarm."""
    return HANDLES[lab.engine]


def _existing_names() -> str:
    return ", ".join(state.lab_names()) or "none"


def attach(name: str) -> RunningLab:
    """A handle on the lab ``name`` from the state folder."""
    # A name, never a path: `lab down ../../x --purge` (or /x) would delete a lab folder
    # outside the state folder.
    path = state.lab_dir(name) if NAME_RE.match(name) else None
    if path is not None and state.is_link(name):
        # Never followed: `lab down NAME --purge` deleted the folder it pointed to.
        raise BadInput(f"{path} is a symbolic link, not a lab folder this toolkit made; "
                       f"nothing was touched. Remove the link itself (`rm {path}`), never "
                       "what it points to")
    if path is None or not state.is_lab_dir(path):
        raise LabNotFound(f"no lab named {name!r}; labs: {_existing_names()} — see `lab list`")
    # A manifest.json damaged or deleted by hand: the saved spec still says what the lab
    # is, so status, logs and `lab down` go on working (the next render writes it again).
    folder = LabFolder(path)
    manifest = folder.manifest() or {}
    try:
        lab = folder.lab()  # its message says: `lab down NAME --purge`, then start again
    except BadInput as exc:
        raise LabDamaged(str(exc)) from None
    if lab.name != name:
        # A lab folder copied (or renamed) by hand: it carries the other lab's name and id,
        # and its `lab down` would remove that lab (down goes by name and id).
        raise LabDamaged(f"the folder {path} holds lab {lab.name!r}, not {name!r} (copied or "
                         f"renamed by hand?); use `lab ... {lab.name}` for that lab, and "
                         f"`lab down {name} --purge` to delete this copy (it removes nothing "
                         f"of lab {lab.name!r})")
    try:
        sec = folder.secrets()
    except BadInput:
        raise LabDamaged(f"{path / SECRETS_STORE} is damaged; remove the lab with "
                         f"`lab down {name} --purge` and start it again") from None
    if sec is None:
        raise LabDamaged(f"lab {name!r} has no secrets in {path}; remove it with "
                         f"`lab down {name} --purge` and start it again")
    image = str(manifest.get("image") or image_for(lab))
    # files lists what a render wrote; attaching writes nothing, and nothing
    # after attach reads it (apply re-renders), so skip rendering every file.
    return handle_class(lab)(RenderedLab(lab=lab, path=path, secrets=sec, image=image,
                                         files=(), owner=folder.owner))


def down_damaged(name: str, *, purge: bool = False) -> Path:
    """`lab down` of a lab ``attach`` refuses as damaged (its .lab/ spec or secrets broken
    or deleted by hand): removes what carries its name and ids, or, with its id gone
    too, its name, folder and this state folder's id. Returns its folder."""
    path = state.lab_dir(name)
    owner = LabFolder(path).owner
    if ID_LABEL in owner:
        which = {LAB_LABEL: name, **owner}
    else:
        home = ownership.home_id(create=False)
        which = {LAB_LABEL: name, DIR_LABEL: str(path), **({HOME_LABEL: home} if home else {})}
    _mark_down(path)
    sweep(which)
    state.clear_up_marker(path)
    if purge:
        LabFolder(path).purge()
    return path


def up(lab: Lab, *, name: str | None = None, timeout: float | None = None,
       keep_on_failure: bool = False, progress: Progress | None = None,
       wait_gitaly: bool = True, clock: Clock | None = None,
       prepare: Callable[[RenderedLab], None] | None = None,
       for_run: bool = False) -> RunningLab:
    """Render ``lab`` into the state folder, start it, and wait until it is ready.

    ``prepare`` may edit the rendered lab directory before anything starts (a
    hand-broken gitlab.rb, an extra file). On failure or Ctrl-C everything
    started is removed, a folder this start made included, unless
    ``keep_on_failure`` (left up to be looked at, the user's from then on).
    ``for_run``: the lab is the toolkit's own (a scenario group's, see
    ``lab.store.ownership.FOR_RUN``): `lab gc` removes it, folder and all, once no
    process holds it. The handle takes the lab down at the end of a ``with`` block.
    """
    if name is not None and name != lab.name:
        if not NAME_RE.match(name):
            raise BadInput(f"invalid lab name {name!r} (lower-case letters, digits and -, "
                           "at most 40)")
        lab = replace(lab, name=name)
    if state.is_link(lab.name):
        raise BadInput(f"{state.lab_dir(lab.name)} is a symbolic link, not a lab folder; "
                       "nothing was touched. Remove the link itself, or pick another --name")
    not_runnable = source_not_runnable(lab)
    if not_runnable:
        raise BadInput(not_runnable)
    dk.check_reachable()  # Docker unreachable: say so before anything else
    handle_class(lab).check_engine()  # likewise no Compose tool, or no swarm
    path = state.lab_dir(lab.name)
    start = state.StartLock(lab.name)
    try:
        if not start.acquire(wait=False):
            holder = start.holder()
            raise LabBusy(f"a start of lab {lab.name!r} is in progress (PID {holder}); wait for "
                          "it, or pick another --name")
    except OSError as exc:
        raise BadInput(f"cannot use the state folder {state.labs_dir()}: {exc.strerror}; "
                       "make it writable by you, or set LAB_HOME") from None
    try:
        return _up(lab, path, timeout=timeout, keep_on_failure=keep_on_failure, progress=progress,
                   wait_gitaly=wait_gitaly, clock=clock, prepare=prepare, for_run=for_run)
    finally:
        start.release()


def _up(lab: Lab, path: Path, *, timeout: float | None, keep_on_failure: bool,
        progress: Progress | None, wait_gitaly: bool, clock: Clock | None,
        prepare: Callable[[RenderedLab], None] | None, for_run: bool) -> RunningLab:
    named = check_owner(lab.name, path)  # before touching anything
    new_folder = not state.is_lab_dir(path)
    home = ownership.home_id()
    # Without an id yet (a new folder, or ours deleted by hand), our state folder's
    # id and our path name our own leftovers.
    labels = lab_labels(lab, str(path), owner={**LabFolder(path).owner, HOME_LABEL: home or ""})
    # Ours among what check_owner just listed by the lab's name (``labels`` holds that name
    # too): the engine is not asked the same question again, as Docker filters by label.
    leftovers, networks, volumes = ([o for o in objs if dk.carries(o.labels, labels)]
                                    for objs in named[:3])
    if leftovers and state.is_lab_dir(path) and not state.interrupted_up(path) \
            and any(c.status in ("running", "paused", "restarting") for c in leftovers):
        raise LabAlreadyUp(f"lab {lab.name!r} is already up; `lab down {lab.name}` first, "
                           "or pick another --name")
    # The remains of a killed or failed run, or of an interrupted `lab down` (its network
    # and volumes without containers): Compose would reuse those volumes, old data and all.
    if leftovers or networks or volumes:
        sweep(labels)
    check_ports(lab)
    image = image_for(lab)
    ensure_image(lab, image, progress)
    posing = sim_posing(lab, image)
    if posing and progress is not None:
        progress.note(f"warning: {posing}")
    reclaim(path, image, labels)  # a second `lab up` of a name booted before
    rendered = write_lab(lab, path, image=image, home=home)
    try:
        # Both marks before the first resource exists: whom the lab is for (a new folder
        # is the start's own until it is ready) and that a start is under way.
        purpose = ownership.FOR_RUN if for_run else ownership.FOR_START if new_folder else None
        if purpose is not None or not ownership.made_record(lab.name).exists():
            ownership.mark_made(lab.name, rendered.owner.get(ID_LABEL, ""),
                            purpose or ownership.made_for(lab.name))
        LabFolder(path).save_spec(lab)
        state.write_up_marker(path)
    except OSError as exc:
        raise BadInput(f"cannot write the lab folder {path}: {exc.strerror}; make it "
                       "writable by you") from None
    running = handle_class(lab)(rendered, leave_up=False, clock=clock)
    composing = False
    try:
        if prepare is not None:
            prepare(rendered)
        # While Compose starts the containers this process only waits: load the readiness
        # layers and the gRPC stack their probes need now, not in the middle of polling.
        threading.Thread(target=_import_all, args=(WHILE_COMPOSING,), daemon=True).start()
        composing = True
        began = running.clock.now()
        whole = default_timeout(lab) if timeout is None else timeout
        passed = running.start(timeout=whole, progress=progress)
        composing = False
        running.wait_ready(timeout=max(1.0, whole - (running.clock.now() - began)),
                           progress=progress, wait_gitaly=wait_gitaly, passed=passed)
    except BaseException:
        if keep_on_failure:
            state.clear_up_marker(path)  # left up on purpose: not a killed run
            if not for_run:
                ownership.set_purpose(lab.name, ownership.FOR_YOU)
        else:
            # Keep the original error. down() clears the marker only once the lab
            # is gone, so a teardown that fails or is interrupted here leaves it,
            # and `lab gc` finishes the job after this process ends. A folder this
            # start made goes too (the toolkit's, never the user's).
            with contextlib.suppress(LabError, OSError):
                running.down()
                if composing:
                    # Compose was stopped mid-way (Ctrl-C): the engine still finishes a
                    # create it was sent, after that sweep. Look once more, so no network
                    # or container outlives the run where `lab gc` would not see it.
                    running.clock.sleep(CREATE_SETTLE_SECONDS)
                    running.down()
                if new_folder:
                    LabFolder(path).purge()
        raise
    if not for_run:
        ownership.set_purpose(lab.name, ownership.FOR_YOU)
    state.clear_up_marker(path)
    return running


def _import_all(modules: Collection[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def since_timestamp(since: str) -> int | float:
    """The unix time a logs ``--since`` (10m, 2h, 30s or a unix time) stands for; EngineError
    for anything else."""
    return dk.since_timestamp(since)
