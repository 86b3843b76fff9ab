"""`lab doctor` judging and output: pure checks over facts, the table, text and JSON; no Docker."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from lab.model.needs import GiB, memory_needed
from lab.render.tls import make_ca, make_server_cert
from lab.spec.labspec import SpecRequest, resolve
from lab.support.doctor.checks import (
    Level,
    api_checks,
    config_checks,
    gitaly_checks,
    host_checks,
    judge,
    running_checks,
    secrets_checks,
    tls_checks,
)
from lab.support.doctor.facts import (
    ApiProbe,
    Gathered,
    GitalyProbe,
    HostFacts,
    NodeFacts,
    TlsFacts,
)
from lab.support.doctor.format import format_text
from lab.support.doctor.gather import hook_secret

COPY_HINT = ("copy /etc/gitlab/gitlab-secrets.json from the app node (gitlab) to gitaly1, "
             "then reconfigure gitaly1")


def levels(checks: list[Any]) -> dict[str, Level]:
    return {f"{c.scope}/{c.name}": c.level for c in checks}


def healthy_host(**over: Any) -> HostFacts:
    base: dict[str, Any] = dict(docker_version="24.0.7", compose="docker compose 2.24.1",
                                mem_available=16 * GiB, disk_free=100 * GiB, mem_needed=GiB,
                                disk_needed=GiB, images=(("gitlab-testlab/sim:abc", True),),
                                flavor="sim")
    base.update(over)
    return HostFacts(**base)


def test_healthy_host_is_all_ok() -> None:
    checks = host_checks(healthy_host())
    assert {c.level for c in checks} == {Level.OK}


def test_docker_down_fails_with_hint() -> None:
    checks = host_checks(healthy_host(docker_version=None, docker_error="connection refused"))
    docker = next(c for c in checks if c.name == "docker")
    assert docker.level is Level.FAIL
    assert "systemctl start docker" in docker.hint


def test_omnibus_memory_needs_4gb_per_app_node() -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus"))
    need = memory_needed(lab)
    assert need == 5 * GiB
    checks = host_checks(healthy_host(mem_available=3 * GiB, mem_needed=need, flavor="omnibus"))
    assert levels(checks)["host/memory"] is Level.WARN
    checks = host_checks(healthy_host(mem_available=2 * GiB, mem_needed=need, flavor="omnibus"))
    mem = next(c for c in checks if c.name == "memory")
    assert mem.level is Level.FAIL
    assert "4 GB per app node" in mem.hint


def test_busy_port_and_missing_image_fail() -> None:
    checks = host_checks(healthy_host(ports_busy=(("gitlab http", 8080),), ports_checked=1,
                                      images=(("gitlab/gitlab-ce:19.3.0-ce.0", False),)))
    by = levels(checks)
    assert by["host/ports"] is Level.FAIL
    assert by["host/image"] is Level.FAIL
    image = next(c for c in checks if c.name == "image")
    assert "docker pull gitlab/gitlab-ce:19.3.0-ce.0" in image.hint


def test_secrets_match() -> None:
    nodes = [NodeFacts("gitlab", "running", None, "", True, "sha256:a", "sha256:a"),
             NodeFacts("gitaly1", "running", None, "", True, "sha256:a", "sha256:a")]
    assert {c.level for c in secrets_checks("gitlab", nodes)} == {Level.OK}


def test_own_secrets_fail_with_the_guide_hint() -> None:
    nodes = [NodeFacts("gitlab", "running", None, "", True, "sha256:a", "sha256:a"),
             NodeFacts("gitaly1", "running", None, "", True, "sha256:b", "sha256:b")]
    checks = secrets_checks("gitlab", nodes)
    bad = [c for c in checks if c.level is Level.FAIL]
    assert len(bad) == 1
    assert bad[0].scope == "gitaly1"
    assert bad[0].hint == COPY_HINT
    assert "401 Unauthorized" in bad[0].detail


def test_gitaly_secret_differing_from_shell_secret_is_caught() -> None:
    # 17.5+: Gitaly signs with gitaly.gitlab_secret; a patched file can differ there only.
    nodes = [NodeFacts("gitlab", "running", None, "", True, "sha256:a", "sha256:a"),
             NodeFacts("gitaly1", "running", None, "", True, "sha256:a", "sha256:c")]
    bad = [c for c in secrets_checks("gitlab", nodes) if c.level is Level.FAIL]
    assert "gitaly.gitlab_secret" in bad[0].detail


def test_missing_secrets_file_fails() -> None:
    nodes = [NodeFacts("gitlab", "running", None, "", True, "sha256:a", "sha256:a"),
             NodeFacts("gitaly1", "running", None, "", False, None, None, "No such file")]
    bad = [c for c in secrets_checks("gitlab", nodes) if c.level is Level.FAIL]
    assert bad[0].name == "secrets file"
    assert bad[0].hint == COPY_HINT


def test_secrets_file_that_is_not_json_fails_not_ok() -> None:
    # A file cut short by hand was "OK present (shell secret none)", then a secret mismatch.
    nodes = [NodeFacts("gitlab", "running", None, "", True, "sha256:a", "sha256:a"),
             NodeFacts("gitaly1", "running", None, "", True, None, None, "not valid JSON")]
    checks = [c for c in secrets_checks("gitlab", nodes) if c.scope == "gitaly1"]
    assert [(c.name, c.level) for c in checks] == [("secrets file", Level.FAIL)]
    assert "not valid JSON" in checks[0].detail
    assert checks[0].hint == COPY_HINT


def test_hook_secret_prefers_gitaly_section() -> None:
    assert hook_secret({"gitlab_shell": {"secret_token": "s\n"}}) == "s"
    assert hook_secret({"gitlab_shell": {"secret_token": "s"},
                        "gitaly": {"gitlab_secret": "g"}}) == "g"


def test_gitaly_permission_denied_hint_names_both_tokens() -> None:
    checks = gitaly_checks("gitlab", [GitalyProbe("gitaly1", "tcp://gitaly1:8075",
                                                  ("default",), "7:permission denied")])
    assert checks[0].level is Level.FAIL
    assert "7:permission denied" in checks[0].detail
    assert "gitlab_rails['gitaly_token']" in checks[0].hint


def test_gitaly_ok_and_unreadable_storage() -> None:
    ok = gitaly_checks("gitlab", [GitalyProbe("gitaly1", "tcp://gitaly1:8075", ("default",))])
    assert ok[0].level is Level.OK
    bad = gitaly_checks("gitlab", [GitalyProbe("gitaly1", "tcp://gitaly1:8075",
                                               ("default", "s1"), unreadable=("s1",))])
    assert bad[0].level is Level.FAIL


def _cert(names: tuple[str, ...]) -> tuple[str, str]:
    ca_key, ca = make_ca("t")
    _, cert = make_server_cert(ca_key, ca, names)
    return ca, cert


def test_tls_ok() -> None:
    ca, cert = _cert(("gitaly1",))
    checks = tls_checks("gitlab", [TlsFacts("gitaly1", "gitaly1", cert, (ca,), (ca,))])
    assert [c.level for c in checks] == [Level.OK]


def test_tls_san_mismatch_untrusted_and_expiry() -> None:
    ca, cert = _cert(("wrong.example.com",))
    other_ca, _ = _cert(("x",))
    checks = tls_checks("gitlab", [TlsFacts("gitaly1", "gitaly1", cert, (other_ca,), ())])
    details = " | ".join(c.detail for c in checks)
    assert "does not include 'gitaly1'" in details
    assert "not signed by a CA that gitlab trusts" in details
    assert any(c.level is Level.WARN and "trust its own CA" in c.detail for c in checks)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=360)
    ca, cert = _cert(("gitaly1",))
    warn = tls_checks("gitlab", [TlsFacts("gitaly1", "gitaly1", cert, (ca,), (ca,))], now=soon)
    assert [c.level for c in warn] == [Level.WARN]
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    expired = tls_checks("gitlab", [TlsFacts("gitaly1", "gitaly1", cert, (ca,), (ca,))], now=late)
    assert [c.level for c in expired] == [Level.FAIL]


def test_internal_api_outcomes() -> None:
    checks = api_checks("gitlab", [
        ApiProbe("gitaly1", "http://gitlab", 200),
        ApiProbe("gitaly2", "http://gitlab", 401),
        ApiProbe("gitaly3", None),
        ApiProbe("gitaly4", "http://nowhere", 0, "Could not resolve host: nowhere"),
    ])
    assert [c.level for c in checks] == [Level.OK, Level.FAIL, Level.FAIL, Level.FAIL]
    assert checks[1].hint == COPY_HINT.replace("gitaly1", "gitaly2")
    assert "internal_api_url" in checks[2].hint
    assert "Could not resolve host" in checks[3].detail


def test_config_error_fails() -> None:
    checks = config_checks([NodeFacts("gitaly1", "running",
                                      "gitlab.rb:3: syntax error, unexpected end-of-input")])
    assert checks[0].level is Level.FAIL
    assert "syntax error" in checks[0].detail


def test_config_error_detail_is_the_line_naming_the_error() -> None:
    # Ruby follows a syntax error with the source line and a caret: not a detail.
    checks = config_checks([NodeFacts("gitaly1", "running",
                                      "gitlab.rb:2: not valid Ruby: syntax error, unexpected "
                                      "end-of-input\ngitaly['x'] = {\n               ^")])
    assert checks[0].detail == "gitlab.rb:2: not valid Ruby: syntax error, unexpected end-of-input"


def test_report_json_text_and_exit_status() -> None:
    g = Gathered(host=healthy_host(lab_running=True),
                 nodes=[NodeFacts("gitlab", "running", None, "", True, "sha256:a", "sha256:a"),
                        NodeFacts("gitaly1", "running", None, "", True, "sha256:b",
                                  "sha256:b")])
    report = judge("scaled", g, "gitlab")
    assert report.failed
    data = report.to_json()
    assert data["ok"] is False
    json.dumps(data)
    text = format_text(report)
    assert "FAIL  gitaly1" in text
    assert f"hint: {COPY_HINT}" in text
    healthy = judge("scaled", Gathered(host=healthy_host(lab_running=True)), "gitlab")
    assert not healthy.failed


@pytest.mark.parametrize("running", [True, False])
def test_not_running_lab_warns(running: bool) -> None:
    report = judge("x", Gathered(host=healthy_host(lab_running=running)), "gitlab")
    assert any(c.name == "running" for c in report.checks) is not running


def test_a_stopped_swarm_node_gets_the_swarm_way_back() -> None:
    """`docker start` of an ended task's container runs it outside Swarm; the node comes
    back by scaling its service, as `lab exec` says too."""
    nodes = [NodeFacts("gitaly1", "paused", None, ""), NodeFacts("gitaly2", "exited", None, ""),
             NodeFacts("gitaly3", "missing", None, "")]
    hints = {c.scope: c.hint for c in running_checks(nodes, "sw", "glt-sw")}
    assert hints["gitaly1"].startswith("unpause its container (docker unpause")
    assert hints["gitaly2"].startswith("scale its service back up (docker service scale "
                                       "glt-sw_gitaly2=1)")
    assert hints["gitaly3"].startswith("scale its service back up (docker service scale "
                                       "glt-sw_gitaly3=1)")
    down = judge("sw", Gathered(host=HostFacts(lab_running=False, swarm_stack="glt-sw")),
                 "gitlab")
    (hint,) = [c.hint for c in down.checks if c.name == "running"]
    assert hint.startswith("scale its services back up (docker service scale glt-sw_NODE=1)")
    assert "docker start" not in hint


def test_a_node_that_is_not_running_gets_the_hint_for_its_state() -> None:
    # "lab up (or docker start)" fitted none: lab up refuses while other nodes run (and
    # boots a new lab without the data), and docker start does not unpause.
    nodes = [NodeFacts("gitlab", "running", None, ""), NodeFacts("gitaly1", "paused", None, ""),
             NodeFacts("gitaly2", "exited", None, ""), NodeFacts("gitaly3", "missing", None, "")]
    hints = {c.scope: c.hint for c in running_checks(nodes, "st1")}
    assert hints["gitlab"] == ""
    assert hints["gitaly1"].startswith("unpause its container (docker unpause")
    assert hints["gitaly2"].startswith("start its container (docker start")
    assert hints["gitaly3"].startswith("its container is gone: `lab down st1`, then `lab up`")
