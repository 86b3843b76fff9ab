"""lab.omnibus.gitlab_secrets: the one table of what reconfigure writes into
gitlab-secrets.json, which the renderer and the sim both fill from."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from conftest import ROOT

from lab.omnibus import gitlab_secrets
from lab.omnibus.gitlab_secrets import SECRETS, SECTIONS, Sources, fill
from lab.omnibus.release import Version
from lab.render.secrets import secrets_json

V = Version.parse


def counting() -> Sources:
    count = itertools.count(1)
    return Sources(token_hex=lambda n: f"{next(count):0{2 * n}x}",
                   pem=lambda kind: f"<{kind}>", alnum=lambda n: "a" * n)


def test_every_section_has_its_place() -> None:
    assert {row.section for row in SECRETS} == set(SECTIONS)
    assert len({(row.section, row.key) for row in SECRETS}) == len(SECRETS)


@pytest.mark.parametrize(("version", "present", "absent"), [
    ("12.10.14", {"gitlab_rails.ci_jwt_signing_key", "registry.http_secret"},
     {"gitlab_kas.api_secret_key", "gitaly.gitlab_secret",
      "gitlab_rails.active_record_encryption_primary_key"}),
    ("16.11.10", {"gitlab_kas.api_secret_key", "gitlab_rails.ci_jwt_signing_key"},
     {"gitaly.gitlab_secret", "gitlab_rails.active_record_encryption_primary_key"}),
    ("17.5.0", {"gitaly.gitlab_secret"}, {"gitlab_rails.ci_jwt_signing_key"}),
    ("19.3.0", {"gitaly.gitlab_secret", "gitlab_rails.active_record_encryption_key_derivation_salt",
                "mailroom.service_desk_email_auth_token", "letsencrypt.auto_enabled"},
     {"gitlab_rails.ci_jwt_signing_key"}),
])
def test_what_each_release_writes(version: str, present: set[str], absent: set[str]) -> None:
    written = fill({}, V(version), counting())
    keys = {f"{section}.{key}" for section, values in written.items() for key in values}
    assert present <= keys
    assert not absent & keys
    assert list(written) == [s for s in SECTIONS if s in written]


def test_values_there_win_and_odd_sections_stay() -> None:
    have = {"custom": {"x": 1}, "gitlab_shell": {"secret_token": "s"}, "registry": "odd"}
    out = fill(have, V("19.3.0"), counting())
    assert out["gitlab_shell"] == {"secret_token": "s"}
    assert out["gitaly"] == {"gitlab_secret": "s"}  # defaults to the shell secret
    assert out["registry"] == "odd"
    assert list(out)[:3] == ["custom", "gitlab_shell", "registry"]  # the file's order first
    assert have == {"custom": {"x": 1}, "gitlab_shell": {"secret_token": "s"},
                    "registry": "odd"}  # not changed in place


def test_the_renderer_writes_the_rendered_rows() -> None:
    rendered = {(row.section, row.key) for row in SECRETS if row.rendered}
    count = itertools.count(1)
    data = secrets_json(V("19.3.0"), lambda n: f"{next(count):0{2 * n}x}", lambda: "<rsa>")
    assert {(s, k) for s, values in data.items() for k in values} == rendered
    # The shell secret is generated first; the Gitaly secret is the same value.
    assert data["gitlab_shell"]["secret_token"] == f"{1:0128x}"
    assert data["gitaly"]["gitlab_secret"] == data["gitlab_shell"]["secret_token"]
    assert data["gitlab_rails"]["openid_connect_signing_key"] == "<rsa>"
    assert "gitaly" not in secrets_json(V("17.4.0"))


def test_no_other_module_spells_a_generated_secret() -> None:
    # One generator: no other module of the toolkit or the sim has a string that is the
    # name of a key only reconfigure generates.
    only_generated = {row.key for row in SECRETS if not row.rendered} - {"auto_enabled"}
    here = Path(gitlab_secrets.__file__).resolve()
    spelled = [(str(p.relative_to(ROOT)), node.value)
               for folder in ("lab", "labsim") for p in (ROOT / folder).rglob("*.py")
               if p.resolve() != here
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Constant) and node.value in only_generated]
    assert spelled == []
