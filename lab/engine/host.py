"""Facts about this machine that labs depend on: free host ports, memory, the engine's reach."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something already listens on ``host:port`` (labs publish on loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: a port in TIME_WAIT is free for Docker, so it is free here too.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available for new work, or None where the kernel doesn't say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def containers_routable(engine_info: Callable[[], Mapping[str, Any]] | None = None) -> bool:
    """True if container addresses on a lab network can be dialled from this process.

    That holds for a local, rootful engine on Linux only: Docker Desktop runs
    containers in a VM, a remote engine (DOCKER_HOST=tcp:// or ssh://) on another
    machine, and rootless Docker or podman keep their networks in a user namespace
    the host can't route into, even though they answer on a local unix:// socket.
    ``engine_info``: the engine's `docker info` (its SecurityOptions say rootless).
    """
    host = os.environ.get("DOCKER_HOST", "")
    if not sys.platform.startswith("linux") or (host and not host.startswith("unix://")):
        return False
    if engine_info is None:
        from lab.engine import docker as dk  # late: host facts stay importable without Docker

        engine_info = dk.info
    try:
        info = engine_info()
    except Exception:
        return False
    return not engine_rootless(info)


def engine_rootless(info: Mapping[str, Any]) -> bool:
    """Whether `docker info` describes a rootless engine."""
    # Rootless Docker, and podman's Docker-compatible API when rootless, both list it.
    options = [str(o) for o in info.get("SecurityOptions") or []]
    return any("name=rootless" in o for o in options)
