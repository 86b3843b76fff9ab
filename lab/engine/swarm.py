"""Docker Swarm through the Engine API and the Docker CLI: stacks, services, tasks, objects.

A lab on a swarm is a stack: ``deploy`` runs `docker stack deploy` on the lab
folder's ``docker-stack.yml`` (the one subprocess here, as Compose is for
``lab.engine.compose``: the file stays the lab, runnable by hand, and the CLI
turns its files into secrets and configs). Everything else (services, tasks,
scaling, secrets, configs, nodes, the gateway container) goes through the SDK
client of ``lab.engine.docker``; SDK objects stay inside ``lab.engine``, callers
get the frozen snapshots below.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.engine.docker import engine_call, label_filters, sdk_client
from lab.engine.run import Redactor, run
from lab.engine.snapshots import Container
from lab.errors import EngineUnusable

# Tasks that ended: the node will not come back by itself (restart_policy: none).
ENDED = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")
DEPLOY_TIMEOUT = 600.0
# The gateway: a plain container on the manager, on the lab's overlay network, that
# forwards loopback ports of this machine to the lab's nodes (stdlib Python of the
# lab's own offline image: nothing pulled). One thread per direction per connection.
GATEWAY_PY = r"""
import socket, sys, threading

def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def serve(listen, host, port):
    server = socket.create_server(("0.0.0.0", listen))
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((host, port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()

for route in sys.argv[1:]:
    listen, host, port = route.split(":")
    threading.Thread(target=serve, args=(int(listen), host, int(port))).start()
print("gateway up:", " ".join(sys.argv[1:]), flush=True)
"""
GATEWAY_FIRST_PORT = 10000  # the gateway's own ports, one per route


@dataclass(frozen=True)
class SwarmNode:
    """A machine of the swarm."""

    id: str
    hostname: str
    role: str  # manager | worker
    state: str  # ready | down | ...
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> SwarmNode:
        spec = attrs.get("Spec") or {}
        return cls(str(attrs.get("ID", "")),
                   str((attrs.get("Description") or {}).get("Hostname", "")),
                   str(spec.get("Role", "")), str((attrs.get("Status") or {}).get("State", "")),
                   {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()})


@dataclass(frozen=True)
class Manager:
    """The engine this process talks to, as a swarm manager."""

    node_id: str
    hostname: str


@dataclass(frozen=True)
class Task:
    id: str
    node_id: str
    desired: str  # running | shutdown | ...
    state: str  # new pending assigned ... starting running complete failed rejected ...
    err: str  # why it failed or waits ("no suitable node ..."), "" if nothing
    container_id: str
    created: str
    exit_code: int | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Task:
        status = attrs.get("Status") or {}
        cstatus = status.get("ContainerStatus") or {}
        code = cstatus.get("ExitCode")
        return cls(str(attrs.get("ID", "")), str(attrs.get("NodeID", "")),
                   str(attrs.get("DesiredState", "")), str(status.get("State", "")),
                   str(status.get("Err", "") or ""), str(cstatus.get("ContainerID", "") or ""),
                   str(attrs.get("CreatedAt", "")), None if code is None else int(code))


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    replicas: int = 1
    # host port -> target port, what Swarm publishes (every interface of a machine)
    ports: dict[int, int] = field(default_factory=dict, hash=False)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Service:
        spec = attrs.get("Spec") or {}
        mode = spec.get("Mode") or {}
        replicas = int(((mode.get("Replicated") or {}).get("Replicas", 1)) or 0)
        ports = {int(p["PublishedPort"]): int(p["TargetPort"])
                 for p in ((attrs.get("Endpoint") or {}).get("Ports") or ())
                 if p.get("PublishedPort")}
        return cls(str(attrs.get("ID", "")), str(spec.get("Name", "")),
                   {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()},
                   replicas, ports)


@dataclass(frozen=True)
class SwarmObject:
    """A secret or a config."""

    kind: str  # secret | config
    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)


def _call(what: Sequence[str], fn: Any, *args: Any, **kwargs: Any) -> Any:
    with engine_call(*what):
        return fn(*args, **kwargs)


def manager() -> Manager:
    """This engine as a swarm manager; EngineUnusable, saying how to make one, if it is not."""
    info = _call(["info"], sdk_client().info)
    swarm = info.get("Swarm") or {}
    state = str(swarm.get("LocalNodeState", "inactive"))
    if state != "active":
        raise EngineUnusable(
            f"this Docker Engine is in no swarm (Swarm: {state}); `--engine swarm` deploys on "
            "a swarm manager: make a one-machine swarm with `docker swarm init "
            "--advertise-addr 127.0.0.1`, or point DOCKER_HOST (or `docker context use`) "
            "at a manager")
    if not swarm.get("ControlAvailable"):
        raise EngineUnusable(
            "this Docker Engine is a swarm worker; `--engine swarm` deploys from a manager: "
            "point DOCKER_HOST (or `docker context use`) at one (`docker node ls` there)")
    return Manager(str(swarm.get("NodeID", "")), str(info.get("Name", "")))


def in_swarm() -> bool:
    """Whether this engine takes part in a swarm (any role)."""
    info = _call(["info"], sdk_client().info)
    return str((info.get("Swarm") or {}).get("LocalNodeState", "inactive")) == "active"


def is_manager() -> bool:
    info = _call(["info"], sdk_client().info)
    swarm = info.get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def nodes() -> list[SwarmNode]:
    return [SwarmNode.from_attrs(n) for n in _call(["node", "ls"], sdk_client().api.nodes)]


def deploy(lab_dir: Path, stack_file: str, stack: str, redact: Redactor) -> None:
    """`docker stack deploy` of the lab folder's stack file (creates or updates it).

    ``--resolve-image never``: the images are local (offline ones, or loaded); asking a
    registry for a digest would fail here. ``--prune``: a node removed from the lab goes.
    """
    run(["docker", "stack", "deploy", "--resolve-image", "never", "--prune",
         "--compose-file", stack_file, stack], cwd=str(lab_dir), timeout=DEPLOY_TIMEOUT,
        redact=redact, hint="see the stack file in the lab folder")


def services(labels: Mapping[str, str]) -> list[Service]:
    found = _call(["service", "ls"], sdk_client().api.services, filters=label_filters(labels))
    return [Service.from_attrs(s) for s in found]


def tasks(service: Service) -> list[Task]:
    """The service's tasks, newest first (Swarm keeps a few ended ones)."""
    found = _call(["service", "ps", service.name], sdk_client().api.tasks,
                  filters={"service": service.id})
    return sorted((Task.from_attrs(t) for t in found), key=lambda t: t.created, reverse=True)


def current_task(service: Service, stale: Collection[str] = ()) -> Task | None:
    """The task Swarm wants running (else the newest), or None while it has none.

    ``stale``: ids of the tasks the service had when a new one was asked for (a scale-up,
    a forced update). Swarm lists the new task a moment after it answers, and until then
    an ended old one (kept in the task history) would pass for the node's.
    """
    found = [t for t in tasks(service) if t.id not in stale]
    return next((t for t in found if t.desired == "running"), found[0] if found else None)


def scale(service: Service, replicas: int) -> None:
    """Set the service's replicas (0 stops its node, 1 starts it with a new task)."""
    def update() -> None:
        svc = sdk_client().services.get(service.id)
        svc.scale(replicas)
    _call(["service", "scale", f"{service.name}={replicas}"], update)


def force_update(service: Service) -> None:
    """`docker service update --force`: a new task from the same spec (a restart)."""
    def update() -> None:
        svc = sdk_client().services.get(service.id)
        svc.force_update()
    _call(["service", "update", "--force", service.name], update)


def remove_service(service: Service) -> None:
    with engine_call("service", "rm", service.name, missing_ok=True):
        sdk_client().api.remove_service(service.id)


def objects(labels: Mapping[str, str]) -> list[SwarmObject]:
    """The secrets and configs carrying ``labels``."""
    api = sdk_client().api
    out = [SwarmObject("secret", str(s.get("ID", "")), str((s.get("Spec") or {}).get("Name", "")),
                       {str(k): str(v) for k, v in ((s.get("Spec") or {}).get("Labels")
                                                    or {}).items()})
           for s in _call(["secret", "ls"], api.secrets, filters=label_filters(labels))]
    out += [SwarmObject("config", str(c.get("ID", "")), str((c.get("Spec") or {}).get("Name", "")),
                        {str(k): str(v) for k, v in ((c.get("Spec") or {}).get("Labels")
                                                     or {}).items()})
            for c in _call(["config", "ls"], api.configs, filters=label_filters(labels))]
    return out


def remove_object(obj: SwarmObject) -> None:
    api = sdk_client().api
    remove = api.remove_secret if obj.kind == "secret" else api.remove_config
    with engine_call(obj.kind, "rm", obj.name, missing_ok=True):
        remove(obj.id)


def image_command(ref: str) -> list[str]:
    """What the image runs by itself: its entry point, then its command."""
    attrs = _call(["image", "inspect", ref], sdk_client().api.inspect_image, ref)
    config = attrs.get("Config") or {}
    return [str(c) for c in (config.get("Entrypoint") or []) + (config.get("Cmd") or [])]


def gateway_routes(targets: Sequence[tuple[str, int]]) -> list[str]:
    """``listen:host:port`` per target, each on a port of the gateway's own."""
    return [f"{GATEWAY_FIRST_PORT + i}:{host}:{port}" for i, (host, port) in enumerate(targets)]


def run_gateway(image: str, name: str, network: str, routes: Sequence[str],
                host_ports: Sequence[int], labels: Mapping[str, str]) -> Container:
    """Start the gateway container: each route's listen port published on 127.0.0.1 only
    (``host_ports``: 0 = any free port), the ordinary way (not through Swarm)."""
    ports: dict[str, tuple[str, int | None]] = {
        f"{route.split(':')[0]}/tcp": ("127.0.0.1", port or None)
        for route, port in zip(routes, host_ports, strict=True)}

    def start() -> Any:
        return sdk_client().containers.run(
            image, ["-c", GATEWAY_PY, *routes], entrypoint=["python3"], name=name,
            detach=True, labels=dict(labels), network=network, ports=ports,
            restart_policy={"Name": "no"})
    shown = ["run", "-d", "--name", name, "--network", network, image, "python3", "-c", "..."]
    c = _call(shown, start)
    return Container.from_attrs(_call(["inspect", name], sdk_client().api.inspect_container, c.id))


def service_logs(service: Service, *, tail: int | None = 200, since: int | float | None = None,
                 timestamps: bool = False) -> str:
    """The service's log through the manager, from whichever machine runs its task."""
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": timestamps,
                              "tail": "all" if tail is None else tail}
    if since is not None:
        kwargs["since"] = since
    data = _call(["service", "logs", service.name], sdk_client().api.service_logs, service.id,
                 **kwargs)
    return b"".join(data).decode(errors="replace")


# What `docker swarm init` adds to an engine besides the swarm: `ingress` goes with the
# leave, `docker_gwbridge` stays unless removed.
SWARM_NETWORKS = ("docker_gwbridge", "ingress")


def _network_names() -> set[str]:
    return {str(n.get("Name", "")) for n in _call(["network", "ls"], sdk_client().api.networks)}


@contextlib.contextmanager
def one_machine_swarm() -> Iterator[bool]:
    """A swarm on this engine for the block (tests, benchmarks): made only if the engine
    is in none (advertised on 127.0.0.1: no traffic leaves the machine), then left as it
    was found, the networks the swarm made removed. Yields whether it made one."""
    if in_swarm():
        yield False
        return
    before = _network_names()
    run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"])
    try:
        yield True
    finally:
        run(["docker", "swarm", "leave", "--force"])
        for name in sorted((_network_names() - before) & set(SWARM_NETWORKS)):
            run(["docker", "network", "rm", name])
