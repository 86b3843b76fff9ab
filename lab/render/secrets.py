"""gitlab-secrets.json content and the lab's other secrets, random per lab.

Generation takes a ``token_hex`` source so golden tests can inject fixed values.
"""

from __future__ import annotations

import hashlib
import json
import secrets as _secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.model.topology import Lab, Node, SecretsPolicy
from lab.omnibus import gitlab_secrets
from lab.omnibus.release import Version
from lab.render import tls

TokenSource = Callable[[int], str]  # n bytes -> 2n hex chars
KeySource = Callable[[], str]  # -> an RSA private key in PEM


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def secrets_json(version: Version, token_hex: TokenSource = _secrets.token_hex,
                 rsa_pem: KeySource = _rsa_pem) -> dict[str, Any]:
    """A gitlab-secrets.json object with the secrets the toolkit renders for ``version``
    (lab.omnibus.gitlab_secrets: the rendered rows of what reconfigure writes). The one
    key pair rendered, openid_connect_signing_key, is a real RSA key."""
    return gitlab_secrets.fill({}, version, gitlab_secrets.Sources(
        token_hex=token_hex, pem=lambda _kind: rsa_pem()), rendered_only=True)


def dump_secrets_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def shell_secret(data: dict[str, Any]) -> str:
    return str(data.get("gitlab_shell", {}).get("secret_token", ""))


def fingerprint(value: str) -> str:
    """A short hash that shows whether two secrets match without revealing them."""
    return "sha256:" + hashlib.sha256(value.strip().encode()).hexdigest()[:16]


def secret_values(data: Any) -> list[str]:
    """Every string leaf of a secrets object (for redaction)."""
    if isinstance(data, dict):
        return [v for x in data.values() for v in secret_values(x)]
    if isinstance(data, list):
        return [v for x in data for v in secret_values(x)]
    return [data] if isinstance(data, str) else []


def secret_leaves(data: Any) -> list[Any]:
    """Every leaf of a secrets object that is not null or a boolean (a flag, no secret)."""
    if isinstance(data, dict):
        return [v for x in data.values() for v in secret_leaves(x)]
    if isinstance(data, list):
        return [v for x in data for v in secret_leaves(x)]
    return [] if data is None or isinstance(data, bool) else [data]


@dataclass
class LabSecrets:
    """Everything secret about one lab; kept in the lab directory between renders."""

    gitaly_token: str
    admin_token: str
    shared: dict[str, Any]
    own: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> its own file
    tls: dict[str, str] = field(default_factory=dict)  # PEMs: ca.key, ca.crt, <node>.key|crt
    # Gitaly Cluster: Praefect's internal token (Praefect -> its Gitaly nodes; the lab's
    # gitaly_token is the external one, app -> Praefect) and its database password.
    praefect_token: str = ""
    praefect_db_password: str = ""
    # The Gitaly tokens the lab's spec set itself, kept here and only here (the saved spec
    # says a token is set, never its value): node name -> token, "" -> the lab's.
    spec_tokens: dict[str, str] = field(default_factory=dict)

    def for_node(self, node: Node) -> dict[str, Any] | None:
        if node.secrets is SecretsPolicy.NONE:
            return None
        if node.secrets is SecretsPolicy.OWN:
            return self.own[node.name]
        return self.shared

    def values(self) -> list[str]:
        out = [self.gitaly_token, self.admin_token, *secret_values(self.shared)]
        out += [v for v in (self.praefect_token, self.praefect_db_password) if v]
        out += list(self.spec_tokens.values())
        for data in self.own.values():
            out += secret_values(data)
        out += [v for k, v in self.tls.items() if k.endswith(".key")]
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"gitaly_token": self.gitaly_token, "admin_token": self.admin_token,
               "shared": self.shared, "own": self.own, "tls": self.tls}
        if self.praefect_token:
            out.update(praefect_token=self.praefect_token,
                       praefect_db_password=self.praefect_db_password)
        if self.spec_tokens:
            out["spec_tokens"] = self.spec_tokens
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabSecrets:
        """The secrets a render saved; TypeError or KeyError when ``data`` is not that shape
        (a number where a token belongs: changed by hand)."""
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, found {type(data).__name__}")
        for key in ("gitaly_token", "admin_token"):
            if not isinstance(data.get(key), str):
                raise TypeError(f"{key}: expected a string")
        for key in ("shared", "own", "tls"):
            if not isinstance(data.get(key, {}), dict):
                raise TypeError(f"{key}: expected an object")
        if not all(isinstance(v, dict) for v in data.get("own", {}).values()):
            raise TypeError("own: expected an object per node")
        if not all(isinstance(v, str) for v in data.get("tls", {}).values()):
            raise TypeError("tls: expected PEM strings")
        if not isinstance(data.get("spec_tokens", {}), dict) or not all(
                isinstance(v, str) for v in data.get("spec_tokens", {}).values()):
            raise TypeError("spec_tokens: expected token strings")
        if any(not isinstance(v, str) for v in secret_leaves(data.get("shared"))) or any(
                not isinstance(v, str) for v in secret_leaves(data.get("own"))):
            raise TypeError("secret values must be strings")
        return cls(gitaly_token=data["gitaly_token"], admin_token=data["admin_token"],
                   shared=data["shared"], own=dict(data.get("own", {})),
                   # Older renders kept "<node>.san" entries; the certificate itself says.
                   tls={k: v for k, v in data.get("tls", {}).items() if not k.endswith(".san")},
                   praefect_token=str(data.get("praefect_token", "")),
                   praefect_db_password=str(data.get("praefect_db_password", "")),
                   spec_tokens=dict(data.get("spec_tokens", {})))


