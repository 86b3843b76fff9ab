"""Redaction: known values and the shapes of unknown secrets go; evidence stays readable."""

from __future__ import annotations

from pathlib import Path

from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import write_lab
from lab.support.redaction import MARK, Redaction, lab_redaction


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
