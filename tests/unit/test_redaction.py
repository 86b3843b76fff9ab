"""Redaction: known values and the shapes of unknown secrets go; evidence stays readable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import lab as lab_pkg
from lab.engine.redaction import MARK, Redaction, lab_redaction
from lab.omnibus.secret_keys import SECRET_WORDS
from lab.spec.importer import shown
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import write_lab


def test_known_values_and_token_shapes_are_redacted() -> None:
    r = Redaction()
    r.add(["a-known-secret-value-123"])
    text = "\n".join([
        "x a-known-secret-value-123 y",
        "gitlab_rails['gitaly_token'] = 'customer-token'",
        "gitaly['configuration'] = { auth: { token: 'abc' } }",
        '"secret_token": "notknown1234"',
        "PRIVATE-TOKEN: glpat-abcdefghijklmnopqrst",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
        "Gitlab-Shell-Api-Request: eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJnaXRsYWIifQ.c2lnbmF0dXJl",
        "authorization: Bearer v2." + "ab" * 32 + ".1700000000",
        "shell " + "f" * 128,
    ])
    out = r(text)
    for secret in ("a-known-secret-value-123", "customer-token", "'abc'", "notknown1234",
                   "glpat-abcdefghijklmnopqrst", "MHcCAQEE", "eyJhbGciOiJIUzI1NiJ9",
                   "ab" * 32, "f" * 128):
        assert secret not in out, secret
    assert "[REDACTED PRIVATE KEY]" in out


def test_redaction_keeps_evidence_readable() -> None:
    r = Redaction()
    text = ('"secrets_policy": "shared", "shell_secret_sha256": "sha256:0123456789abcdef", '
            "commit 3f786850e387550fdab836ed7e6dc881de23001b pushed")
    assert r(text) == text


def test_short_values_are_not_treated_as_secrets() -> None:
    r = Redaction()
    r.add(["abc", ""])
    assert r("abc def") == "abc def"


def test_lab_redaction_covers_tls_keys_and_own_files(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", sets=("tls=true", "nodes.gitaly1.secrets=own")))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    r = lab_redaction(rendered.secrets)
    key = rendered.secrets.tls["gitaly1.key"]
    assert MARK in r(key)
    own = rendered.secrets.own["gitaly1"]["gitlab_shell"]["secret_token"]
    assert own not in r(f"x {own} y")


def test_customer_gitlab_rb_secrets_are_redacted_however_quoted() -> None:
    # A customer's gitlab.rb pasted into omnibus_config: Ruby's other string forms, and the
    # same text as it lands in manifest.json (JSON-escaped) and the compose file (YAML '').
    r = Redaction()
    lines = [
        "gitlab_rails['db_password'] = \"it's-s01\"",
        "gitlab_rails['db_password'] = \"a\\\"s02\"",
        "gitlab_rails['smtp_password'] = %q(s03)",
        "gitlab_rails['smtp_password'] = %Q{s04}",
        "gitlab_rails['db_password'] = <<~EOS\n  s05\nEOS",
        "gitlab_rails['db_password'] = 'first' \\\n  's06'",
        "gitlab_rails['db_password'] = 'first' + 's07'",
        "gitlab_kas['api_secret_key'] = 's08'",
        "consul['encryption_key'] = 's09'",
        "x = { 'aws_secret_access_key' => 's10' }",
        "ldap = YAML.load <<-EOS\n  main:\n    password: s11\nEOS",
        "\"omnibus_config\": \"gitlab_rails['db_password'] = \\\"s12\\\"\\n\"",
        "  GITLAB_OMNIBUS_CONFIG: 'gitlab_rails[''db_password''] = ''s13''",
        "  GITLAB_OMNIBUS_CONFIG: 'gitlab_rails[''db_password''] = \"s14\"",
        "redis url redis://:s15@redis:6379",
    ]
    out = r("\n".join(lines))
    for i in range(1, 16):
        assert f"s{i:02d}" not in out, (f"s{i:02d}", out)
    assert "'[REDACTED]' \\\n  '[REDACTED]'" in out


def test_redaction_keeps_ruby_structure_readable() -> None:
    r = Redaction()
    text = ("gitaly['configuration'] = { storage: [{ name: 'default' }] }\n"
            "external_url 'http://gitlab'\nsecrets: own\n")
    assert r(text) == text


H = hashlib.sha256(b"1").hexdigest()  # project 1's hashed storage name


@pytest.mark.parametrize("text", [
    f"repo @hashed/{H[:2]}/{H[2:4]}/{H}.git",  # GitLab's hashed storage
    f"@hashed/{H[:2]}/{H[2:4]}/{H}.wiki.git",
    f"object pool @pools/{H[:2]}/{H[2:4]}/{H}.git",
    f"image_id: sha256:{H}",  # an image id
    f"gitlab/gitlab-ce:19.3.0-ce.0@sha256:{H}",  # a pinned reference
    f'"Image": "sha256:{H}"',
    f'{{"id":"{H}","short_id":"{H[:8]}","parent_ids":["{H}", "{H}"]}}',  # SHA-256 commits
    f'"commit_id": "{H}", "last_commit_id": "{H}"',
    f"oldrev={H} newrev={H}",
    f"commit {H}\nAuthor: Administrator",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b pushed",  # SHA-1: too short to matter
])
def test_hashes_that_name_things_stay_readable(text: str) -> None:
    assert Redaction()(text) == text


@pytest.mark.parametrize("text", [
    f"@hashed/00/00/{H}.git",  # the folders are not the hash's own digits
    f"sha256:{H.upper()}",  # digests are lower-case
    f"sha256:{'f' * 128}",  # and 64 digits long
    f'{{"id":"{H}","name":"x"}}',  # an id, but not a commit's
    f"rotated after {H}",  # a key's name without its operator is a word
    f"xcommit {H}",
    f"token {H}",
])
def test_unknown_hex_secrets_go_outside_those_places(text: str) -> None:
    assert MARK in Redaction()(text)


def test_real_lab_secrets_go_even_where_a_hash_would_stay(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled"))
    sec = write_lab(lab, tmp_path / "lab", image="unused").secrets
    r = lab_redaction(sec)
    shell = sec.shared["gitlab_shell"]["secret_token"]
    assert len(sec.gitaly_token) == 64  # the shapes of hashes
    assert len(shell) == 128
    text = (f"@hashed/{H[:2]}/{H[2:4]}/{H}.git token={sec.gitaly_token}\n"
            f"image_id: sha256:{sec.gitaly_token}\n"
            f"@hashed/{sec.gitaly_token[:2]}/{sec.gitaly_token[2:4]}/{sec.gitaly_token}.git\n"
            f'"sha": "{sec.gitaly_token}", "parent_ids": ["{H}", "{shell}"]\n'
            f"commit {sec.gitaly_token}\n")
    out = r(text)
    assert sec.gitaly_token not in out
    assert shell not in out
    assert shell[:64] not in out
    assert f"@hashed/{H[:2]}/{H[2:4]}/{H}.git token=[REDACTED]" in out
    assert not r.leaks(out)


def test_one_list_of_secret_words_for_import_and_redaction() -> None:
    # Issue 23: the words lived in lab/spec/importer.py and lab/support/redaction.py.
    for word in SECRET_WORDS:
        assert shown((f"my_{word}",), "v4lue-of-it") == "<secret, not copied>"
        assert "v4lue-of-it" not in Redaction()(f"gitlab_rails['my_{word}'] = 'v4lue-of-it'")
    lab_dir = Path(lab_pkg.__file__).parent
    spelled = [p.relative_to(lab_dir).as_posix() for p in lab_dir.rglob("*.py")
               if "passwd" in p.read_text()]
    assert spelled == ["omnibus/secret_keys.py"]
