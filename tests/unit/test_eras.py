"""What each release answers (lab/omnibus/eras.py, also carried by the sim image).

The expected texts here are written out by hand from the sources named in
docs/fidelity.md, so a change to a message in eras.py has to be a change here too.
"""

from __future__ import annotations

import base64
import json

import pytest

from lab.omnibus import eras
from lab.omnibus.auth import JWTError, decode_shell_jwt, encode_shell_jwt
from lab.omnibus.release import UNBOUNDED, Version

SECRET = "ab" * 64


def _jwt_ok(token: str, secret: str) -> bool:
    try:
        decode_shell_jwt(token, secret)
    except JWTError:
        return False
    return True


@pytest.mark.parametrize(("text", "expected"), [
    ("15.4.2", Version(15, 4, 2)), ("15.4", Version(15, 4, 0)),
    ("17.11.7-ee", Version(17, 11, 7)), (" 16.8.1\n", Version(16, 8, 1)),
    ("", UNBOUNDED), (None, UNBOUNDED), ("latest", UNBOUNDED), ("١٧.١١.٧", UNBOUNDED),
])
def test_the_release_a_node_was_told(text: str | None, expected: Version) -> None:
    assert Version.told(text) == expected


@pytest.mark.parametrize("text", ["15.4", "15.4.2-ee", "latest", "", "١٧.١١.٧", "15.4.2\n1"])
def test_a_users_release_is_x_y_z_only(text: str) -> None:
    with pytest.raises(ValueError, match=r"X\.Y\.Z"):
        Version.parse(text)


# -- internal API auth, per era ----------------------------------------------------------

@pytest.mark.parametrize(("version", "sends"), [
    ("13.12.15", ("Gitlab-Shared-Secret",)),
    ("15.1.6", ("Gitlab-Shared-Secret",)),                              # pinned 2021 shell
    ("15.2.0", ("Gitlab-Shared-Secret", "Gitlab-Shell-Api-Request")),   # shell v14.8.0
    ("15.5.9", ("Gitlab-Shared-Secret", "Gitlab-Shell-Api-Request")),
    ("15.6.0", ("Gitlab-Shell-Api-Request",)),                          # gitaly!4947
    ("19.3.0", ("Gitlab-Shell-Api-Request",)),
])
def test_gitaly_sends_the_header_of_its_release(version: str, sends: tuple[str, ...]) -> None:
    assert eras.gitaly_sends(Version.told(version)) == sends


@pytest.mark.parametrize(("version", "checks"), [
    ("13.12.15", "Gitlab-Shared-Secret"), ("15.4.6", "Gitlab-Shared-Secret"),
    ("15.5.0", "Gitlab-Shell-Api-Request"), ("18.0.0", "Gitlab-Shell-Api-Request"),
])
def test_rails_checks_the_header_of_its_release(version: str, checks: str) -> None:
    assert eras.rails_verifies(Version.told(version)) == checks


@pytest.mark.parametrize("version", ["13.12.15", "15.1.0", "15.3.0", "15.5.0", "15.6.0",
                                     "16.11.10", "19.3.0"])
def test_a_release_talks_to_itself(version: str) -> None:
    """Same-release Gitaly and Rails agree in every era; another secret is refused."""
    rel = Version.told(version)
    headers = eras.internal_api_headers(rel, SECRET, encode_shell_jwt)
    assert eras.internal_api_authorized(rel, headers, SECRET, _jwt_ok)
    assert not eras.internal_api_authorized(rel, headers, "cd" * 64, _jwt_ok)
    assert not eras.internal_api_authorized(rel, {}, SECRET, _jwt_ok)


def test_shared_secret_is_base64_of_the_secret_and_chomped() -> None:
    headers = eras.internal_api_headers(Version(14, 0, 0), SECRET, encode_shell_jwt)
    assert headers == {"Gitlab-Shared-Secret": base64.b64encode(SECRET.encode()).decode()}
    with_newline = {"gitlab-shared-secret": base64.b64encode(SECRET.encode() + b"\n").decode()}
    assert eras.internal_api_authorized(Version(14, 0, 0), with_newline, SECRET, _jwt_ok)
    # The secret_token parameter (gitlab-shell's oldest way) wins over the header.
    assert eras.internal_api_authorized(Version(14, 0, 0), {}, SECRET, _jwt_ok, secret_param=SECRET)


def test_a_jwt_only_gitaly_is_refused_by_a_shared_secret_rails() -> None:
    """A 15.6+ Gitaly against a 15.4 app: the JWT alone does not open the old API."""
    new_headers = eras.internal_api_headers(Version(15, 6, 0), SECRET, encode_shell_jwt)
    assert not eras.internal_api_authorized(Version(15, 4, 0), new_headers, SECRET, _jwt_ok)
    old_headers = eras.internal_api_headers(Version(15, 1, 0), SECRET, encode_shell_jwt)
    assert not eras.internal_api_authorized(Version(15, 6, 0), old_headers, SECRET, _jwt_ok)


# -- what a push prints when the internal API answers something else -----------------

@pytest.mark.parametrize(("status", "body", "message"), [
    (401, b'{"message":"401 Unauthorized"}', "401 Unauthorized"),
    (404, b"<html><body>404 Not Found</body></html>", "Internal API error (404)"),
    (502, b"Bad Gateway", "Internal API error (502)"),
    (500, b"", "Internal API error (500)"),
    (403, b'{"message":{"base":["x"]}}', "Internal API error (403)"),  # not a Go string
    (403, b'["message"]', "Internal API error (403)"),
    (401, b"{}", ""),
])
def test_internal_api_error_as_gitaly_prints_it(status: int, body: bytes, message: str) -> None:
    assert eras.internal_api_error(status, body) == message


