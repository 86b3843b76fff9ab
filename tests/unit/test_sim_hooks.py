"""The sim's Gitaly hooks and app against a local HTTP server: what a push prints for
each internal-API answer, and which auth header each release sends and accepts.

The sim modules import ``lab.omnibus.auth`` and ``lab.omnibus.eras``: here the host's own
modules, the very files the image copies.
"""

from __future__ import annotations

import base64
import importlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, ClassVar

import pytest

from lab.omnibus import auth, eras
from lab.omnibus.release import UNBOUNDED, Version

SECRET = "ef" * 64


@pytest.fixture(scope="module")
def githook() -> ModuleType:
    return importlib.import_module("labsim.gitaly.githook")


@pytest.fixture(scope="module")
def rake() -> ModuleType:
    return importlib.import_module("labsim.node.rake")


class Answer(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    content_type: ClassVar[str] = "application/json"
    body: ClassVar[bytes] = b"{}"
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **self.headers})
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    # A short poll: shutdown() waits up to one poll interval (0.5 s by default).
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def api(server: str) -> str:
    Answer.seen = []
    return server


def _answer(monkeypatch: pytest.MonkeyPatch, status: int, content_type: str,
            body: bytes) -> None:
    monkeypatch.setattr(Answer, "status", status)
    monkeypatch.setattr(Answer, "content_type", content_type)
    monkeypatch.setattr(Answer, "body", body)


@pytest.mark.parametrize(("status", "content_type", "body", "message"), [
    (404, "text/html", b"<html>404 Not Found</html>", "Internal API error (404)"),
    (502, "text/html", b"<html>Bad Gateway</html>", "Internal API error (502)"),
    (401, "application/json", b'{"message":"401 Unauthorized"}', "401 Unauthorized"),
    (200, "text/html", b"<html>proxy login</html>",
     "/allowed endpoint respond with unsupported content type: text/html"),
])
def test_push_message_for_each_internal_api_answer(
        githook: ModuleType, api: str, monkeypatch: pytest.MonkeyPatch, status: int,
        content_type: str, body: bytes, message: str) -> None:
    _answer(monkeypatch, status, content_type, body)
    conf = {"internal_api_url": api, "hook_secret": SECRET}
    with pytest.raises(githook.ApiError) as info:
        githook.call(conf, UNBOUNDED, "allowed", {"changes": ""})
    assert str(info.value) == message
    assert eras.hook_message(str(info.value)) == f"GitLab: {message}"


def test_unreachable_internal_api(githook: ModuleType) -> None:
    conf = {"internal_api_url": "http://127.0.0.1:9", "hook_secret": SECRET}
    with pytest.raises(githook.ApiError, match=r"^Internal API unreachable$"):
        githook.call(conf, UNBOUNDED, "allowed", {"changes": ""})


@pytest.mark.parametrize(("version", "shared", "jwt"), [
    ("14.10.5", True, False), ("15.3.0", True, True), ("16.0.0", False, True),
])
def test_hooks_send_the_header_of_their_release(
        githook: ModuleType, api: str, monkeypatch: pytest.MonkeyPatch, version: str,
        shared: bool, jwt: bool) -> None:
    _answer(monkeypatch, 200, "application/json", b'{"status":true}')
    conf = {"internal_api_url": api, "hook_secret": SECRET}
    githook.call(conf, Version.told(version), "allowed", {"changes": ""})
    (headers,) = Answer.seen
    got = {k.lower(): v for k, v in headers.items()}
    assert (got.get("gitlab-shared-secret") == base64.b64encode(SECRET.encode()).decode()) \
        is shared
    assert ("gitlab-shell-api-request" in got) is jwt
    if jwt:
        assert auth.decode_shell_jwt(got["gitlab-shell-api-request"], SECRET)["iss"] == \
            "gitlab-shell"


@pytest.mark.parametrize(("status", "body", "line", "code"), [
    (200, b'{"api_version":"v4"}', "Internal API available: OK", 0),
    (401, b'{"message":"401 Unauthorized"}', "Internal API available: FAILED - 401 Unauthorized",
     1),
])
def test_gitlab_shell_check_on_a_gitaly_node(
        rake: ModuleType, api: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], status: int, body: bytes, line: str,
        code: int) -> None:
    # `gitlab-rake gitlab:gitlab_shell:check` once crashed with a TypeError (the hook
    # call lost its release argument); mypy over images/ found it.
    _answer(monkeypatch, status, "application/json", body)
    node = {"version": "17.11.7", "gitaly": {"internal_api_url": api, "hook_secret": SECRET}}
    assert rake.shell_check(node) == code
    assert line in capsys.readouterr().out.splitlines()
    (headers,) = Answer.seen
    got = {k.lower(): v for k, v in headers.items()}
    assert got["path"] == "/api/v4/internal/check"
    assert auth.decode_shell_jwt(got["gitlab-shell-api-request"], SECRET)["iss"] == \
        "gitlab-shell"
