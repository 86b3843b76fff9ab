"""Gitaly v2 auth tokens and the GitLab-Shell JWT, exactly as GitLab computes them.

The sim image copies this very file, so the host-side checks and the sim's
servers can never disagree about the wire format. JWTs are PyJWT's (Debian's
python3-jwt in the image); the v2 token is one HMAC and needs no library.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import hmac
import re
import time
import warnings
from collections.abc import Iterator
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


def check_gitaly_auth(secret: str, authorization: str | None, now: int | None = None, *,
                      transitioning: bool = False, v1: bool = False) -> AuthResult:
    """Judge an ``authorization`` metadata value the way Gitaly's auth interceptor does.

    Gitaly ``auth/token.go`` (v13.0-v16.7) behind go-grpc-middleware's ``AuthFromMD``:
    the scheme is compared case-insensitively and split off at the first space; the
    token splits into at most three dot-separated parts and the signature is hex
    decoded; anything failing so far is Unauthenticated. Then only ``v2`` is known,
    the HMAC is compared before the timestamp is parsed, and any of those failing is
    PermissionDenied. An empty ``secret`` means auth is off; ``transitioning``
    (``auth: { transitioning: true }``) judges but lets every call through.

    ``v1`` is Gitaly before v12.10.0 (lab.omnibus.eras GITALY_V1_TOKEN): a token of fewer
    than three parts is a v1 token, base64 of the secret; so is a ``v1.<hex>.<b64>`` one.
    """
    if not secret:
        return _OK
    result = _judge(secret, authorization, _now(now), v1)
    return _OK if transitioning else result


def _judge(secret: str, authorization: str | None, now: int, v1: bool = False) -> AuthResult:
    if not authorization:
        return _UNAUTHENTICATED
    scheme, sep, token = authorization.partition(" ")
    if not sep or scheme.lower() != "bearer":
        return _UNAUTHENTICATED
    parts = token.split(".", 2)
    if len(parts) != 3:
        # Gitaly 1.x: a v1 token (ExtractAuthInfo gives it the whole token as message).
        return _judge_v1(secret, token) if v1 else _UNAUTHENTICATED
    version, sig, message = parts
    # Go's hex.DecodeString: odd length or a non-hex character is an error.
    if len(sig) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", sig):
        return _UNAUTHENTICATED
    signature = bytes.fromhex(sig)
    if version == "v1" and v1:
        return _judge_v1(secret, message)
    if version != "v2":
        return _DENIED
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return _DENIED
    if not re.fullmatch(r"[+-]?[0-9]+", message):
        return _DENIED  # strconv.ParseInt(message, 10, 64)
    ts = int(message)
    if abs(now - ts) > TOKEN_SKEW_SECONDS:
        return _DENIED
    return _OK


def _judge_v1(secret: str, message: str) -> AuthResult:
    """Gitaly 1.x CheckToken's v1 case: base64.StdEncoding (padding required; Go skips
    CR and LF) of the secret, compared in constant time."""
    try:
        decoded = base64.b64decode(message.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return _UNAUTHENTICATED
    return _OK if hmac.compare_digest(decoded, secret.encode()) else _DENIED


def gitaly_v1_token(secret: str) -> str:
    """The bearer token a Gitaly 1.x client could send instead of v2: the secret, base64."""
    return base64.b64encode(secret.encode()).decode()


class JWTError(Exception):
    """A Gitlab-Shell-Api-Request JWT is malformed, forged, expired or not ours."""


def _jwt_reason(exc: Exception) -> str:
    """A PyJWT error in the words the internal API logs (first match wins)."""
    import jwt

    reasons: tuple[tuple[type[Exception], str], ...] = (
        (jwt.InvalidAlgorithmError, "unsupported algorithm"),
        (jwt.InvalidSignatureError, "signature verification failed"),
        (jwt.ExpiredSignatureError, "token expired"),
        (jwt.InvalidIssuerError, "invalid issuer"),
        (jwt.MissingRequiredClaimError, "invalid issuer"),  # the only claim we require is iss
        (jwt.DecodeError, "malformed token"),
    )
    return next((text for kind, text in reasons if isinstance(exc, kind)), str(exc))


@contextlib.contextmanager
def _any_key_length() -> Iterator[None]:
    """Silence PyJWT's advice about HMAC keys under 32 bytes (PyJWT 2.10 and later).

    GitLab signs and checks with whatever its secret file holds, short or not; so does the lab.
    """
    import jwt

    category = getattr(jwt, "InsecureKeyLengthWarning", None)
    if category is None:  # Debian's 2.6 in the sim: nothing to silence, no shared state touched
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


def encode_shell_jwt(secret: str, now: int | None = None, ttl: int = JWT_TTL_SECONDS) -> str:
    """The value of the ``Gitlab-Shell-Api-Request`` header (HS256, iss gitlab-shell).

    GitLab strips the secret file's trailing newline/whitespace before use.
    """
    import jwt

    iat = _now(now)
    claims = {"iss": JWT_ISSUER, "iat": iat, "exp": iat + ttl}
    with _any_key_length():
        return jwt.encode(claims, secret.strip(), algorithm="HS256")


def decode_shell_jwt(token: str, secret: str, now: int | None = None) -> dict[str, Any]:
    """Verify ``token`` with ``secret``; return its claims or raise :class:`JWTError`.

    Checks what Rails' ``JWT.decode`` checks for this header: HS256 only, the
    signature, ``iss``, and ``exp`` when present (not ``iat``). ``now`` judges
    expiry as of that moment: PyJWT reads the real clock, so the difference
    becomes its leeway (0 in real use).
    """
    # Imported here: PyJWT brings urllib.request, http.client and ssl, which cost every
    # sim node with a Python service tens of milliseconds of its boot for nothing.
    import jwt

    leeway = 0.0 if now is None else time.time() - now
    try:
        with _any_key_length():
            claims: dict[str, Any] = jwt.decode(
                token.strip(), secret.strip(), algorithms=["HS256"], issuer=JWT_ISSUER,
                leeway=leeway, options={"require": ["iss"], "verify_iat": False})
    except jwt.InvalidTokenError as exc:
        raise JWTError(_jwt_reason(exc)) from exc
    return claims
