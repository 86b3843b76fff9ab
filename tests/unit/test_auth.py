"""Gitaly v2 tokens and the GitLab-Shell JWT (lab/auth.py, also used inside the sim image)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from lab.auth import (
    AuthOutcome,
    JWTError,
    check_gitaly_auth,
    decode_shell_jwt,
    encode_shell_jwt,
    gitaly_v2_token,
)

SECRET = "s3cr3t-token-value"
NOW = 1_700_000_000


def test_v2_token_format_matches_gitaly() -> None:
    token = gitaly_v2_token(SECRET, now=NOW)
    mac = hmac.new(SECRET.encode(), str(NOW).encode(), hashlib.sha256).hexdigest()
    assert token == f"v2.{mac}.{NOW}"


def test_v2_token_accepted() -> None:
    result = check_gitaly_auth(SECRET, "Bearer " + gitaly_v2_token(SECRET, NOW), now=NOW)
    assert result.ok
    assert result.outcome is AuthOutcome.OK


@pytest.mark.parametrize("skew", [-30, 30, 0])
def test_v2_token_within_skew(skew: int) -> None:
    token = gitaly_v2_token(SECRET, NOW + skew)
    assert check_gitaly_auth(SECRET, "Bearer " + token, now=NOW).ok


@pytest.mark.parametrize("skew", [-31, 31, 3600])
def test_v2_token_outside_skew_is_permission_denied(skew: int) -> None:
    token = gitaly_v2_token(SECRET, NOW + skew)
    result = check_gitaly_auth(SECRET, "Bearer " + token, now=NOW)
    assert result.outcome is AuthOutcome.PERMISSION_DENIED
    assert result.message == "permission denied"


def test_wrong_secret_is_permission_denied() -> None:
    result = check_gitaly_auth(SECRET, "Bearer " + gitaly_v2_token("other", NOW), now=NOW)
    assert result.outcome is AuthOutcome.PERMISSION_DENIED


@pytest.mark.parametrize("header", [
    None, "", "v2.abc.1", "Basic abc", "Bearer ", "Bearer v1.abc.1", "Bearer v2.abc",
    "Bearer v2..1700000000", "Bearer v2.abc.notanumber", "Bearer " + SECRET,
])
def test_missing_or_malformed_is_unauthenticated(header: str | None) -> None:
    result = check_gitaly_auth(SECRET, header, now=NOW)
    assert result.outcome is AuthOutcome.UNAUTHENTICATED
    assert result.message == "authentication required"


def test_empty_secret_disables_auth() -> None:
    assert check_gitaly_auth("", None).ok
    assert check_gitaly_auth("", "garbage").ok


def test_jwt_roundtrip_and_claims() -> None:
    token = encode_shell_jwt(SECRET, now=NOW)
    claims = decode_shell_jwt(token, SECRET, now=NOW + 5)
    assert claims["iss"] == "gitlab-shell"
    assert claims["iat"] == NOW
    assert claims["exp"] > NOW
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"


def test_jwt_secret_whitespace_trimmed() -> None:
    token = encode_shell_jwt(SECRET + "\n", now=NOW)
    assert decode_shell_jwt(token, "  " + SECRET, now=NOW)["iss"] == "gitlab-shell"


def test_jwt_wrong_secret() -> None:
    with pytest.raises(JWTError, match="signature"):
        decode_shell_jwt(encode_shell_jwt("other", now=NOW), SECRET, now=NOW)


def test_jwt_expired() -> None:
    token = encode_shell_jwt(SECRET, now=NOW, ttl=60)
    with pytest.raises(JWTError, match="expired"):
        decode_shell_jwt(token, SECRET, now=NOW + 61)


def _forge(claims: dict[str, object], secret: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_jwt_wrong_issuer() -> None:
    token = _forge({"iss": "someone-else", "iat": NOW, "exp": NOW + 60}, SECRET)
    with pytest.raises(JWTError, match="issuer"):
        decode_shell_jwt(token, SECRET, now=NOW)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "!!!.???.***", "e30.e30.e30"])
def test_jwt_malformed(token: str) -> None:
    with pytest.raises(JWTError):
        decode_shell_jwt(token, SECRET, now=NOW)
