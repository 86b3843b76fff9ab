"""What `gitlab-ctl reconfigure` writes into gitlab-secrets.json, release by release.

Every reconfigure rewrites the file with each secret it knows, keeping the values
already there and generating the missing ones (omnibus-gitlab's
SecretsHelper.gather_gitlab_secrets and the ``parse_secrets`` of its gitlab_rails,
gitlab_kas, registry, postgresql, incoming_email and gitaly libraries; sources in
docs/fidelity.md). ``SECRETS`` is that list, in the order reconfigure writes it, each
row with the Dialect flag of the releases that write it (lab/omnibus/dialect.py, whose
thresholds are in lab/omnibus/release.py) and whether the toolkit renders it.

The one generator: the renderer (lab.render.secrets.secrets_json) fills the rendered
rows into an empty file, the sim's reconfigure (labsim.node.supervisor.rewrite_secrets)
fills every row into what the node has, and a sim node without a file starts from
every row (labsim.common.simconfig.load_secrets). Standard library only: the sim image
carries this module.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lab.omnibus.dialect import Dialect, dialect_for
from lab.omnibus.release import Version


def stand_in_pem(kind: str) -> str:
    """Random PEM-shaped text standing in for a key pair nobody uses (``kind``: the label)."""
    body = base64.b64encode(secrets.token_bytes(96)).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


def random_alnum(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Sources:
    """Where generated values come from; tests inject fixed ones (golden files)."""

    token_hex: Callable[[int], str] = secrets.token_hex  # n bytes -> 2n hex chars
    pem: Callable[[str], str] = stand_in_pem  # "RSA PRIVATE KEY" / "CERTIFICATE" -> PEM
    alnum: Callable[[int], str] = random_alnum  # n letters and digits


#: How a missing value is made: from the sources and the file as written so far.
Make = Callable[[Sources, Mapping[str, Any]], Any]


def _hex(n: int) -> Make:
    return lambda src, _: src.token_hex(n)


def _base64(n: int) -> Make:
    """Base64 of n random bytes (SecureRandom.base64(n))."""
    return lambda src, _: base64.b64encode(bytes.fromhex(src.token_hex(n))).decode()


def _base64_hex(n: int) -> Make:
    """Base64 of 2n hex digits (Base64.strict_encode64(SecureRandom.hex(n)))."""
    return lambda src, _: base64.b64encode(src.token_hex(n).encode()).decode()


def _pem(kind: str) -> Make:
    return lambda src, _: src.pem(kind)


def _alnum(n: int, *, listed: bool = False) -> Make:
    return (lambda src, _: [src.alnum(n)]) if listed else (lambda src, _: src.alnum(n))


def _shell_secret(_: Sources, written: Mapping[str, Any]) -> Any:
    shell = written.get("gitlab_shell")
    return shell.get("secret_token") if isinstance(shell, Mapping) else None


@dataclass(frozen=True)
class Secret:
    section: str
    key: str
    make: Make
    #: The Dialect flag of the releases whose reconfigure writes it; "" for every release.
    when: str = ""
    #: The toolkit writes it into every rendered gitlab-secrets.json.
    rendered: bool = False

    def written_by(self, release: Dialect) -> bool:
        return not self.when or bool(getattr(release, self.when))


#: The sections in the order reconfigure writes them (SecretsHelper.gather_gitlab_secrets).
SECTIONS = ("gitlab_workhorse", "gitlab_shell", "gitlab_rails", "gitlab_kas", "registry",
            "letsencrypt", "postgresql", "mailroom", "gitaly")

#: Every secret, in the order its missing value is generated: the shell secret first (the
#: Gitaly secret defaults to it; the golden files' counted tokens follow this order).
SECRETS: tuple[Secret, ...] = (
    Secret("gitlab_shell", "secret_token", _hex(64), rendered=True),
    Secret("gitlab_workhorse", "secret_token", _base64(32), rendered=True),
    Secret("gitlab_rails", "secret_key_base", _hex(64), rendered=True),
    Secret("gitlab_rails", "db_key_base", _hex(64), rendered=True),
    Secret("gitlab_rails", "otp_key_base", _hex(64), rendered=True),
    Secret("gitlab_rails", "encrypted_settings_key_base", _hex(64), rendered=True),
    Secret("gitlab_rails", "openid_connect_signing_key", _pem("RSA PRIVATE KEY"), rendered=True),
    Secret("gitlab_rails", "ci_jwt_signing_key", _pem("RSA PRIVATE KEY"),
           when="ci_jwt_signing_key"),
    Secret("gitlab_rails", "active_record_encryption_primary_key", _alnum(32, listed=True),
           when="active_record_encryption"),
    Secret("gitlab_rails", "active_record_encryption_deterministic_key",
           _alnum(32, listed=True), when="active_record_encryption"),
    Secret("gitlab_rails", "active_record_encryption_key_derivation_salt", _alnum(32),
           when="active_record_encryption"),
    # Only a release with attribute('gitlab_kas') parses its secrets.
    Secret("gitlab_kas", "api_secret_key", _base64_hex(16), when="kas"),
    Secret("gitlab_kas", "private_api_secret_key", _base64_hex(16), when="kas"),
    Secret("gitlab_kas", "websocket_token_secret_key", _base64(72), when="kas"),
    Secret("registry", "http_secret", _hex(64)),
    Secret("registry", "internal_certificate", _pem("CERTIFICATE")),
    Secret("registry", "internal_key", _pem("RSA PRIVATE KEY")),
    Secret("letsencrypt", "auto_enabled", lambda src, _: False),
    Secret("postgresql", "internal_certificate", _pem("CERTIFICATE")),
    Secret("postgresql", "internal_key", _pem("RSA PRIVATE KEY")),
    Secret("mailroom", "incoming_email_auth_token", _base64(32)),
    Secret("mailroom", "service_desk_email_auth_token", _base64(32)),
    # Defaults to the shell secret: copying the whole file keeps them equal.
    Secret("gitaly", "gitlab_secret", _shell_secret, when="gitaly_secret", rendered=True),
)


def fill(have: Mapping[str, Any], version: Version, sources: Sources | None = None, *,
         rendered_only: bool = False) -> dict[str, Any]:
    """``have`` plus each secret ``version``'s reconfigure writes that it lacks, generated
    from ``sources`` in SECRETS' order; values already there win, and a section that is
    not an object stays as it is. New sections follow ``have``'s in SECTIONS' order.
    ``rendered_only``: only the rows the toolkit renders."""
    sources = sources or Sources()
    release = dialect_for(version)
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in have.items()}
    for row in SECRETS:
        if (rendered_only and not row.rendered) or not row.written_by(release):
            continue
        section = out.setdefault(row.section, {})
        if isinstance(section, dict) and row.key not in section:
            section[row.key] = row.make(sources, out)
    new = sorted((name for name in out if name not in have), key=SECTIONS.index)
    return {name: out[name] for name in [*have, *new]}
