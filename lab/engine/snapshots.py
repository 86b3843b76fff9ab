"""What the engine hands upward: frozen snapshots of containers, networks, volumes, images.

Pure: each ``from_attrs`` reads the Engine API's inspect data (docker-py's
``.attrs``), ``Container.from_listing`` a container listing's row (no inspect: no exit
code, OOM flag or start time, which only a stopped container's snapshot needs), so the
rooms above never see a docker-py object and tests build these from plain dicts. A
snapshot does not change; ask the engine again (``lab.engine.docker.inspect``) for a
fresh one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.model.labels import NODE_LABEL


@dataclass(frozen=True)
class ContainerState:
    status: str  # created, running, paused, restarting, exited, dead
    exit_code: int
    health: str  # healthy, unhealthy, starting, or "" without a healthcheck
    oom_killed: bool = False
    started_at: str = ""  # RFC 3339 from the engine, "" if it never started (or not asked)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def gone(self) -> bool:
        """The container stopped on its own and will not come back (restart: no)."""
        return self.status in ("exited", "dead")

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ContainerState:
        st = attrs.get("State") or {}
        return cls(
            status=str(st.get("Status", "")),
            exit_code=int(st.get("ExitCode", 0) or 0),
            health=str((st.get("Health") or {}).get("Status", "")),
            oom_killed=bool(st.get("OOMKilled", False)),
            started_at=str(st.get("StartedAt", "") or ""),
        )


# The health in a listing's status text: "(healthy)", "(unhealthy)", "(health: starting)".
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str  # the reference it was created from
    state: ContainerState
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    # container port ("80/tcp") -> host address ("127.0.0.1:49153"), published ports only
    ports: dict[str, str] = field(default_factory=dict, hash=False)
    # network name -> this container's address on it ("" while it has none)
    networks: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def node(self) -> str:
        """The lab node (Compose service) it runs, or "" for a container of no lab."""
        return self.labels.get(NODE_LABEL, "")

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def ip(self) -> str | None:
        """Its address on the first network that gave it one."""
        return next((ip for ip in self.networks.values() if ip), None)

    def published_port(self, port: int) -> int | None:
        """The host port ``port``/tcp is published on, or None."""
        addr = self.ports.get(f"{port}/tcp")
        return int(addr.rsplit(":", 1)[1]) if addr else None

    @classmethod
    def from_listing(cls, row: Mapping[str, Any]) -> Container:
        """A row of the Engine API's container list (`docker ps`): all but the exit code,
        OOM flag and start time (ask ``lab.engine.docker.inspect`` for those); health from
        its status text ("Up 2 minutes (healthy)")."""
        ports: dict[str, str] = {}
        # IPv4 bindings first, as inspect lists them.
        for p in sorted(row.get("Ports") or (), key=lambda p: ":" in str(p.get("IP") or "")):
            if p.get("PublicPort"):
                ports.setdefault(f"{p.get('PrivatePort')}/{p.get('Type') or 'tcp'}",
                                 f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}")
        health = _HEALTH.search(str(row.get("Status") or ""))
        names = row.get("Names") or [""]
        net = row.get("NetworkSettings") or {}
        return cls(
            id=str(row.get("Id", "")),
            name=str(names[0]).lstrip("/"),
            image=str(row.get("Image", "")),
            state=ContainerState(status=str(row.get("State", "")), exit_code=0,
                                 health=health[1].removeprefix("health: ") if health else ""),
            labels=_labels(row.get("Labels")),
            ports=ports,
            networks={str(name): str((n or {}).get("IPAddress") or "")
                      for name, n in (net.get("Networks") or {}).items()},
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Container:
        config = attrs.get("Config") or {}
        net = attrs.get("NetworkSettings") or {}
        ports: dict[str, str] = {}
        for port, binds in (net.get("Ports") or {}).items():
            for b in binds or ():
                ports[str(port)] = f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}"
                break
        return cls(
            id=str(attrs.get("Id", "")),
            name=str(attrs.get("Name", "")).lstrip("/"),
            image=str(config.get("Image", "")),
            state=ContainerState.from_attrs(attrs),
            labels=_labels(config.get("Labels")),
            ports=ports,
            networks={str(name): str((n or {}).get("IPAddress") or "")
                      for name, n in (net.get("Networks") or {}).items()},
        )


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Network:
        return cls(str(attrs.get("Id", "")), str(attrs.get("Name", "")),
                   _labels(attrs.get("Labels")))


@dataclass(frozen=True)
class Volume:
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Volume:
        return cls(str(attrs.get("Name", "")), _labels(attrs.get("Labels")))


@dataclass(frozen=True)
class Image:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    size: int = 0  # bytes
    created: str = ""  # RFC 3339

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Image:
        config = attrs.get("Config") or {}
        return cls(str(attrs.get("Id", "")), tuple(str(t) for t in attrs.get("RepoTags") or ()),
                   _labels(config.get("Labels")), int(attrs.get("Size", 0) or 0),
                   str(attrs.get("Created", "")))
