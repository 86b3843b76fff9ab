"""docker-compose.yml for a lab: one service per node, one network, labelled everything.

The same file serves both flavours; only the image differs. Each service's shape
comes from the role's skeleton under ``skeletons/`` (plain Compose YAML a user can
read); this module fills in its placeholders and adds what the spec asks for.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from typing import Any

import yaml

from lab.errors import BadInput
from lab.model.labels import (
    DIR_LABEL,
    HOME_LABEL,
    ID_LABEL,
    LAB_LABEL,
    LABEL_PREFIX,
    NODE_LABEL,
    ROLE_LABEL,
)
from lab.model.topology import HTTP_PORT, Engine, Flavor, Lab, Node
from lab.omnibus.node import (
    IMAGE_HEALTH_INTERVAL,
    STOP_GRACE_PERIOD,
    healthcheck_cmd,
    node_services,
    status_cmd,
)
from lab.omnibus.release import VERSION_ENV, cng_gitaly_image_ref, omnibus_image_ref
from lab.omnibus.source_layout import (
    CONFIG_TOML,
    GIT_HOME,
    INSTALL_ENV,
    SYSTEM_CA_DIR,
    sim_listening_cmd,
    source_health_cmd,
)
from lab.resources import data_dir

__all__ = ["DIR_LABEL", "HOME_LABEL", "ID_LABEL", "LABEL_PREFIX", "LAB_LABEL", "NODE_LABEL",
           "ROLE_LABEL", "compose_dict", "dollars_escaped", "labels", "omnibus_image",
           "render_compose"]
NETWORK = "lab"
#: Where an Omnibus node has its folder of the lab (nodes/<node>): its config.
ETC_GITLAB = "/etc/gitlab"

APP_HEALTHCHECK = ["CMD", *healthcheck_cmd()]
# The image's own check marks a Gitaly-only container unhealthy before
# lab.omnibus.release.HEALTHCHECK_ROLE_AWARE, so Gitaly nodes get one that asks only
# about Gitaly.
GITALY_HEALTHCHECK = ["CMD", *status_cmd("gitaly")]
# The image's own pace (lab.omnibus.node) on both flavours. Readiness never waits for
# Docker's check on Compose (the toolkit's probes decide), and each check is an exec of
# ~0.1 s of CPU (dockerd, containerd, runc's init, then gitlab-ctl): at 15 s the sim's
# checks were 218 of the 753 execs of a seven-era run (stop 45). Swarm keeps a task
# "starting" until its first check passed, so there the sim checks every 5 s.
HEALTH_INTERVAL = {Flavor.SIM: IMAGE_HEALTH_INTERVAL, Flavor.OMNIBUS: IMAGE_HEALTH_INTERVAL}
SWARM_SIM_HEALTH_INTERVAL = "5s"
# The sim stops in Docker's 10 s.
STOP_GRACE = {Flavor.SIM: "10s", Flavor.OMNIBUS: STOP_GRACE_PERIOD}


def omnibus_image(lab: Lab) -> str:
    return omnibus_image_ref(lab.edition.value, str(lab.version))


def labels(lab: Lab, lab_dir: str, node: Node | None = None,
           owner: Mapping[str, str] | None = None) -> dict[str, str]:
    """``owner``: the lab's ownership labels (lab.store.ownership.lab_owner)."""
    out = {LAB_LABEL: lab.name, DIR_LABEL: lab_dir, **(owner or {})}
    if node is not None:
        out[NODE_LABEL] = node.name
        out[ROLE_LABEL] = ",".join(r.value for r in node.roles)
    return out


def _ports(node: Node) -> list[str]:
    out = []
    for name, host_port in node.publish:
        container = HTTP_PORT if name == "http" else node.gitaly_port
        # Always loopback: a lab is never reachable from the network.
        host = str(host_port) if host_port else ""
        out.append(f"127.0.0.1:{host}:{container}")
    return out


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@functools.cache
def skeleton(role: str) -> dict[str, Any]:
    """The service shape for ``role`` ("app" or "gitaly") from ``skeletons/<role>.yml``."""
    path = data_dir("skeletons") / f"{role}.yml"
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a Compose service (a mapping)")
    return data


def fill(template: Any, values: Mapping[str, Any], source: str = "skeleton") -> Any:
    """``template`` with each ``{name}`` replaced: a string that is only a placeholder
    takes the value itself (a mapping, a list), elsewhere its text."""
    def value(name: str) -> Any:
        if name not in values:
            raise BadInput(f"{source}: unknown placeholder {{{name}}} (known: "
                           f"{', '.join(sorted(values))})")
        return values[name]

    if isinstance(template, dict):
        return {fill(k, values, source): fill(v, values, source) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values, source) for v in template]
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return copy.deepcopy(value(whole[1]))
        return _PLACEHOLDER.sub(lambda m: str(value(m[1])), template)
    return template


def _healthcheck(lab: Lab, node: Node) -> list[str]:
    if node.is_app:
        return APP_HEALTHCHECK
    if node.is_gitaly:
        return GITALY_HEALTHCHECK
    # A Praefect or PostgreSQL node: the same kind of check, on its one service.
    service = node_services(lab.version, app=False, gitaly=False, praefect=node.is_praefect,
                            postgres=node.is_postgres)[0]
    return ["CMD", *status_cmd(service)]


