"""Facts about this machine that labs depend on: free host ports, memory, the engine's reach."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


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


def containers_routable() -> bool:
    """True if container addresses on a lab network can be dialled from this process.

    That holds for a local engine on Linux only: Docker Desktop runs containers in
    a VM, and a remote engine (DOCKER_HOST=tcp:// or ssh://) on another machine.
    """
    host = os.environ.get("DOCKER_HOST", "")
    return sys.platform.startswith("linux") and (not host or host.startswith("unix://"))
