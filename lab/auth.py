"""Gitaly v2 auth tokens and the GitLab-Shell JWT, exactly as GitLab computes them.

Standard library only: the sim image copies this very file, so the host-side
checks and the sim's servers can never disagree about the wire format.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

#: Gitaly accepts a v2 token whose timestamp is within this many seconds of its clock.
TOKEN_SKEW_SECONDS = 30
JWT_ISSUER = "gitlab-shell"
#: GitLab-Shell and Gitaly sign requests to the internal API with a short lifetime.
JWT_TTL_SECONDS = 60


class AuthOutcome(enum.Enum):
    OK = "OK"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"


@dataclass(frozen=True)
class AuthResult:
    outcome: AuthOutcome
    #: Gitaly's error detail text ("" when OK).
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


_OK = AuthResult(AuthOutcome.OK)
_UNAUTHENTICATED = AuthResult(AuthOutcome.UNAUTHENTICATED, "authentication required")
_DENIED = AuthResult(AuthOutcome.PERMISSION_DENIED, "permission denied")


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


def _hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def gitaly_v2_token(secret: str, now: int | None = None) -> str:
    """The bearer token a Gitaly client sends: ``v2.<hex hmac(secret, ts)>.<ts>``."""
    ts = str(_now(now))
    return f"v2.{_hmac_hex(secret, ts)}.{ts}"


def check_gitaly_auth(secret: str, authorization: str | None,
                      now: int | None = None) -> AuthResult:
    """Judge an ``authorization`` metadata value the way Gitaly's auth interceptor does.

    An empty ``secret`` means auth is not configured: everything passes.
    """
    if not secret:
        return _OK
    if not authorization or not authorization.startswith("Bearer "):
        return _UNAUTHENTICATED
    parts = authorization[len("Bearer "):].strip().split(".")
    if len(parts) != 3 or parts[0] != "v2" or not parts[1] or not parts[2]:
        return _UNAUTHENTICATED
    mac, ts_text = parts[1], parts[2]
    try:
        ts = int(ts_text, 10)
    except ValueError:
        return _UNAUTHENTICATED
    # Compare the MAC before the clock so a wrong token never looks like a clock problem.
    if not hmac.compare_digest(mac, _hmac_hex(secret, ts_text)):
        return _DENIED
    if abs(_now(now) - ts) > TOKEN_SKEW_SECONDS:
        return _DENIED
    return _OK


class JWTError(Exception):
    """A Gitlab-Shell-Api-Request JWT is malformed, forged, expired or not ours."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWTError("malformed token") from exc


def _sign(secret: str, signing_input: str) -> bytes:
    # GitLab strips the secret file's trailing newline/whitespace before use.
    return hmac.new(secret.strip().encode(), signing_input.encode(), hashlib.sha256).digest()


def encode_shell_jwt(secret: str, now: int | None = None, ttl: int = JWT_TTL_SECONDS) -> str:
    """The value of the ``Gitlab-Shell-Api-Request`` header (HS256, iss gitlab-shell)."""
    iat = _now(now)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iss": JWT_ISSUER, "iat": iat, "exp": iat + ttl}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_b64url(_sign(secret, signing_input))}"


def decode_shell_jwt(token: str, secret: str, now: int | None = None) -> dict[str, Any]:
    """Verify ``token`` with ``secret``; return its claims or raise :class:`JWTError`."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JWTError("malformed token")
    header_b64, payload_b64, sig_b64 = parts
    try:
        header = json.loads(_unb64url(header_b64))
        claims = json.loads(_unb64url(payload_b64))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JWTError("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("malformed token")
    if header.get("alg") != "HS256":
        raise JWTError("unsupported algorithm")
    expected = _sign(secret, f"{header_b64}.{payload_b64}")
    if not hmac.compare_digest(expected, _unb64url(sig_b64)):
        raise JWTError("signature verification failed")
    if claims.get("iss") != JWT_ISSUER:
        raise JWTError("invalid issuer")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int) or _now(now) >= exp):
        raise JWTError("token expired")
    return claims
