"""docker-stack.yml for a lab on Docker Swarm: the Compose file, made to travel.

Pure. It starts from the lab's Compose services (``lab.render.compose``) and changes
only what a swarm needs: each node's ``/etc/gitlab`` files become Swarm secrets
(anything holding a secret value: gitlab.rb with its Gitaly token,
gitlab-secrets.json, TLS keys) and configs (certificates), so a task can run on
any machine; ``/etc/gitlab`` itself is a volume, as on a real server, which the
files are copied into at each start (``INSTALL_ETC``); the network is an
attachable overlay (encrypted on request); nothing is published unless the lab
asks for Swarm's publishing; placement constraints pin nodes to machines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from lab.model.labels import FILE_LABEL
from lab.model.topology import HTTP_PORT, Lab, Node
from lab.render.compose_file import ETC_GITLAB, NETWORK, compose_dict, dollars_escaped, labels

STACK_FILE = "docker-stack.yml"
# Where a task finds its node's files (Swarm mounts secrets and configs read-only)...
STAGE = "/run/gitlab-testlab/etc-gitlab"
# ...and what the entry point copies them into /etc/gitlab with before the image's own
# command: Omnibus writes there (gitlab-secrets.json on every reconfigure, host keys), so
# /etc/gitlab must be writable. A file is copied when the lab hands over a new version
# (what it copied last is kept beside, in .gitlab-testlab/), so what a node's
# reconfigure added to its gitlab-secrets.json stays until the lab changes the file, and
# a file the lab no longer hands over (secrets: none) is deleted, as an admin would.
INSTALL_ETC = f"""set -eu
stage={STAGE}
etc={ETC_GITLAB}
seen=$etc/.gitlab-testlab
mkdir -p "$seen"
(cd "$seen" && find . -type f) | while read -r f; do
  [ -e "$stage/$f" ] || rm -f "$etc/$f" "$seen/$f"
done
if [ -d "$stage" ]; then
  (cd "$stage" && find . -type f) | while read -r f; do
    if ! cmp -s "$stage/$f" "$seen/$f"; then
      mkdir -p "$(dirname "$etc/$f")" "$(dirname "$seen/$f")"
      cp -p "$stage/$f" "$etc/$f"
      cp -p "$stage/$f" "$seen/$f"
    fi
  done
