"""A lab on Docker Swarm: the same rendered lab, deployed as a stack (``engine: swarm``).

``SwarmLab`` is the ``RunningLab`` of a swarm lab (registered in ``handle.HANDLES``, where
``handle.handle_class`` picks it).
What differs from Compose, and why:

- **Start**: ``lab.render.stack`` turns the lab's Compose services into
  ``docker-stack.yml`` (files as Swarm secrets and configs, /etc/gitlab a volume,
  an attachable overlay network); `docker stack deploy` runs it on the manager.
- **Reaching the lab**: nothing is published through Swarm (which binds every
  interface) unless ``swarm.publish``; a small gateway container on the manager,
  on the lab's overlay network, publishes the spec's ports on 127.0.0.1 only.
- **Readiness**: first every node's task is running (a task Swarm cannot place, or
  one that ended, fails the wait at once with Swarm's reason), then the same
  probes as on Compose; Gitaly is asked through the app (the host cannot route to
  the overlay network).
- **Nodes**: exec, logs and the container faults act on the task's container, on
  this machine; a task on another machine is reached through the manager for its
  log, and says where it runs for the rest. stop = scale to 0 (waited for),
  start = scale to 1, restart = a forced update (a new task), disconnect =
  detach the container from the overlay network, reconnect = a new task (Swarm
  sets up a task's networks when it starts). A node's new task has a new address,
  so the nodes that dial it (the app; a Praefect node for its Gitaly nodes) get new
  tasks too (their kept gRPC channels would dial the old one for up to 30 s).
- **Changes** (``apply``): the stack is deployed again; a node whose files or
  service changed gets a new task (it boots with the new files, data kept in its
  volumes); Swarm does not reconfigure inside a running container.
- **Down**: by label, as on Compose (``gc.sweep`` also removes services, secrets
  and configs on a manager).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lab.engine import docker as dk
from lab.engine import swarm as sw
from lab.engine.images import image_for
from lab.engine.snapshots import Container
from lab.errors import BadInput, EngineError, LabError, NotReady, ToolMissing
from lab.lifecycle.handle import HANDLES, UNLISTED_SECONDS, RunningLab
from lab.lifecycle.lab_image import ensure_image
from lab.lifecycle.readiness import Layer, Progress, Verdict
from lab.model.labels import GATEWAY_LABEL, NODE_LABEL
from lab.model.topology import HTTP_PORT, Engine, Flavor, Lab, Node
from lab.render.compose_file import NETWORK
from lab.store.lab_folder import LabFolder
from lab.store.labdir import RenderedFile, node_paths, render_files, write_lab
from lab.store.layout import PUBLIC, SECRET, write_file

if TYPE_CHECKING:
    from lab.lifecycle.status import LabStatus
    from lab.render.stack import StackFile

# lab.lifecycle imports this module with the package (it registers SwarmLab), so every
# command, `lab up` on Compose too, loads it: what only a swarm lab uses (its stack file,
# the readiness probes, faults, status) is imported where it is used (see lab.lifecycle.handle).

# How long a stopped node's task may take to end (Omnibus' stop grace is 120 s).
STOP_WAIT = 180.0
# Between looks at a service's tasks (waiting for one to end, or for a new one).
TASK_POLL = 0.2
# How long a scaled-up service may stay without a new task before it is updated by force
# (a new task arrives within a tenth of a second when Swarm takes the scale-up at once).
NEW_TASK_WAIT = 5.0
PUBLISH_WARNING = ("Swarm publishes a port on every interface of the machine running the "
                   "task (not only 127.0.0.1): the lab is reachable from the network")


def remote_hint(node: str, host: str) -> str:
    return (f"node {node!r} runs on swarm machine {host!r}, not this one; its container is "
            f"reached through that machine's engine, e.g. `docker -H ssh://{host} ps --filter "
            f"label={NODE_LABEL}={node}` and `docker -H ssh://{host} exec -it CONTAINER ...`")


def stack_files(files: Iterable[RenderedFile]) -> list[StackFile]:
    """Each node's /etc/gitlab files of a render: a secret when it holds a secret value
    (mode 0600: gitlab.rb with its token, gitlab-secrets.json; and the TLS key), else a
    config (certificates)."""
    from lab.render.stack import StackFile

    out: list[StackFile] = []
    for f in files:
        parts = f.path.split("/", 2)
        if parts[0] != "nodes" or len(parts) < 3:
            continue
        key = f.path == node_paths(parts[1]).key
        out.append(StackFile(f.path, f.content, f.mode, secret=f.mode == SECRET or key))
    return out


class SwarmLab(RunningLab):
    """A lab deployed as a stack on the swarm of this engine's manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: dict[str, sw.Task] = {}
        # node -> its service's task ids when a new task was asked for, until one shows
        self._stale: dict[str, frozenset[str]] = {}
        self._manager: sw.Manager | None = None

    # --- the engine ---
    @classmethod
    def check_engine(cls) -> None:
        sw.manager()
        if shutil.which("docker") is None:
            raise ToolMissing("docker", "`--engine swarm` deploys with `docker stack deploy`: "
                              "install the Docker CLI (Debian: apt-get install docker.io, or "
                              "docker-ce-cli) and put it on PATH")

    @property
    def manager(self) -> sw.Manager:
        if self._manager is None:
            self._manager = sw.manager()
        return self._manager

    @property
    def network_name(self) -> str:
        return f"{self.lab.project_name}_{NETWORK}"

    def _files(self, lab: Lab) -> list[StackFile]:
        return stack_files(render_files(lab, self.rendered.secrets, self.rendered.image,
                                        str(self.path), self.rendered.owner))

    def _stack(self) -> dict[str, Any]:
        from lab.render.stack import stack_dict

        image = self.rendered.image
        return stack_dict(self.lab, image, str(self.path), self._files(self.lab),
                          sw.image_command(image), self.rendered.owner)

    def start(self, *, timeout: float | None = None,
              progress: Progress | None = None) -> list[str]:
        """Deploy the lab as a stack: every node at once (Swarm has no start order; a
        Praefect started before its database exists is started again by its node's
        supervisor until it is there, as runit would), so no layer was waited for."""
        from lab.render.stack import STACK_FILE, render_stack

        image = self.rendered.image
        text = render_stack(self.lab, image, str(self.path), self._files(self.lab),
                            sw.image_command(image), self.rendered.owner)
        write_file(self.path / STACK_FILE, text, PUBLIC)
        sw.deploy(self.path, STACK_FILE, self.lab.project_name, self.redactor)
        self._gateway()
        return []

    # --- the gateway: the spec's ports on 127.0.0.1 ---
    def _routes(self) -> list[tuple[Node, str, int, int]]:
        """(node, port name, its port in the lab, host port: 0 = any) for each published port."""
        return [(n, pname, HTTP_PORT if pname == "http" else n.gitaly_port, host)
                for n in self.lab.nodes for pname, host in n.publish]

    def _gateway_container(self) -> Container | None:
        found = dk.containers({**self.labels, GATEWAY_LABEL: ""})
        return found[0] if found else None

    def _gateway(self) -> None:
        """Start (or replace) the gateway when the lab publishes ports and Swarm doesn't."""
        routes = [] if self.lab.swarm.publish else self._routes()
        spec = sw.gateway_routes([(n.name, port) for n, _, port, _ in routes])
        wanted = " ".join(spec)
        have = self._gateway_container()
        if have is not None and have.labels.get(GATEWAY_LABEL) == wanted and have.state.running:
            return
        if have is not None:
            dk.remove_container(have)
        if not routes:
            return
        sim = replace(self.lab, flavor=Flavor.SIM, image=None)
        image = image_for(sim)
        ensure_image(sim, image)
        sw.run_gateway(image, f"{self.lab.project_name}-gateway", self.network_name, spec,
                       [host for *_, host in routes], {**self.labels, GATEWAY_LABEL: wanted})

    def _gateway_ports(self) -> dict[str, dict[str, str]]:
        """Node -> {"80/tcp": "127.0.0.1:PORT"}: what the gateway publishes for it."""
        gw = self._gateway_container()
        if gw is None:
            return {}
        out: dict[str, dict[str, str]] = {}
        routes = gw.labels.get(GATEWAY_LABEL, "").split()
        for route in routes:
            listen, node, port = route.split(":")
            bound = gw.ports.get(f"{listen}/tcp")
            if bound:
                out.setdefault(node, {})[f"{port}/tcp"] = bound
        return out

    @property
    def http_url(self) -> str:
        app = self.lab.app
        if self.lab.swarm.publish:
            return super().http_url
        bound = self._gateway_ports().get(app.name, {}).get(f"{HTTP_PORT}/tcp")
        if bound is None:
            raise BadInput(f"the app node {app.name!r} publishes no HTTP port; add "
                           f"`publish: {{http: 0}}` to it (or --set nodes.{app.name}.publish."
                           "http=0)")
        return f"http://{bound}"

    # --- nodes: services, tasks, containers ---
    def _services(self) -> dict[str, sw.Service]:
        return {s.labels.get(NODE_LABEL, ""): s for s in sw.services(self.labels)}

    def _service(self, node: str) -> sw.Service:
        self._node(node)
        svc = self._services().get(node)
        if svc is None:
            raise BadInput(f"node {node!r} of lab {self.name!r} has no service; is the lab up? "
                           f"(`lab status {self.name}`, `lab up`)")
        return svc

    def _containers(self) -> dict[str, Container]:
        out: dict[str, Container] = {}
        tasks: dict[str, sw.Task] = {}
        for node, svc in self._services().items():
            task = sw.current_task(svc, self._stale.get(node, ()))
            if task is None:
                continue
            self._stale.pop(node, None)
            tasks[node] = task
            if task.container_id and task.node_id == self.manager.node_id:
                with contextlib.suppress(EngineError):  # removed meanwhile
                    out[node] = dk.inspect(task.container_id)
        self._tasks = tasks
        return out

    def _host_of(self, task: sw.Task) -> str:
        return next((n.hostname for n in sw.nodes() if n.id == task.node_id), task.node_id)

    def container(self, node: str) -> Container:
        self._node(node)
        live = self._round if self._round is not None else self._containers()
        c = live.get(node)
        if c is not None:
            return c
        task = self._tasks.get(node)
        if task is not None and task.node_id and task.node_id != self.manager.node_id:
            raise BadInput(remote_hint(node, self._host_of(task)))
        state = f"its task is {task.state}" if task is not None else "it has no task"
        svc = self._services().get(node)
        if svc is not None and svc.replicas == 0:
            raise BadInput(f"node {node!r} of lab {self.name!r} is stopped (its service is "
                           f"scaled to 0); run {self._scale_up_hint(svc)} first")
        raise BadInput(f"node {node!r} of lab {self.name!r} has no container here ({state}); "
                       f"see `lab status {self.name}`")

    @staticmethod
    def _scale_up_hint(svc: sw.Service) -> str:
        return f"`docker service scale {svc.name}=1`"

    def how_to_run(self, node: str, container: Container) -> str:
        """A paused task's container is unpaused as on Compose; an ended one is Swarm's to
        replace: starting it by hand (`docker start`) would run a container Swarm no longer
        manages, so its service is scaled back up (what the `start` fault does)."""
        if container.status == "paused":
            return super().how_to_run(node, container)
        return self._scale_up_hint(self._service(node))

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        try:
            return super().logs(node, tail=tail, since=since)
        except BadInput:
            task = self._tasks.get(node)
            if task is None or task.node_id == self.manager.node_id:
                raise
        # On another machine: the manager brings its log.
        text = sw.service_logs(self._service(node), tail=tail,
                               since=None if since is None else dk.since_timestamp(since))
        return self.redactor(text)

    # --- faults: Swarm's own where it has one ---
    def _scale_down(self, node: str) -> None:
        svc = self._service(node)
        sw.scale(svc, 0)
        deadline = time.monotonic() + STOP_WAIT
        # Scaling returns at once; a stopped node is one whose task has ended.
        while not all(t.ended for t in sw.tasks(svc)):
            if time.monotonic() >= deadline:
                raise NotReady(node, f"its task did not end within {STOP_WAIT:g}s of scaling "
                               "its service to 0")
            time.sleep(TASK_POLL)

    def _renew_dialers(self, renewed: list[str]) -> list[str]:
        """After nodes got new tasks (new addresses), new tasks for the nodes that dial
        them: the app (any node it talks to) and a Praefect node (its Gitaly nodes).

        They keep gRPC channels (Rails one per storage, the sim likewise), which would
        dial the old address until gRPC looks the name up again, at most every 30 s: on
        Compose a restarted container keeps its address, on Swarm a new task does not.
        Returns the nodes given new tasks here."""
        names = {n.name for n in self.lab.nodes}
        gone = [n for n in renewed if n in names]
        dialers: set[str] = set()
        for node in gone:
            if node != self.lab.app.name:
                dialers.add(self.lab.app.name)
            dialers |= {p.name for p in self.lab.nodes if node in p.backends}
        todo = sorted(dialers - set(renewed))
        for node in todo:
            sw.force_update(self._renewing(node))
        return todo

    def _renewing(self, node: str) -> sw.Service:
        """The node's service, its tasks so far noted as not the one to wait for."""
        svc = self._service(node)
        self._stale[node] = frozenset(t.id for t in sw.tasks(svc))
        return svc

    def _new_task(self, node: str) -> None:
        sw.force_update(self._renewing(node))
        self._renew_dialers([node])

    def _scale_up(self, node: str) -> None:
        svc = self._renewing(node)
        sw.scale(svc, 1)
        if not self._new_task_listed(node, svc):
            # Seen in CI: a service scaled 0 -> 1 got no task for minutes. With restart
            # condition none Swarm may count its slot's ended task as the replica
            # (moby/moby#35080); a forced update gives the slot a new task.
            sw.force_update(svc)
        self._renew_dialers([node])

    def _new_task_listed(self, node: str, svc: sw.Service) -> bool:
        """Whether Swarm lists a task the node's service did not have when it was renewed,
        within NEW_TASK_WAIT."""
        stale = self._stale.get(node, frozenset())
        deadline = self.clock.now() + NEW_TASK_WAIT
        while sw.current_task(svc, stale) is None:
            if self.clock.now() >= deadline:
                return False
            self.clock.sleep(TASK_POLL)
        return True

    def act(self, node: str, verb: str) -> None:
        from lab.lifecycle import faults

        v = faults.verb(verb)
        own: dict[str, Callable[[str], None]] = {
            "stop": self._scale_down,
            "start": self._scale_up,
            "restart": self._new_task,
            # Swarm attaches a task to its networks when the task starts; a container
            # connected again by hand would miss what Swarm set up (its name's record).
            "reconnect": self._new_task,
        }
        if v.name in own:
            own[v.name](node)
            return
        super().act(node, v.name)  # pause, disconnect and unpause: the task's container

    # --- readiness ---
    def _watch(self, watching: Collection[str] | None = None) -> None:
        live = self._round = self._containers()
        for node in self.lab.nodes:
            if watching is not None and node.name not in watching:
                continue
            task = self._tasks.get(node.name)
            if task is None and node.name in self._stale:
                continue  # a new task was asked for: Swarm lists it in a moment
            if task is None:
                since = self._unlisted.setdefault(node.name, self.clock.now())
                if self.clock.now() - since >= UNLISTED_SECONDS:
                    raise NotReady(node.name, "its service has no task (removed from outside?)")
                continue
            self._unlisted.pop(node.name, None)
            if task.state == "pending" and task.err:
                raise NotReady(node.name, f"Swarm cannot place its task: {task.err}",
                               hint="see `docker node ls` (machines, their labels) and the "
                               f"node's place (nodes.{node.name}.place, --place)")
            c = live.get(node.name)
            if task.ended and c is None:
                code = "" if task.exit_code is None else f" (exit code {task.exit_code})"
                raise NotReady(node.name, f"its task is {task.state}{code}: {task.err or '-'}",
                               self._log_tail(node.name))
            if c is not None:
                self._check_alive(node, c)

    def _task_running(self, node: str) -> Verdict:
        self.container(node)  # on this machine, or a clear message why not
        task = self._tasks.get(node)
        state = task.state if task is not None else "missing"
        return Verdict(state == "running", f"task {state}")

    def layers(self, *, wait_gitaly: bool = True, docker_health: bool = False,
               progress: Progress | None = None) -> list[Layer]:
        """As on Compose, but the first layer asks Swarm for each node's task, and Gitaly
        is asked from the app (the host cannot route to the overlay network). Praefect's
        database and schema come first: Swarm counts a task with a healthcheck running only
        once it passed one, and Praefect serves (and passes) only once they are there."""
        from lab.lifecycle.layers import PRAEFECT_DATABASE, PRAEFECT_MIGRATED, LabProbes

        out: list[Layer] = []
        given = super().layers(wait_gitaly=False, docker_health=docker_health)
        first = (PRAEFECT_DATABASE, PRAEFECT_MIGRATED)
        for layer in [*(x for x in given if x.name in first),
                      *(x for x in given if x.name not in first)]:
            if layer.name == "containers running":
                out.append(Layer("tasks running", {
                    n.name: functools.partial(self._task_running, n.name)
                    for n in self.lab.nodes}))
            elif layer.name == "gitaly storages":
                continue
            elif layer.name == "admin token" and wait_gitaly:
                out.append(Layer("gitaly storages",
                                 {self.lab.app.name: LabProbes(self).gitaly_from_app},
                                 hint="check the Gitaly node's log and the auth token settings"))
                out.append(layer)
            else:
                out.append(layer)
        return out

    # --- changing the lab ---
    def apply(self, new_lab: Lab, *, timeout: float | None = None,
              progress: Progress | None = None, wait_gitaly: bool = True,
              docker_health: bool = False) -> list[str]:
        """Re-render in place (secrets kept), deploy the stack again, wait for what changed.

        A node whose files or service changed gets a new task: it boots with the new
        files (its volumes kept), since a secret or config cannot change under a task.
        """
        if new_lab.name != self.name:
            new_lab = replace(new_lab, name=self.name)
        before = self._stack()
        image = image_for(new_lab)
        ensure_image(new_lab, image, progress)
        rendered = write_lab(new_lab, self.path, image=image)
        LabFolder(self.path).save_spec(new_lab)
        self.rendered, self.lab = rendered, new_lab
        self.redactor.learn(rendered.secrets, new_lab)  # as RunningLab.apply does
        after = self._stack()
        names = set(before["services"]) | set(after["services"])
        changed = sorted(n for n in names
                         if before["services"].get(n) != after["services"].get(n))
        self.last_plan = None
        if changed or before != after:
            # A changed entry changes the service's task spec or its endpoint, and either
            # gives it a new task (swarmkit orchestrator IsTaskDirty).
            for node in changed:
                if node in before["services"] and node in after["services"]:
                    with contextlib.suppress(BadInput):  # no service: nothing to renew
                        self._renewing(node)
            self.start()
            changed += self._renew_dialers(changed)
            self._prune_objects(after)
        if changed:
            self.wait_ready(timeout=timeout, progress=progress, wait_gitaly=wait_gitaly,
                            docker_health=docker_health)
        return [n for n in changed if n in after["services"]]

    def _prune_objects(self, stack: dict[str, Any]) -> None:
        """Secrets and configs of earlier files, which no service uses any more."""
        used = set(stack.get("secrets", {})) | set(stack.get("configs", {}))
        for obj in sw.objects(self.labels):
            if obj.name not in used:
                with contextlib.suppress(LabError):  # still in use by a task shutting down
                    sw.remove_object(obj)

    # --- inspection ---
    def status(self) -> LabStatus:
        st = super().status()
        published = {} if self.lab.swarm.publish else self._gateway_ports()
        nodes = []
        for n in st.nodes:
            task = self._tasks.get(n.node)
            if n.state == "missing" and task is not None:
                where = "" if task.node_id in ("", self.manager.node_id) else \
                    f" on {self._host_of(task)}"
                n = replace(n, state=f"task {task.state}{where}")
            if n.node in published:
                n = replace(n, ports={**n.ports, **published[n.node]})
            nodes.append(n)
        url = None
        with contextlib.suppress(LabError):
            url = self.http_url
        return replace(st, nodes=tuple(nodes), http_url=url)


HANDLES[Engine.SWARM] = SwarmLab
