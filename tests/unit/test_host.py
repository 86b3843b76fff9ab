"""Host facts: a port someone listens on is in use; memory from /proc/meminfo; engine reach."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from lab.engine.host import containers_routable, mem_available, port_in_use


def test_port_in_use_sees_a_listener_and_not_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def test_mem_available_reads_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 2048 kB\nMemAvailable:    1024 kB\n")
    assert mem_available(meminfo) == 1024 * 1024
    meminfo.write_text("MemTotal: 2048 kB\n")
    assert mem_available(meminfo) is None
    assert mem_available(tmp_path / "missing") is None


def test_containers_routable_only_with_a_local_rootful_engine_on_linux(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rootful = {"SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"]}
    rootless = {"SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]}
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert containers_routable(lambda: rootful)
    # Rootless Docker and podman answer on a local socket, but their networks live
    # in a user namespace the host can't route into.
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert not containers_routable(lambda: rootless)
    assert containers_routable(lambda: rootful)

    def broken() -> dict[str, list[str]]:
        raise OSError("no engine")

    assert not containers_routable(broken)
    for remote in ("tcp://10.0.0.5:2376", "ssh://build@ci"):
        monkeypatch.setenv("DOCKER_HOST", remote)
        assert not containers_routable(lambda: rootful)
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setattr(sys, "platform", "darwin")  # Docker Desktop: containers in a VM
    assert not containers_routable(lambda: rootful)
