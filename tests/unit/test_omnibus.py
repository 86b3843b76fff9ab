"""Omnibus command strings, the services-up probe with its one retry, compose fragments."""

from __future__ import annotations

from typing import Any

import pytest

from lab import lifecycle
from lab.engine.images import image_for
from lab.engine.run import Result
from lab.errors import ImageMissing, NotReady
from lab.omnibus import node as omnibus
from lab.render.compose import compose_dict
from lab.spec import SpecRequest, resolve

TOKEN = "glpat-0123456789abcdef0123"


def test_admin_token_command_is_exactly_the_runner_call() -> None:
    assert omnibus.admin_token_cmd(TOKEN) == [
        "gitlab-rails", "runner",
        "user = User.find_by_username('root'); token = user.personal_access_tokens.create("
        "scopes: [:api, :read_repository, :write_repository], name: 'gitlab-testlab', "
        "expires_at: 365.days.from_now); token.set_token('glpat-0123456789abcdef0123'); "
        "token.save!; puts 'token-ok'"]


def test_probe_commands() -> None:
    assert omnibus.status_cmd() == ["/opt/gitlab/bin/gitlab-ctl", "status"]
    assert omnibus.status_cmd("gitaly") == ["/opt/gitlab/bin/gitlab-ctl", "status", "gitaly"]
    assert omnibus.reconfigure_cmd() == ["/opt/gitlab/bin/gitlab-ctl", "reconfigure"]
    assert omnibus.healthcheck_cmd() == ["/opt/gitlab/bin/gitlab-healthcheck", "--fail",
                                         "--max-time", "10"]
    assert omnibus.readiness_cmd() == ["curl", "-fsS", "--max-time", "10",
                                       "http://localhost/-/readiness?all=1"]
    assert omnibus.readiness_cmd(all_checks=False)[-1] == "http://localhost/-/readiness"
    assert omnibus.gitaly_check_cmd() == ["gitlab-rake", "gitlab:gitaly:check"]
    assert omnibus.reconfigure_running_cmd() == [
        "sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | grep -aEq '(cinc|chef)-client'"]
    assert omnibus.token_check_cmd(TOKEN)[-3:] == ["-H", f"PRIVATE-TOKEN: {TOKEN}",
                                                  "http://localhost/api/v4/user"]


def test_reconfigure_pattern_does_not_match_its_own_command_line() -> None:
    import re

    pattern = re.compile(omnibus.RECONFIGURE_PATTERN)
    assert pattern.search("/opt/gitlab/embedded/bin/cinc-client -z -c /opt/gitlab/embedded")
    assert pattern.search("chef-client --local-mode")
    assert not pattern.search(" ".join(omnibus.reconfigure_running_cmd()))


def res(code: int, out: str = "", err: str = "") -> Result:
    return Result([], code, out, err)


class FakeNode:
    """Scripted answers to the probe's commands; a clock the test moves."""

    def __init__(self) -> None:
        self.t = 0.0
        self.busy = False
        self.status = res(1, "down: puma: 0s, normally up; run: log: (pid 1) 5s\n")
        self.reconfigure = res(0, "Chef Infra Client finished")
        self.calls: list[list[str]] = []

    def exec(self, cmd: list[str], timeout: float | None) -> Result:
        self.calls.append(cmd)
        if cmd == omnibus.reconfigure_running_cmd():
            return res(0 if self.busy else 1)
        if cmd == omnibus.status_cmd():
            return self.status
        if cmd == omnibus.reconfigure_cmd():
            return self.reconfigure
        raise AssertionError(cmd)

    def probe(self) -> omnibus.ServicesProbe:
        return omnibus.ServicesProbe("gitlab", self.exec, lambda: self.t, grace=90)


def test_services_up_when_reconfigure_done_and_status_ok() -> None:
    node = FakeNode()
    probe = node.probe()
    node.busy = True
    assert probe() == omnibus.Status(False, "reconfigure running")
    node.busy = False
    node.status = res(0, "run: puma: (pid 8) 30s\nrun: gitaly: (pid 9) 30s\n")
    assert probe().ok


def test_empty_status_is_not_up() -> None:
    node = FakeNode()
    node.status = res(0, "")  # before the first reconfigure: no services, exit 0
    assert not node.probe()().ok


