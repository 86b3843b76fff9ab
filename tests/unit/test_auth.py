"""Gitaly v2 tokens and the GitLab-Shell JWT (lab/omnibus/auth.py, also in the sim image)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from lab.omnibus.auth import (
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


MAC = hmac.new(SECRET.encode(), str(NOW).encode(), hashlib.sha256).hexdigest()


def _signed(message: str) -> str:
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


# Gitaly auth/token.go ExtractAuthInfo + go-grpc-middleware AuthFromMD: Unauthenticated.
@pytest.mark.parametrize("header", [
    None, "", f"v2.{MAC}.{NOW}", f"Basic v2.{MAC}.{NOW}", "Bearer ", "Bearer v2.abc",
    "Bearer " + SECRET, f"Bearer v2.{MAC}x.{NOW}", "Bearer v2.abc.1700000000",
    f"Bearer v2.{MAC[:-2]} 0.{NOW}",
])
def test_missing_or_malformed_is_unauthenticated(header: str | None) -> None:
    result = check_gitaly_auth(SECRET, header, now=NOW)
    assert result.outcome is AuthOutcome.UNAUTHENTICATED
    assert result.message == "authentication required"


# Gitaly auth/token.go CheckToken / v2HmacInfoValid: PermissionDenied.
@pytest.mark.parametrize("header", [
    f"Bearer v1.{MAC}.{NOW}",                       # only v2 is known
    f"Bearer v3.{MAC}.{NOW}",
    f"Bearer  v2.{MAC}.{NOW}",                      # the token is " v2...": version " v2"
    "Bearer v2..1700000000",                        # empty signature decodes; it is wrong
    f"Bearer v2.{_signed('notanumber')}.notanumber",  # right HMAC, timestamp unparsable
    f"Bearer v2.{_signed(f'{NOW}.x')}.{NOW}.x",     # at most three parts: message "<ts>.x"
    f"Bearer v2.{MAC}.{NOW}.x",
])
def test_other_versions_and_bad_timestamps_are_permission_denied(header: str) -> None:
    result = check_gitaly_auth(SECRET, header, now=NOW)
    assert result.outcome is AuthOutcome.PERMISSION_DENIED
    assert result.message == "permission denied"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_in_any_case(scheme: str) -> None:
    assert check_gitaly_auth(SECRET, f"{scheme} v2.{MAC}.{NOW}", now=NOW).ok


def test_uppercase_hex_signature_accepted() -> None:
    assert check_gitaly_auth(SECRET, f"Bearer v2.{MAC.upper()}.{NOW}", now=NOW).ok


@pytest.mark.parametrize("header", [None, "garbage", f"Bearer v2.{_signed('1')}.1"])
def test_transitioning_lets_every_call_through(header: str | None) -> None:
    assert not check_gitaly_auth(SECRET, header, now=NOW).ok
    assert check_gitaly_auth(SECRET, header, now=NOW, transitioning=True).ok


def test_empty_app_token_is_permission_denied() -> None:
    """Rails signs with an empty key when gitaly_token is unset: a v2 token all the same."""
    assert check_gitaly_auth(SECRET, "Bearer " + gitaly_v2_token("", NOW),
                             now=NOW).outcome is AuthOutcome.PERMISSION_DENIED


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
