"""The sim's healthcheck tools: `gitlab-ctl status` and `gitlab-healthcheck` read the run
state only (labsim.common.runstate) and answer as before."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sim_run_state

from labsim.common import runstate
from labsim.node import ctl, healthcheck

ROOT = Path(__file__).resolve().parents[2]


run_dir = pytest.fixture(sim_run_state.run_dir)
listener = pytest.fixture(sim_run_state.listener)


def _write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("web", ["puma", "unicorn"])
def test_status_lists_the_web_server_reconfigure_recorded(
        run_dir: Path, listener: int, web: str, capsys: pytest.CaptureFixture[str]) -> None:
    me = {"pid": os.getpid(), "started": 0}
    _write(run_dir / "services.json", {"sshd": me, web: me})
    _write(run_dir / "config.json", {"app": {"port": listener}, runstate.WEB_SERVICE: web})
    assert ctl.status(None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == sorted(["sshd", web])
    assert all(line.startswith("run: ") for line in lines)


def test_status_says_down_for_a_stopped_or_deaf_service(
        run_dir: Path, listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    me = {"pid": os.getpid(), "started": 0}
    _write(run_dir / "services.json", {"sshd": me, "gitaly": me, "puma": me})
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    deaf = closed.getsockname()[1]
    closed.close()
    _write(run_dir / "config.json", {
        "app": {"port": listener}, runstate.WEB_SERVICE: "puma",
        "gitaly": {"socket_path": "", "listen_addr": f"127.0.0.1:{deaf}",
                   "tls_listen_addr": ""}})
    assert ctl.status("gitaly") == 3
    assert capsys.readouterr().out == "down: gitaly: 0s, normally up\n"
    _write(run_dir / "stopped.json", ["puma"])
    assert runstate.enabled(runstate.read_runtime(), "puma") == ["gitaly"]
    assert ctl.status("puma") == 0  # stopped by gitlab-ctl: not listed, as omnibus-ctl


class _Health(http.server.BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:
        body = b"GitLab OK" if self.path == "/-/health" else b"no"
        self.send_response(self.code if self.path == "/-/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("code", "argv", "exit_code", "out"), [
    (200, ["--fail", "--max-time", "10"], 0, "GitLab OK\n"),
    (503, ["--fail", "--max-time=5"], 22, "HTTP 503"),
    (503, [], 0, "HTTP 503"),
])
def test_healthcheck_gets_health_over_a_plain_socket(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        code: int, argv: list[str], exit_code: int, out: str) -> None:
    handler = type("Handler", (_Health,), {"code": code})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _write(run_dir / "config.json", {"app": {"port": server.server_address[1]}})
        assert healthcheck.main(argv) == exit_code
    finally:
        server.shutdown()
        server.server_close()
    assert out in capsys.readouterr().out


def test_healthcheck_without_an_app_or_a_listener(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck.main([]) == 1
    assert "no app on this node" in capsys.readouterr().out
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    _write(run_dir / "config.json", {"app": {"port": port}})
    assert healthcheck.main(["--fail"]) == 7


def test_the_checks_import_no_release_tables_and_no_http_stack() -> None:
    code = ("import sys, labsim.node.ctl, labsim.node.healthcheck\n"
            "print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    loaded = set(res.stdout.split())
    assert "labsim.common.runstate" in loaded
    for heavy in ("labsim.node.supervisor", "labsim.common.simconfig", "lab.omnibus.eras",
                  "lab.omnibus.dialect", "urllib.request", "http.client"):
        assert heavy not in loaded, heavy
