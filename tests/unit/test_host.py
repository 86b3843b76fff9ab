"""Host facts: a port someone listens on is in use; memory from /proc/meminfo."""

from __future__ import annotations

import socket
from pathlib import Path

from lab.host import mem_available, port_in_use


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