def admin_token(token_hex: TokenSource = _secrets.token_hex) -> str:
    # The prefix only makes the token recognisable (secret scanners, redaction): the
    # PRIVATE-TOKEN path looks a token up by its digest, whatever string it is.
    return "glpat-" + token_hex(10)


def merge_written_back(rendered: dict[str, Any], on_disk: Any) -> dict[str, Any]:
    """The secrets file to write: what the toolkit renders over what is on disk.

    Every reconfigure rewrites gitlab-secrets.json with each section it knows,
    generating the ones missing (gitlab_kas, registry, postgresql, mailroom,
    ``active_record_encryption_*`` from
    lab.omnibus.release.ACTIVE_RECORD_ENCRYPTION, ...). Dropping them on a re-render
    would make the next reconfigure generate new keys, and data encrypted with the
    old ones could no longer be read. Rendered keys win; everything else stays.
    """
    if not isinstance(on_disk, dict):
        return rendered
    out: dict[str, Any] = dict(on_disk)
    for section, values in rendered.items():
        kept = on_disk.get(section)
        out[section] = {**kept, **values} if isinstance(kept, dict) and isinstance(
            values, dict) else values
    return out


def ensure_secrets(lab: Lab, existing: LabSecrets | None = None,
                   token_hex: TokenSource = _secrets.token_hex,
                   rsa_pem: KeySource = _rsa_pem) -> LabSecrets:
    """The lab's secrets: keep what exists, create what is missing."""
    if existing is None:
        existing = LabSecrets(
            gitaly_token=lab.gitaly_token or token_hex(32),
            admin_token=admin_token(token_hex),
            shared=secrets_json(lab.version, token_hex, rsa_pem),
        )
    elif lab.gitaly_token:
        existing.gitaly_token = lab.gitaly_token
    # The tokens the spec sets, so that the saved spec need not hold them (one copy each).
    existing.spec_tokens = {n.name: n.gitaly_token for n in lab.nodes
                            if n.gitaly_token is not None}
    if lab.gitaly_token:
        existing.spec_tokens[""] = lab.gitaly_token
    for node in lab.nodes:
        if node.secrets is SecretsPolicy.OWN and node.name not in existing.own:
            existing.own[node.name] = secrets_json(lab.version, token_hex, rsa_pem)
    if lab.praefect_nodes and not existing.praefect_token:
        existing.praefect_token = token_hex(32)
        existing.praefect_db_password = token_hex(16)
    ensure_tls(lab, existing)
    return existing


def ensure_tls(lab: Lab, sec: LabSecrets) -> None:
    """Create the CA and each TLS node's certificate if missing or if its SANs changed."""
    if not lab.any_tls:
        return
    if "ca.key" not in sec.tls:
        sec.tls["ca.key"], sec.tls["ca.crt"] = tls.make_ca(lab.name)
    for node in lab.nodes:
        if not node.tls:
            continue
        crt = sec.tls.get(f"{node.name}.crt")
        if crt is None or f"{node.name}.key" not in sec.tls \
                or tuple(tls.cert_sans(crt)) != node.san_names:
            key, crt = tls.make_server_cert(sec.tls["ca.key"], sec.tls["ca.crt"], node.san_names)
            sec.tls.update({f"{node.name}.key": key, f"{node.name}.crt": crt})