def test_failed_reconfigure_is_retried_once() -> None:
    node = FakeNode()
    probe = node.probe()
    assert "services not up (down: puma: 0s" in probe().detail
    node.t = 91
    assert probe().detail == "reconfigure retried; waiting for services"
    assert node.calls.count(omnibus.reconfigure_cmd()) == 1
    node.t = 300
    with pytest.raises(NotReady, match="still down after a retried"):
        probe()
    assert node.calls.count(omnibus.reconfigure_cmd()) == 1


def test_retry_is_announced_before_it_runs() -> None:
    node = FakeNode()
    told: list[tuple[str, int]] = []
    probe = omnibus.ServicesProbe(
        "gitlab", node.exec, lambda: node.t, grace=90,
        on_retry=lambda n: told.append((n, node.calls.count(omnibus.reconfigure_cmd()))))
    probe()
    node.t = 60
    probe()
    assert told == []  # still within the grace
    node.t = 91
    probe()
    assert told == [("gitlab", 0)]  # once, and before the reconfigure ran


def test_retry_failure_shows_reconfigure_log_tail() -> None:
    node = FakeNode()
    node.reconfigure = res(1, "Running handlers:\nThere was an error running gitlab-ctl "
                              "reconfigure:\nUnknown key foo['bar']\n")
    probe = node.probe()
    probe()
    node.t = 100
    with pytest.raises(NotReady) as err:
        probe()
    assert err.value.node == "gitlab"
    assert "failed (exit 1) when retried" in err.value.last_status
    assert "Unknown key foo['bar']" in err.value.log_tail


def test_busy_reconfigure_resets_the_grace() -> None:
    node = FakeNode()
    probe = node.probe()
    probe()
    node.busy = True
    node.t = 200
    probe()
    node.busy = False
    node.t = 250
    assert probe().detail.startswith("services not up")
    assert omnibus.reconfigure_cmd() not in node.calls


# --- compose fragments for the omnibus flavour ----------------------------------------

@pytest.fixture
def omnibus_compose() -> dict[str, Any]:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="19.3.0"))
    return compose_dict(lab, image_for(lab), "/labs/scaled")


def test_omnibus_services(omnibus_compose: dict[str, Any]) -> None:
    app, gitaly = omnibus_compose["services"]["gitlab"], omnibus_compose["services"]["gitaly1"]
    assert app["image"] == gitaly["image"] == "gitlab/gitlab-ce:19.3.0-ce.0"
    assert app["shm_size"] == "256m"
    assert app["healthcheck"]["test"] == ["CMD", *omnibus.healthcheck_cmd()]
    # Gitaly-only nodes: their own check (the image's marks them unhealthy before 19.1).
    assert gitaly["healthcheck"]["test"] == ["CMD", *omnibus.status_cmd("gitaly")]
    assert app["ports"] == ["127.0.0.1::80"]
    assert "ports" not in gitaly  # Gitaly is reachable only inside the lab network
    assert app["depends_on"] == ["gitaly1"]
    assert app["volumes"][0] == "./nodes/gitlab:/etc/gitlab"
    assert app["labels"]["io.gitlab-testlab.lab"] == "scaled"
    assert omnibus_compose["networks"]["lab"]["labels"]["io.gitlab-testlab.dir"] == "/labs/scaled"


def test_missing_omnibus_image_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="19.3.0"))
    monkeypatch.setattr(lifecycle.dk, "image_present", lambda ref: False)
    pulls: list[list[str]] = []

    def no_registry(cmd: list[str], **kw: Any) -> Result:
        pulls.append(list(cmd))
        return res(1, "", "Error response from daemon: Get https://mirror.invalid/v2/: "
                          "no such host")
    monkeypatch.setattr(lifecycle, "run", no_registry)
    with pytest.raises(ImageMissing) as err:
        lifecycle.ensure_image(lab, image_for(lab))
    assert pulls == [["docker", "pull", "gitlab/gitlab-ce:19.3.0-ce.0"]]
    msg = str(err.value)
    assert "docker pull gitlab/gitlab-ce:19.3.0-ce.0" in msg
    assert "lab images load FILE.tar" in msg
    assert "--flavor sim" in msg
