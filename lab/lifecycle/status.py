"""What a lab and its nodes look like right now: the data `lab status` and `lab list` show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.store.layout import ADMIN_TOKEN
from lab.store.ownership import FOR_YOU


@dataclass(frozen=True)
class NodeStatus:
    node: str
    roles: tuple[str, ...]
    state: str  # running, exited, paused, ... or "missing" without a container
    health: str
    ports: dict[str, str]  # container port -> host address
    storages: tuple[str, ...]
    container: str

    @property
    def healthy(self) -> bool:
        # "starting": Docker has not run its first check yet (60 s after the start, the
        # image's pace; `lab up` does not wait for it); only "unhealthy" is a verdict.
        return self.state == "running" and self.health != "unhealthy"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "roles": list(self.roles), "state": self.state,
                "health": self.health, "healthy": self.healthy, "ports": self.ports,
                "storages": list(self.storages), "container": self.container}


@dataclass(frozen=True)
class LabStatus:
    name: str
    path: Path
    flavor: str
    version: str
    image: str
    http_url: str | None
    nodes: tuple[NodeStatus, ...]
    # Said when an omnibus lab runs the sim image (lab_image.sim_posing); "" otherwise.
    image_warning: str = ""

    @property
    def healthy(self) -> bool:
        return all(n.healthy for n in self.nodes)

    @property
    def admin_token_file(self) -> Path:
        return self.path / ADMIN_TOKEN

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "flavor": self.flavor,
                "version": self.version, "image": self.image, "http_url": self.http_url,
                "admin_token_file": str(self.admin_token_file), "healthy": self.healthy,
                "image_warning": self.image_warning or None,
                "nodes": [n.to_json() for n in self.nodes]}


@dataclass(frozen=True)
class LabSummary:
    name: str
    path: Path
    flavor: str
    version: str
    topology: str
    nodes: int
    running: int
    state: str  # up, partial, down, starting, stopping, interrupted, unknown
    # Whom the lab is for (lab.store.ownership.FOR_*); and the process holding it now,
    # if any.
    purpose: str = FOR_YOU
    held_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "flavor": self.flavor,
                "version": self.version, "topology": self.topology, "nodes": self.nodes,
                "running": self.running, "state": self.state, "for": self.purpose,
                "held_by": self.held_by or None}