fi
exec "$@"
"""
INSTALL_NAME = "install-etc-gitlab"  # the script's $0, shown by ps
MAX_OBJECT_NAME = 64  # Swarm's limit on a secret's or config's name
SHM_BYTES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class StackFile:
    """A file of the lab folder that a node needs in /etc/gitlab."""

    path: str  # relative to the lab folder: nodes/<node>/<path in /etc/gitlab>
    content: str
    mode: int
    secret: bool  # a Swarm secret (encrypted at rest in the swarm); else a config


def object_name(project: str, node: str, rel: str, content: str) -> str:
    """The swarm-wide name of a node file's secret or config: new content, new name
    (secrets and configs cannot change; a service switches to the new one)."""
    digest = hashlib.sha256(f"{node}\0{rel}\0{content}".encode()).hexdigest()
    stem = rel.replace("/", "-").replace("_", "-")
    name = f"{project}-{node}-{stem}-{digest[:10]}"
    if len(name) > MAX_OBJECT_NAME:
        name = f"{project[:MAX_OBJECT_NAME - 13]}-{digest[:12]}"
    return name


def placement(place: str) -> str:
    """A ``place`` (host name, or LABEL=VALUE of a node label) as a Swarm constraint."""
    key, sep, value = place.partition("=")
    return f"node.labels.{key}=={value}" if sep else f"node.hostname=={place}"


def _shm_bytes(size: str) -> int:
    text = str(size).strip().lower().removesuffix("b")
    unit = SHM_BYTES.get(text[-1:], 1)
    return int(text.rstrip("kmg")) * unit


def _ports(node: Node) -> list[dict[str, Any]]:
    """Swarm's publishing in host mode (the routing mesh needs virtual IPs): on every
    interface of the machine running the task."""
    out: list[dict[str, Any]] = []
    for name, host_port in node.publish:
        port: dict[str, Any] = {"target": HTTP_PORT if name == "http" else node.gitaly_port,
                                "protocol": "tcp", "mode": "host"}
        if host_port:
            port["published"] = host_port
        out.append(port)
    return out


def _service(lab: Lab, node: Node, svc: Mapping[str, Any], files: Sequence[StackFile],
             names: Mapping[str, str], command: Sequence[str]) -> dict[str, Any]:
    out = {k: v for k, v in svc.items()
           if k not in ("restart", "shm_size", "depends_on", "ports", "volumes")}
    out["entrypoint"] = ["/bin/sh", "-c", INSTALL_ETC, INSTALL_NAME]
    out["command"] = list(command)
    volumes: list[Any] = []
    for vol in svc.get("volumes", ()):
        if isinstance(vol, dict):  # a tmpfs (a node installed from source): travels as is
            volumes.append(vol)
            continue
        target = str(vol).partition(":")[2]
        # The node's folder was /etc/gitlab: now a volume of its own, filled at start.
        volumes.append(f"{node.name}-config:{target}" if target == ETC_GITLAB else vol)
    if "shm_size" in svc:
        volumes.append({"type": "tmpfs", "target": "/dev/shm",
                        "tmpfs": {"size": _shm_bytes(svc["shm_size"])}})
    out["volumes"] = volumes
    for kind, secret in (("secrets", True), ("configs", False)):
        refs = [{"source": names[f.path], "target": f"{STAGE}/{f.path.split('/', 2)[2]}",
                 "uid": "0", "gid": "0", "mode": f.mode}
                for f in files if f.secret is secret]
        if refs:
            out[kind] = refs
    deploy: dict[str, Any] = {
        # Each node's name resolves to its task's own address, as a Compose container's
        # does. (A virtual IP would stay across task changes, but Swarm drops it from
        # under open connections, and Rails' kept gRPC channels then hang.)
        "mode": "replicated", "replicas": 1, "endpoint_mode": "dnsrr",
        "labels": dict(svc.get("labels") or {}),
        # A lab never restarts a node by itself: a crash is evidence (Compose: restart: no).
        "restart_policy": {"condition": "none"},
        "update_config": {"order": "stop-first"},
    }
    if node.place is not None:
        deploy["placement"] = {"constraints": [placement(node.place)]}
    out["deploy"] = deploy
    if lab.swarm.publish and node.publish:
        out["ports"] = _ports(node)
    return out


def stack_dict(lab: Lab, image: str, lab_dir: str, files: Sequence[StackFile],
               command: Sequence[str], owner: Mapping[str, str] | None = None
               ) -> dict[str, Any]:
    """The stack file's content. ``files``: every ``nodes/<node>/...`` file of the lab;
    ``command``: what the image runs by itself (its entry point and command: Omnibus'
    ``/assets/wrapper``, ``/assets/init-container`` from 17.10), run after the copy."""
    base = compose_dict(lab, image, lab_dir, owner)
    names = {f.path: object_name(lab.project_name, f.path.split("/")[1],
                                 f.path.split("/", 2)[2], f.content) for f in files}
    services: dict[str, Any] = {}
    for name, svc in base["services"].items():
        node = lab.node(name)
        mine = [f for f in files if f.path.split("/")[1] == name]
        services[name] = _service(lab, node, svc, mine, names, command)
    network: dict[str, Any] = {"driver": "overlay", "attachable": True,
                               **base["networks"][NETWORK]}
    if lab.swarm.encrypt:
        network["driver_opts"] = {"encrypted": ""}
    volumes = dict(base["volumes"])
    for name in base["services"]:
        volumes[f"{name}-config"] = {"labels": labels(lab, lab_dir, lab.node(name), owner)}
    out: dict[str, Any] = {"version": "3.8", "services": services,
                           "networks": {NETWORK: network}, "volumes": volumes}
    for kind, secret in (("secrets", True), ("configs", False)):
        objs = {names[f.path]: {"file": f"./{f.path}", "name": names[f.path],
                                "labels": {**labels(lab, lab_dir, lab.node(f.path.split("/")[1]),
                                                    owner),
                                           FILE_LABEL: f"{ETC_GITLAB}/{f.path.split('/', 2)[2]}"}}
                for f in files if f.secret is secret}
        if objs:
            out[kind] = objs
    return out


def render_stack(lab: Lab, image: str, lab_dir: str, files: Sequence[StackFile],
                 command: Sequence[str], owner: Mapping[str, str] | None = None) -> str:
    header = (
        f"# Lab {lab.name!r} on Docker Swarm: GitLab {lab.version} ({lab.flavor.value} "
        "flavour), generated by gitlab-testlab.\n"
        f"# By hand, on a swarm manager, in this folder: docker stack deploy "
        f"--resolve-image never -c {STACK_FILE} {lab.project_name}\n"
    )
    return header + yaml.safe_dump(dollars_escaped(stack_dict(lab, image, lab_dir, files, command,
                                                              owner)),
                                   sort_keys=False, default_flow_style=False, width=1000)
