"""Gitaly-side texts by release: Rails' grpc gem on a failed connection, and the v1 tokens
Gitaly 1.x still took (lab/omnibus/eras.py GRPC_* and GITALY_V1_TOKEN rows)."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from lab.omnibus import eras
from lab.omnibus.auth import AuthOutcome, check_gitaly_auth, gitaly_v1_token, gitaly_v2_token
from lab.omnibus.release import Version
from lab.resources import data_dir
from lab.scenario import patterns
from lab.scenario.load import parse_scenario

V = Version.parse
SECRET = "s3cr3t-token-value"
NOW = 1_700_000_000

# What the sim's own C core (Debian's python3-grpcio 1.51.1) says, as seen in the sim image.
_PEER = "UNKNOWN: ipv4:172.18.0.3:9999: "
UNTRUSTED = (f"failed to connect to all addresses; last error: {_PEER}Ssl handshake failed: "
             "SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed")
SAN = f"failed to connect to all addresses; last error: {_PEER}Peer name gitaly1 is not in " \
      "peer certificate"


def live_debug(details: str) -> str:
    return f'UNKNOWN:{details} {{grpc_status:14, created_time:"2026-12-04T18:40:03+00:00"}}'


def app_log(rel: Version, details: str) -> str:
    """The lines the sim's app writes for a project whose RepositoryExists check failed."""
    shown = eras.grpc_call_failure(rel, 14, details, live_debug(details), now=NOW + 0.25)
    lines = [shown.stderr] if shown.stderr else []
    failure = eras.project_exists_check_failed(14, shown.details, shown.debug, rel)
    # As simconfig.log_json writes them: JSON, so the debug string's quotes are escaped.
    lines += [json.dumps(record, separators=(",", ":")) for _, record in failure.logs]
    lines += [line for _, line in failure.lines]
    return "\n".join(lines)


def log_pattern(name: str, rel: Version) -> str:
    path = data_dir("scenarios") / name
    step = parse_scenario(path.read_text(), str(path)).at(rel).steps[1]
    assert step.expect.log
    return step.expect.log.pattern


@pytest.mark.parametrize("release", ["15.9.8", "16.0.8"])
def test_before_16_1_the_gem_says_only_failed_to_connect_with_a_json_debug_string(
        release: str) -> None:
    shown = eras.grpc_call_failure(V(release), 14, UNTRUSTED, live_debug(UNTRUSTED),
                                   now=NOW + 0.25)
    assert shown.details == "failed to connect to all addresses"
    assert shown.debug.startswith('{"created":"@1700000000.250000000","description":'
                                  '"Failed to pick subchannel"')
    assert '"description":"failed to connect to all addresses"' in shown.debug
    assert "certificate" not in shown.debug
    assert shown.stderr == (
        "E1114 22:13:20.250000000       1 ssl_transport_security.cc:1379] Handshake failed "
        "with fatal error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
        "CERTIFICATE_VERIFY_FAILED.")
    # A wrong host name leaves no line at all; a refused connection neither.
    assert eras.grpc_call_failure(V("12.10.14"), 14, SAN, live_debug(SAN)).stderr is None


@pytest.mark.parametrize("release", ["16.1.0", "19.3.0"])
def test_from_16_1_the_sims_own_texts_pass_through(release: str) -> None:
    shown = eras.grpc_call_failure(V(release), 14, UNTRUSTED, live_debug(UNTRUSTED))
    assert (shown.details, shown.debug, shown.stderr) == (UNTRUSTED, live_debug(UNTRUSTED), None)


PEER = ('UNKNOWN:Error received from peer ipv4:172.18.0.3:8075 {grpc_message:"permission '
        'denied", grpc_status:7, created_time:"2026-12-04T18:40:03+00:00"}')


def test_an_answer_from_gitaly_keeps_its_details_and_gets_the_releases_debug_form() -> None:
    old = eras.grpc_call_failure(V("13.12.15"), 7, "permission denied", PEER, now=NOW + 0.25)
    assert (old.details, old.stderr) == ("permission denied", None)
    assert old.debug == (
        '{"created":"@1700000000.250000000","description":"Error received from peer '
        'ipv4:172.18.0.3:8075","file":"src/core/lib/surface/call.cc","file_line":1055,'
        '"grpc_message":"permission denied","grpc_status":7}')
    new = eras.grpc_call_failure(V("16.1.0"), 7, "permission denied", PEER)
    assert (new.details, new.debug) == ("permission denied", PEER)
    # A debug string with no peer in it (none at all, say) passes unchanged.
    assert eras.grpc_call_failure(V("12.10.14"), 7, "permission denied", "").debug == ""


