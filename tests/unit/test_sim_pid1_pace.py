"""PID 1's pace on a sim node: it wakes for what it acts on (a signal, a child's exit)
and for what it has due, not 20 times a second whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sim_run_state
from sim_run_state import Proc

from labsim.node import supervisor
from labsim.praefect import postgres
from labsim.web import app_server

sup = pytest.fixture(sim_run_state.supervisor_here)


def test_an_idle_node_looks_once_a_second(sup: supervisor.Supervisor) -> None:
    sup.children = {"gitaly": Proc(9)}  # type: ignore[dict-item]
    sup.started = {"gitaly": time.time() - 30}
    assert sup.next_tick() == pytest.approx(supervisor.IDLE_TICK, abs=0.05)


def test_what_is_due_sets_the_next_look(sup: supervisor.Supervisor) -> None:
    now = time.time()
    sup.up_pending = True  # services coming up: is each accepting connections yet?
    assert sup.next_tick() == pytest.approx(supervisor.UP_TICK, abs=0.02)
    sup.up_pending = False
    sup.spare_due = {"gitaly": now + 0.3}
    assert sup.next_tick() == pytest.approx(0.3, abs=0.05)
    # A service that ended 0.2 s after its start is started again at its first second's end.
    sup.spare_due = {}
    sup.children = {"gitaly": Proc(9, code=1)}  # type: ignore[dict-item]
    sup.started = {"gitaly": now - 0.2}
    assert not sup.restart_due("gitaly")
    assert sup.next_tick() == pytest.approx(supervisor.RESTART_AFTER - 0.2, abs=0.05)
    sup.started = {"gitaly": now - 1.5}
    assert sup.restart_due("gitaly")
    assert sup.next_tick() == 0


def test_a_child_s_exit_wakes_the_loop_at_once(sup: supervisor.Supervisor) -> None:
    sup.watch_children()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    began = time.monotonic()
    sup.wait(10.0)
    woke = time.monotonic() - began
    child.wait()
    assert woke < 5.0, f"slept {woke:.1f} s through the child's exit"


@pytest.fixture
def own_signals() -> Iterator[None]:
    """Handlers the code under test installs in this process, put back after."""
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                   signal.SIGCHLD)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)


def _signal_soon(sig: signal.Signals, after: float = 0.5) -> threading.Timer:
    """``sig`` to this process once the code under test has had time to take it over
    (before, pytest's own handler would get it)."""
    timer = threading.Timer(after, os.kill, (os.getpid(), sig))
    timer.start()
    return timer


def test_the_web_server_ends_at_its_stop_signal(own_signals: None) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        _signal_soon(signal.SIGTERM)
        began = time.monotonic()
        app_server.serve_until_stopped(server)  # without its handler, SIGTERM ends pytest
        assert time.monotonic() - began < 5.0
    finally:
        server.server_close()


def test_the_database_wrapper_wakes_when_postgres_exits(own_signals: None) -> None:
    said: list[str] = []
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    began = time.monotonic()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(postgres, "log", said.append)
        assert postgres.watch(proc) == 1
    # Woken by postgres' exit, not at its next look (IDLE_LOOK, 5 s).
    assert time.monotonic() - began < postgres.IDLE_LOOK - 1
    assert said == ["postgres exited with 0"]


def test_the_database_wrapper_stops_postgres_when_stopped(own_signals: None) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _signal_soon(signal.SIGTERM)
        began = time.monotonic()
        assert postgres.watch(proc) == 0
        assert time.monotonic() - began < postgres.IDLE_LOOK - 1
        assert proc.returncode is not None  # told to stop (SIGINT), and gone
    finally:
        proc.kill()
        proc.wait()