@pytest.mark.parametrize(("content_type", "problem"), [
    ("application/json", None), ("application/json; charset=utf-8", None),
    ("text/html; charset=utf-8",
     "/allowed endpoint respond with unsupported content type: text/html"),
    ("", "/allowed endpoint respond with unsupported content type: mime: no media type"),
])
def test_allowed_must_be_json(content_type: str, problem: str | None) -> None:
    assert eras.allowed_content_type_error(content_type) == problem


def test_hook_message() -> None:
    assert eras.hook_message("Internal API error (404)") == "GitLab: Internal API error (404)"


# -- POST /api/v4/projects ------------------------------------------------------------------

@pytest.mark.parametrize(("version", "debug"), [("15.9.8", "DEBUG"), ("19.3.0", "{DEBUG}")])
def test_repository_exists_check_failing_is_a_400_with_the_grpc_message(version: str,
                                                                        debug: str) -> None:
    failure = eras.project_exists_check_failed(7, "permission denied", "DEBUG",
                                               Version.told(version))
    assert failure.status == 400
    assert failure.body_text() == ('{"message":{"base":["7:permission denied. '
                                   f'debug_error_string:{debug}"]}}}}')
    assert failure.logs == (("application_json.log", {
        "severity": "ERROR",
        "message": "Unable to save project. Error: 7:permission denied. "
                   f"debug_error_string:{debug}",
    }),)


@pytest.mark.parametrize(("version", "first"), [
    ("12.10.14", "Failed to create repository via gitlab-shell"),
    ("13.12.15", "Failed to create repository"),
    ("19.3.0", "Failed to create repository"),
])
def test_create_repository_failing_is_failed_to_create_repository(version: str,
                                                                  first: str) -> None:
    failure = eras.project_create_repository_failed(Version.told(version), 13, "boom")
    assert failure.status == 400
    assert json.loads(failure.body_text()) == {
        "message": {"base": [first, "Failed to create repository"]}}
    (exc_log, exc), *app = failure.logs
    assert exc_log == "exceptions_json.log"
    assert exc == {"severity": "ERROR", "exception.class": "Gitlab::Git::CommandError",
                   "exception.message": "13:boom", "exception.cause_class": "GRPC::Internal"}
    said = "Unable to save project. Error: Failed to create repository"
    # The create service's line: production.log before 13.1, application_json.log later.
    assert [(f, r["message"]) for f, r in app] == \
        ([] if version == "12.10.14" else [("application_json.log", said)])
    plain = dict(failure.lines)
    if version == "12.10.14":
        assert plain == {"production.log": said}
    elif version == "13.12.15":
        assert plain["application.log"].endswith(": " + said)
    else:
        assert plain == {}


@pytest.mark.parametrize(("version", "files"), [
    ("11.11.8", {"production.log"}),
    ("13.0.14", {"production.log"}),
    ("13.1.0", {"application.log", "application_json.log"}),
    ("15.9.8", {"application.log", "application_json.log"}),
    ("15.10.0", {"application_json.log"}),
    ("19.3.0", {"application_json.log"}),
])
def test_unable_to_save_goes_to_the_releases_log_files(version: str, files: set[str]) -> None:
    failure = eras.project_exists_check_failed(7, "permission denied", "", Version.told(version))
    written = {f for f, _ in failure.logs} | {f for f, _ in failure.lines}
    assert written == files
    for f, line in failure.lines:
        if f == "production.log":  # Rails.logger: the bare message
            assert line == "Unable to save project. Error: 7:permission denied"
    # AppTextLogger: Time#to_s(:long), then the message.
    records, lines = eras.unable_to_save(Version.told("13.12.15"), "x", now=1_700_000_000)
    assert lines == (("application.log", "November 14, 2023 22:13: Unable to save project. "
                      "Error: x"),)
    assert records == (("application_json.log", {"severity": "ERROR",
                                                  "message": "Unable to save project. Error: x"}),)


def test_already_on_disk() -> None:
    assert json.loads(eras.project_already_on_disk().body_text()) == {
        "message": {"base": ["There is already a repository with that name on disk"]}}


# -- Workhorse info/refs ------------------------------------------------------------------

def test_workhorse_unavailable_is_503_with_its_text_in_newer_releases() -> None:
    answer = eras.workhorse_info_refs_failed(Version(19, 3, 0), 14, "connection refused", "GET",
                                             "/root/p.git/info/refs?service=git-receive-pack")
    assert answer.status == 503
    assert answer.body == ("The git server, Gitaly, is not available at this time. "
                           "Please contact your administrator.\n")
    assert answer.log == {
        "error": "handleGetInfoRefs: rpc error: code = Unavailable desc = connection refused",
        "level": "error", "method": "GET", "msg": "error",
        "uri": "/root/p.git/info/refs?service=git-receive-pack"}


def test_workhorse_other_codes_and_older_releases_are_500() -> None:
    newer = eras.workhorse_info_refs_failed(Version(19, 3, 0), 7, "permission denied", "GET", "/x")
    assert (newer.status, newer.body) == (500, "Internal server error\n")
    older = eras.workhorse_info_refs_failed(Version(13, 12, 15), 14, "down", "GET", "/x")
    assert (older.status, older.body) == (500, "Internal server error\n")
    assert older.log["error"] == ("handleGetInfoRefs: GetInfoRefsHandler: rpc error: "
                                  "code = Unavailable desc = down")