def test_the_gem_appends_the_debug_string_in_braces_from_16_1() -> None:
    """grpc-ruby's BadStatus message: none before 13.3 (grpc < 1.30), the JSON string as it
    is from 13.3 (its own braces), absl's form wrapped in braces from 16.1 (errors.rb,
    grpc/grpc#22876 and #29869)."""
    for release in ("11.11.8", "12.10.14", "13.2.10"):
        assert eras.grpc_ruby_message(7, "permission denied", '{"a":1}', V(release)) == \
            "7:permission denied"
    assert eras.grpc_ruby_message(7, "permission denied", '{"a":1}', V("13.3.0")) == \
        '7:permission denied. debug_error_string:{"a":1}'
    assert eras.grpc_ruby_message(7, "permission denied", '{"a":1}', V("16.0.8")) == \
        '7:permission denied. debug_error_string:{"a":1}'
    assert eras.grpc_ruby_message(7, "permission denied", "UNKNOWN:x {y}", V("16.1.0")) == \
        "7:permission denied. debug_error_string:{UNKNOWN:x {y}}"
    # The host's own client has no debug string: only code and details, on every release.
    assert eras.grpc_ruby_message(7, "permission denied") == "7:permission denied"


@pytest.mark.parametrize("release", ["11.11.8", "12.10.14", "13.3.0", "15.9.8", "16.0.8",
                                     "16.1.0", "19.3.0"])
def test_auth_token_mismatch_holds_each_release_to_its_debug_form(release: str) -> None:
    def log(rel: Version) -> str:
        shown = eras.grpc_call_failure(rel, 7, "permission denied", PEER, now=NOW)
        failure = eras.project_exists_check_failed(7, shown.details, shown.debug, rel)
        return "\n".join([json.dumps(r, separators=(",", ":")) for _, r in failure.logs]
                         + [line for _, line in failure.lines])

    pattern = log_pattern("auth-token-mismatch.yaml", V(release))
    # The neighbouring era's form must not pass for this release's.
    other = {V("11.11.8"): V("13.3.0"), V("12.10.14"): V("13.3.0"), V("13.3.0"): V("13.2.10"),
             V("16.0.8"): V("16.1.0")}.get(V(release), V("19.3.0") if V(release) < V("16.1.0")
                                           else V("16.0.8"))
    assert patterns.search(pattern, log(V(release)))
    assert not patterns.search(pattern, log(other))


def test_rails_stderr_is_unicorns_before_puma() -> None:
    assert eras.rails_stderr_log(V("12.10.14")) == "unicorn/unicorn_stderr.log"
    assert eras.rails_stderr_log(V("13.0.0")) == "puma/puma_stderr.log"


@pytest.mark.parametrize(("scenario", "details"), [("tls-untrusted-ca.yaml", UNTRUSTED),
                                                   ("tls-san-mismatch.yaml", SAN)])
def test_tls_scenarios_hold_each_release_to_its_own_text(scenario: str, details: str) -> None:
    old, new = V("16.0.8"), V("16.1.0")
    for rel in (V("11.11.8"), V("12.10.14"), V("13.3.0"), V("15.9.8"), old):
        assert patterns.search(log_pattern(scenario, rel), app_log(rel, details))
        assert not patterns.search(log_pattern(scenario, rel), app_log(new, details))
        # Before 13.3 the message ends at the details; from 13.3 the debug string follows.
        neighbour = V("13.2.10") if rel >= V("13.3.0") else V("13.3.0")
        assert not patterns.search(log_pattern(scenario, rel), app_log(neighbour, details))
    assert patterns.search(log_pattern(scenario, new), app_log(new, details))
    assert not patterns.search(log_pattern(scenario, new), app_log(old, details))


class _RpcError(grpc.RpcError):  # type: ignore[misc]
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return UNTRUSTED

    def debug_error_string(self) -> str:
        return live_debug(UNTRUSTED)


def test_the_sims_rails_shows_its_releases_form(monkeypatch: pytest.MonkeyPatch) -> None:
    from labsim.common import simconfig
    from labsim.gitaly import gitaly_client

    written: list[tuple[str, str]] = []
    monkeypatch.setattr(simconfig, "log_line", lambda path, line: written.append((path, line)))
    err = gitaly_client.call_error(_RpcError(), V("12.10.14"))
    assert str(err).startswith("14:failed to connect to all addresses")
    assert err.debug.startswith('{"created":"@')
    [(path, line)] = written
    assert path == "unicorn/unicorn_stderr.log"
    assert "CERTIFICATE_VERIFY_FAILED." in line
    newest = gitaly_client.call_error(_RpcError())
    assert (newest.details, newest.debug) == (UNTRUSTED, live_debug(UNTRUSTED))
    assert len(written) == 1