def _service(lab: Lab, node: Node, image: str, lab_dir: str,
             owner: Mapping[str, str] | None) -> dict[str, Any]:
    # Every node but the app has the shape of a node of its own (compose/gitaly.yml).
    role = "app" if node.is_app else "gitaly"
    svc: dict[str, Any] = fill(skeleton(role), {
        "image": image,
        "node": node.name,
        "labels": labels(lab, lab_dir, node, owner),
        "healthcheck": _healthcheck(lab, node),
        "health_interval": (SWARM_SIM_HEALTH_INTERVAL
                            if lab.flavor is Flavor.SIM and lab.engine is Engine.SWARM
                            else HEALTH_INTERVAL[lab.flavor]),
        "stop_grace": STOP_GRACE[lab.flavor],
    }, f"skeletons/{role}.yml")
    svc["environment"] = {VERSION_ENV: str(lab.version)}
    if node.omnibus_config:
        # Omnibus evaluates this before /etc/gitlab/gitlab.rb, so the file wins.
        svc["environment"]["GITLAB_OMNIBUS_CONFIG"] = node.omnibus_config
    if node.from_source and node.gitaly_only:
        _source_gitaly(lab, node, svc)
    if node.from_source and node.is_app and lab.flavor is Flavor.SIM:
        _source_app(node, svc, trust=lab.any_tls and node.trust_ca)
    ports = _ports(node)
    if ports:
        svc["ports"] = ports
    return svc


def _source_gitaly(lab: Lab, node: Node, svc: dict[str, Any]) -> None:
    """A Gitaly node installed from source: its home folder (config.toml, the secret file)
    instead of /etc/gitlab, and no gitlab-ctl to ask about it.

    sim: the sim image plays the source node (INSTALL_ENV) and is asked with a TCP connect.
    omnibus: Cloud Native GitLab's Gitaly image runs its own Gitaly binary on the rendered
    config.toml (README, "Nodes installed from source", says what is not checked here).
    """
    svc["volumes"] = [f"./nodes/{node.name}{GIT_HOME}:{GIT_HOME}", *svc["volumes"][1:]]
    if lab.flavor is Flavor.SIM:
        _sim_source(svc)
        svc["healthcheck"]["test"] = ["CMD", *sim_listening_cmd(node.gitaly_port)]
        return
    svc["image"] = cng_gitaly_image_ref(str(lab.version))
    svc["command"] = ["/usr/local/bin/gitaly", CONFIG_TOML]
    del svc["healthcheck"]  # the image's own


def _source_app(node: Node, svc: dict[str, Any], *, trust: bool) -> None:
    """An app node installed from source, on the sim (no official image runs one): its
    home folder (gitlab.yml, .gitlab_shell_secret) instead of /etc/gitlab, and no
    gitlab-healthcheck (an Omnibus script): the health check asks the web server's
    /-/health from inside, as the monitoring whitelist allows."""
    svc["volumes"] = [f"./nodes/{node.name}{GIT_HOME}:{GIT_HOME}", *svc["volumes"][1:]]
    if trust:
        # The lab CA where the guide copies a Gitaly certificate for update-ca-certificates.
        svc["volumes"].append(f"./nodes/{node.name}/trusted-certs:{SYSTEM_CA_DIR}:ro")
    _sim_source(svc)
    svc["healthcheck"]["test"] = ["CMD", *source_health_cmd()]


def _sim_source(svc: dict[str, Any]) -> None:
    """The sim image playing a node installed from source, which has no /etc/gitlab.

    The image declares /etc/gitlab a volume, as GitLab's does, so a container that mounts
    nothing there would get an anonymous volume: one that no label names, which Compose
    hands from container to container when it recreates one. An empty tmpfs is what the
    image expects there and goes with its container. (A node changed between installs is
    created anew: ``lab.lifecycle.node_actions``.)"""
    svc["environment"][INSTALL_ENV] = "source"
    svc["volumes"].append({"type": "tmpfs", "target": ETC_GITLAB})


def _others(lab: Lab) -> list[Node]:
    """The nodes other than the app, in the file's order: Gitaly, then Praefect's database
    and Praefect.

    The app's service has no ``depends_on`` on them: Compose would start them first and
    the app only after, though the app needs none of them to boot (it dials Gitaly when a
    request needs it) and a started container is not a ready one anyway; all at once, a
    Gitaly Cluster lab's six containers start 0.2 s sooner."""
    return [*lab.external_gitaly_nodes, *(n for n in lab.nodes if n.is_postgres),
            *lab.praefect_nodes]


def compose_dict(lab: Lab, image: str, lab_dir: str,
                 owner: Mapping[str, str] | None = None) -> dict[str, Any]:
    ordered = _others(lab) + [n for n in lab.nodes if n.is_app]
    return {
        "services": {n.name: _service(lab, n, image, lab_dir, owner) for n in ordered},
        "networks": {NETWORK: {"labels": labels(lab, lab_dir, owner=owner)}},
        "volumes": {
            f"{n.name}-{kind}": {"labels": labels(lab, lab_dir, n, owner)}
            for n in ordered for kind in ("data", "logs")
        },
    }


def dollars_escaped(value: Any) -> Any:
    """``value`` with every ``$`` doubled: Compose reads ``$VAR``/``${VAR}`` in any string of
    the file as the host's variable and ``$$`` as one ``$``, so omnibus_config's Ruby (or a
    lab folder path with a ``$``) reaches the container as written."""
    if isinstance(value, dict):
        return {dollars_escaped(k): dollars_escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dollars_escaped(v) for v in value]
    return value.replace("$", "$$") if isinstance(value, str) else value


def render_compose(lab: Lab, image: str, lab_dir: str,
                   owner: Mapping[str, str] | None = None) -> str:
    header = (
        f"# Lab {lab.name!r}: GitLab {lab.version} ({lab.flavor.value} flavour), "
        "generated by gitlab-testlab.\n"
        f"# Run by hand: docker compose -p {lab.project_name} up -d   (in this folder)\n"
    )
    return header + yaml.safe_dump(dollars_escaped(compose_dict(lab, image, lab_dir, owner)),
                                   sort_keys=False, default_flow_style=False, width=1000)
