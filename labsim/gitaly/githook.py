"""Git hooks run by the sim's Gitaly, talking to GitLab's internal API like gitaly-hooks.

Anything printed to stderr reaches the pushing client as ``remote: ...``.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from lab.omnibus import auth as lab_auth
from lab.omnibus import eras as lab_eras
from lab.omnibus.release import Version
from labsim.common import simconfig


class ApiError(Exception):
    pass


def call(conf: dict[str, Any], rel: Version, endpoint: str,
         body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST ``body`` (GET when None) to the internal API; ApiError with Gitaly's message."""
    base = conf.get("internal_api_url") or ""
    if not base:
        raise ApiError(lab_eras.internal_api_unreachable(rel))
    headers = {"Content-Type": "application/json", "User-Agent": "GitLab-Shell",
               **lab_eras.internal_api_headers(rel, conf["hook_secret"],
                                               lab_auth.encode_shell_jwt)}
    request = urllib.request.Request(
        base.rstrip("/") + "/api/v4/internal/" + endpoint,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST", headers=headers)
    context = None
    if base.startswith("https:"):
        # Omnibus trusts /etc/gitlab/trusted-certs in addition to the system CAs.
        context = ssl.create_default_context(
            cadata=simconfig.trusted_ca_pem().decode(errors="replace") or None)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            content_type = resp.headers.get("Content-Type", "")
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        # 4xx/5xx: the JSON message, or the release's text for anything else (eras.ERAS).
        raise ApiError(lab_eras.internal_api_error(
            exc.code, exc.read(), rel, exc.headers.get("Content-Type", ""))) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ApiError(lab_eras.internal_api_unreachable(rel)) from exc
    if endpoint == "allowed":
        problem = lab_eras.allowed_content_type_error(content_type, rel)
        if problem:
            raise ApiError(problem)
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(f"decoding response from /{endpoint} endpoint: {exc}") from exc
    return data if isinstance(data, dict) else {}


def main(hook: str) -> int:
    changes = sys.stdin.read()
    runtime = simconfig.read_runtime()
    conf, rel = runtime["gitaly"], simconfig.release(runtime)
    env = os.environ
    common = {"gl_repository": env.get("GL_REPOSITORY", ""), "changes": changes,
              "protocol": env.get("GL_PROTOCOL", "http")}
    try:
        if hook == "pre-receive":
            allowed = call(conf, rel, "allowed", {
                **common, "action": "git-receive-pack", "project": env.get("GL_REPOSITORY", ""),
                "username": env.get("GL_USERNAME", ""), "key_id": "",
                "user_id": env.get("GL_ID", "").removeprefix("user-"),
            })
            if not allowed.get("status"):
                raise ApiError(str(allowed.get("message") or "API is not accessible"))
            call(conf, rel, "pre_receive", {"gl_repository": common["gl_repository"]})
        else:
            result = call(conf, rel, "post_receive", {
                **common, "identifier": env.get("GL_ID", ""),
                "push_options": []})
            for message in result.get("messages") or []:
                if isinstance(message, dict) and message.get("message"):
                    print(message["message"], file=sys.stderr)
    except ApiError as exc:
        print(lab_eras.hook_message(str(exc)), file=sys.stderr)
        simconfig.log("gitaly", f"{hook} hook for {common['gl_repository']}: {exc}",
                      via_pid1=True)
        return 1
    return 0