def test_the_sims_repository_api_calls_show_the_releases_form(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The REST API's own Gitaly calls (files, branches, ...) go through the release's grpc
    gem too, not only project creation."""
    from labsim.common import simconfig
    from labsim.gitaly import gitaly_client, gitaly_git_client

    monkeypatch.setattr(simconfig, "log_line", lambda path, line: None)

    class _Storage:
        name = "default"

        def __init__(self, release: Version) -> None:
            self.release = release

        def metadata(self) -> list[tuple[str, str]]:
            return []

        def rails_call(self, run: Any) -> Any:
            raise _RpcError

    for release, details in (("12.10.14", "failed to connect to all addresses"),
                             ("19.3.0", UNTRUSTED)):
        repo = gitaly_git_client.Repository(_Storage(V(release)), "x.git",  # type: ignore[arg-type]
                                            "project-1", "root/x")
        with pytest.raises(gitaly_client.GitalyCallError) as caught:
            repo.default_branch()
        assert caught.value.details == details


# -- v1 tokens -------------------------------------------------------------------------

def test_gitaly_takes_v1_tokens_until_12_10() -> None:
    assert eras.gitaly_accepts_v1_tokens(V("11.11.8"))
    assert eras.gitaly_accepts_v1_tokens(V("12.9.10"))
    assert not eras.gitaly_accepts_v1_tokens(V("12.10.0"))
    assert eras.text(eras.GITALY_V1_TOKEN, V("19.3.0")) == "authentication required"


def test_v1_token_is_base64_of_the_secret() -> None:
    assert base64.b64decode(gitaly_v1_token(SECRET)) == SECRET.encode()


@pytest.mark.parametrize(("token", "v1", "outcome"), [
    (gitaly_v1_token(SECRET), True, AuthOutcome.OK),
    (gitaly_v1_token("another"), True, AuthOutcome.PERMISSION_DENIED),
    ("not*base64", True, AuthOutcome.UNAUTHENTICATED),
    (gitaly_v1_token(SECRET)[:-1], True, AuthOutcome.UNAUTHENTICATED),  # padding required
    ("v1.00." + gitaly_v1_token(SECRET), True, AuthOutcome.OK),
    (gitaly_v1_token(SECRET), False, AuthOutcome.UNAUTHENTICATED),
    ("v1.00." + gitaly_v1_token(SECRET), False, AuthOutcome.PERMISSION_DENIED),
])
def test_v1_tokens_as_gitaly_1x_and_12_10_judge_them(token: str, v1: bool,
                                                      outcome: AuthOutcome) -> None:
    assert check_gitaly_auth(SECRET, "Bearer " + token, now=NOW, v1=v1).outcome is outcome


def test_v2_tokens_are_judged_alike_in_both_eras() -> None:
    for v1 in (True, False):
        assert check_gitaly_auth(SECRET, "Bearer " + gitaly_v2_token(SECRET, NOW), now=NOW,
                                 v1=v1).ok
        assert check_gitaly_auth(SECRET, "Bearer " + gitaly_v2_token("x", NOW), now=NOW,
                                 v1=v1).outcome is AuthOutcome.PERMISSION_DENIED


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self, token: str) -> None:
        self.token = token
        self.aborted: tuple[Any, str] | None = None

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("authorization", "Bearer " + self.token)]

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def abort(self, code: Any, message: str) -> None:
        self.aborted = (code, message)
        raise _Aborted


@pytest.mark.parametrize(("release", "refused"), [
    ("12.9.10", None),
    ("12.10.14", (grpc.StatusCode.UNAUTHENTICATED, "authentication required")),
])
def test_the_sims_gitaly_takes_v1_tokens_on_its_release(tmp_path: Path, release: str,
                                                        refused: Any) -> None:
    from labsim.gitaly import gitaly_server

    gitaly = gitaly_server.Gitaly({"token": SECRET, "storages": {"default": str(tmp_path)}},
                                  V(release))
    context = _Context(gitaly_v1_token(SECRET))
    with contextlib.suppress(_Aborted):
        gitaly.authorize(context, "ServerInfo")  # type: ignore[arg-type]
    assert context.aborted == refused
