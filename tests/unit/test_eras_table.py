"""The table of eras (lab/omnibus/eras.py ERAS): texts by release, and docs/fidelity.md from it."""

from __future__ import annotations

import hashlib
import importlib.util
from types import ModuleType

import pytest
from conftest import ROOT

from lab.omnibus import eras
from lab.omnibus.release import Version

V = Version.parse


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fidelity_eras",
                                                  ROOT / "scripts" / "fidelity_eras.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fidelity_doc_shows_every_row_of_the_table() -> None:
    module = script()
    doc = module.DOC.read_text()
    assert module.render(doc) == doc, "run python3 scripts/fidelity_eras.py"
    for row in eras.ERAS:
        assert row.source in doc


def test_every_behaviour_has_a_row_for_the_oldest_release() -> None:
    for behaviour in {e.behaviour for e in eras.ERAS}:
        assert eras.era(behaviour, V("11.11.0")).since == Version(0, 0, 0)


@pytest.mark.parametrize(("release", "unreachable", "non_json"), [
    ("11.11.8", "Failed to authorize your Git request: internal API unreachable",
     "API is not accessible"),
    ("12.10.14", "Failed to authorize your Git request: internal API unreachable",
     "API is not accessible"),
    ("13.1.0", "Failed to authorize your Git request: internal API unreachable",
     "API is not accessible"),
    ("13.2.0", "Internal API unreachable", "Internal API error (502)"),
    ("17.11.7", "Internal API unreachable", "Internal API error (502)"),
])
def test_hooks_speak_ruby_before_13_2_and_go_after(release: str, unreachable: str,
                                                   non_json: str) -> None:
    rel = V(release)
    assert eras.internal_api_unreachable(rel) == unreachable
    assert eras.internal_api_error(502, b"<html>bad gateway</html>", rel, "text/html") == non_json
    # A JSON message (the 401 of a wrong secret) reads the same in both eras.
    assert eras.internal_api_error(401, b'{"message":"401 Unauthorized"}', rel) == \
        "401 Unauthorized"


def test_ruby_hooks_read_json_only_for_the_statuses_gitlab_net_lists() -> None:
    body = b'{"message":"boom"}'
    assert eras.internal_api_error(500, body, V("12.10.14")) == "API is not accessible"
    assert eras.internal_api_error(500, body, V("13.12.15")) == "boom"
    assert eras.internal_api_error(404, body, V("12.10.14")) == "boom"
    assert eras.allowed_content_type_error("text/html", V("12.10.14")) == "API is not accessible"
    assert eras.allowed_content_type_error("application/json", V("12.10.14")) is None
    assert eras.allowed_content_type_error("text/html", V("13.2.0")) == \
        "/allowed endpoint respond with unsupported content type: text/html"


def test_a_refused_internal_api_call_is_a_401_request_line() -> None:
    assert eras.api_log_record(401, "POST", "/api/v4/internal/allowed") == {
        "severity": "INFO", "status": 401, "method": "POST", "path": "/api/v4/internal/allowed"}


@pytest.mark.parametrize(("release", "legacy"), [
    ("11.11.8", True), ("11.11.0", True), ("12.0.0", False), ("12.10.14", False),
    ("19.3.0", False),
])
def test_new_projects_are_legacy_before_12_0_and_hashed_after(release: str, legacy: bool) -> None:
    path = eras.repository_disk_path(V(release), 2, "root/demo")
    digest = hashlib.sha256(b"2").hexdigest()
    assert path == ("root/demo.git" if legacy else "@hashed/d4/73/" + digest + ".git")
