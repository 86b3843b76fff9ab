"""Omnibus command strings, the services-up probe, the gitaly check, compose fragments."""

from __future__ import annotations

from typing import Any

import pytest

from lab.engine.images import image_for
from lab.engine.run import Result
from lab.errors import EngineError, ImageMissing
from lab.lifecycle import handle, lab_image, probes
from lab.omnibus.node import (
    admin_token_cmd,
    exited_during_reconfigure,
    gitaly_check_cmd,
    healthcheck_cmd,
    node_services,
    parse_gitaly_check,
    readiness_cmd,
    status_cmd,
    token_check_cmd,
)
from lab.render.compose_file import compose_dict
from lab.spec.labspec import SpecRequest, resolve
from lab.spec.versions import Version

TOKEN = "glpat-0123456789abcdef0123"


def test_admin_token_command_finds_before_it_creates() -> None:
    cmd = admin_token_cmd(TOKEN)
    assert cmd[:2] == ["gitlab-rails", "runner"]
    ruby = cmd[2]
    # Looked up by value first (the digest index): a second run must not insert it again.
    assert ruby.startswith(f"t = PersonalAccessToken.find_by_token('{TOKEN}'); if t.nil?; ")
    assert ruby.index("find_by_token") < ruby.index(".create(") < ruby.index("t.save!")
    assert "elsif t.revoked? || t.expired?; t.update!(revoked: false" in ruby
    assert ruby.endswith("end; puts 'token-ok'")
    assert "364.days.from_now" in ruby  # within the 365-day maximum of 16.0+


def test_probe_commands() -> None:
    assert status_cmd() == ["/opt/gitlab/bin/gitlab-ctl", "status"]
    assert status_cmd("gitaly") == ["/opt/gitlab/bin/gitlab-ctl", "status", "gitaly"]
    assert healthcheck_cmd() == ["/opt/gitlab/bin/gitlab-healthcheck", "--fail",
                                         "--max-time", "10"]
    assert readiness_cmd() == ["curl", "-fsS", "--max-time", "10",
                                       "http://localhost/-/readiness?all=1"]
    assert readiness_cmd(all_checks=False)[-1] == "http://localhost/-/readiness"
    assert gitaly_check_cmd() == ["gitlab-rake", "gitlab:gitaly:check"]
    assert token_check_cmd(TOKEN)[-3:] == ["-H", f"PRIVATE-TOKEN: {TOKEN}",
                                                  "http://localhost/api/v4/user"]


def res(code: int, out: str = "", err: str = "") -> Result:
    return Result([], code, out, err)


# --- gitlab:gitaly:check -----------------------------------------------------------------

GITALY_CHECK_MIXED = """Checking Gitaly ...

Gitaly: ... default ... OK
storage1 ... FAIL: 14:failed to connect to all addresses

Checking Gitaly ... Finished

"""


def test_gitaly_check_is_read_per_storage() -> None:
    assert parse_gitaly_check(GITALY_CHECK_MIXED) == {
        "default": "", "storage1": "14:failed to connect to all addresses"}
    colored = "Gitaly: ... \x1b[32mdefault ... OK\x1b[0m"
    assert parse_gitaly_check("Gitaly: ... default ... \x1b[32mOK\x1b[0m") == {
        "default": ""}
    assert "default" in parse_gitaly_check(colored)


def test_gitaly_check_exit_0_with_fail_is_a_failure() -> None:
    # The rake task exits 0 whatever it prints.
    st = probes.gitaly_check_status(res(0, GITALY_CHECK_MIXED), ["default", "storage1"])
    assert not st.ok
    assert "storage1: 14:failed to connect" in st.detail
    assert probes.gitaly_check_status(res(0, GITALY_CHECK_MIXED), ["default"]).ok
    missing = probes.gitaly_check_status(res(0, GITALY_CHECK_MIXED), ["default", "archive"])
    assert not missing.ok
    assert "no result for archive" in missing.detail
    crashed = probes.gitaly_check_status(res(1, "", "rake aborted!\nPG::ConnectionBad"),
                                          ["default"])
    assert not crashed.ok
    assert "PG::ConnectionBad" in crashed.detail


# --- services up -------------------------------------------------------------------------

STAMP = "2026-11-29T19:37:01.123456789Z"


class FakeNode:
    """Scripted `gitlab-ctl status` and container log, as the image shows them in turn."""

    def __init__(self) -> None:
        # What the wrapper shows before reconfigure: runsvdir runs with sshd only.
        self.status = res(0, "run: sshd: (pid 12) 3s; run: log: (pid 11) 3s\n")
        self.log: list[str] = [f"{STAMP} Starting services...", f"{STAMP} Configuring GitLab..."]
        self.calls: list[list[str]] = []
        self.reads: list[str | None] = []

    def exec(self, cmd: list[str], timeout: float | None) -> Result:
        self.calls.append(cmd)
        if cmd == status_cmd():
            return self.status
        raise AssertionError(cmd)

    def read_log(self, since: str | None) -> str:
        self.reads.append(since)
        text = "\n".join(self.log) + "\n"
        self.log = []
        return text

    def probe(self, services: tuple[str, ...] = ("puma",)) -> probes.ServicesProbe:
        return probes.ServicesProbe("gitlab", self.exec, self.read_log, services)


def test_sshd_before_reconfigure_is_not_services_up() -> None:
    node = FakeNode()
    probe = node.probe()
    # gitlab-ctl status exits 0 with `run: sshd`: the old probe's "up".
    st = probe()
    assert not st.ok
    assert st.detail == "reconfigure running"
    assert node.calls == []  # no exec while the log says reconfigure has not finished


def test_reconfigure_phase_is_shown_and_the_log_read_on() -> None:
    node = FakeNode()
    probe = node.probe()
    probe()
    node.log = ["2026-11-29T19:38:00.5Z Recipe: gitlab::database_migrations",
                "2026-11-29T19:38:01.5Z   * bash[migrate gitlab-rails database] action run"]
    assert probe().detail == "reconfigure running (gitlab::database_migrations)"
    assert node.reads == [None, STAMP]  # from the container's start, then on from there
    node.log = ["2026-11-29T19:40:00.5Z gitlab Reconfigured!"]
    node.status = res(0, "run: gitaly: (pid 40) 60s; run: log: (pid 1) 80s\n"
                         "down: puma: 1s, normally up; run: log: (pid 2) 80s\n"
                         "run: sshd: (pid 12) 90s; run: log: (pid 11) 90s\n")
    assert probe() == probes.Verdict(False, "services not up (puma down)")
    node.status = res(0, "run: puma: (pid 41) 5s; run: log: (pid 2) 80s\n")
    assert probe().ok
    assert len(node.reads) == 3  # once reconfigured, the log is not read again


def test_with_no_services_reconfigured_is_up_without_an_exec() -> None:
    """Praefect's setup layers wait only for reconfigure on their node: what they run
    next (psql, sql-migrate) is their own check of the service."""
    node = FakeNode()
    probe = node.probe(services=())
    assert probe() == probes.Verdict(False, "reconfigure running")
    node.log = [f"{STAMP} gitlab Reconfigured!"]
    assert probe() == probes.Verdict(True, "reconfigured")
    assert node.calls == []


def test_own_service_must_be_listed_not_just_exit_0() -> None:
    node = FakeNode()
    node.log.append(f"{STAMP} gitlab Reconfigured!")
    probe = node.probe(("gitaly",))
    node.status = res(0, "run: sshd: (pid 12) 3s; run: log: (pid 11) 3s\n")
    assert probe() == probes.Verdict(False, "services not up (gitaly not set up)")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_sim_node_is_up_when_its_pid_1_logs_so_without_an_exec() -> None:
    node = FakeNode()
    probe = probes.ServicesProbe("gitlab", node.exec, node.read_log, ("gitaly", "puma"),
                                 up_lines=True, now=Clock())
    assert probe() == probes.Verdict(False, "reconfigure running")
    node.log = [f"{STAMP} gitlab Reconfigured!",
                f"{STAMP} 2026-11-29T19:37:01 wrapper: services up: gitaly, sshd"]
    # Up without puma: still starting, and no exec within STATUS_EVERY of that.
    assert probe() == probes.Verdict(False, "services starting")
    node.log = [f"{STAMP} 2026-11-29T19:37:01 wrapper: services changing",
                f"{STAMP} 2026-11-29T19:37:02 wrapper: services up: gitaly, puma, sshd"]
    assert probe() == probes.Verdict(True, "services up")
    assert node.calls == []
    assert node.reads == [None, STAMP, STAMP]  # on from the last line read


def test_a_sim_node_whose_services_changed_since_its_up_line_is_not_up() -> None:
    node = FakeNode()
    node.log = [f"{STAMP} gitlab Reconfigured!",
                f"{STAMP} 2026-11-29T19:37:01 wrapper: services up: puma, sshd",
                f"{STAMP} 2026-11-29T19:37:02 wrapper: services changing"]
    probe = probes.ServicesProbe("gitlab", node.exec, node.read_log, ("puma",),
                                 up_lines=True, now=Clock())
    assert probe() == probes.Verdict(False, "services starting")
    # Each chunk read on from there: no news keeps what the last line said.
    assert probe() == probes.Verdict(False, "services starting")
    node.log = [f"{STAMP} 2026-11-29T19:37:03 wrapper: services up: puma, sshd"]
    assert probe().ok


def test_without_its_up_line_a_sim_node_is_asked_every_status_every_seconds() -> None:
    """Which service is down is still said while waiting (and in a timeout's message)."""
    node = FakeNode()
    node.log = [f"{STAMP} gitlab Reconfigured!"]
    clock = Clock()
    probe = probes.ServicesProbe("gitlab", node.exec, node.read_log, ("puma",),
                                 up_lines=True, now=clock)
    node.status = res(3, "down: puma: 1s, normally up; run: log: (pid 2) 80s\n")
    assert probe() == probes.Verdict(False, "services starting")
    clock.t += probes.STATUS_EVERY - 0.5
    assert probe() == probes.Verdict(False, "services starting")
    assert node.calls == []
    clock.t += 0.5
    assert probe() == probes.Verdict(False, "services not up (puma down)")
    clock.t += 1
    assert probe() == probes.Verdict(False, "services not up (puma down)")  # said again
    assert node.calls == [status_cmd()]
    clock.t += probes.STATUS_EVERY
    node.status = res(0, "run: puma: (pid 41) 5s; run: log: (pid 2) 80s\n")
    assert probe().ok  # the exec's answer counts as before
    assert len(node.calls) == 2


def test_node_services_by_role_and_release() -> None:
    v = Version.parse
    assert node_services(v("19.3.0"), app=True, gitaly=True) == ("gitaly", "puma")
    assert node_services(v("12.10.14"), app=True, gitaly=False) == ("unicorn",)
    assert node_services(v("17.11.7"), app=False, gitaly=True) == ("gitaly",)


def test_exited_during_reconfigure_is_told_from_the_log() -> None:
    assert exited_during_reconfigure("Configuring GitLab...\nThere was an error\n")
    assert not exited_during_reconfigure(f"{STAMP} gitlab Reconfigured!\nbye\n")


# --- compose fragments for the omnibus flavour ----------------------------------------

@pytest.fixture
def omnibus_compose() -> dict[str, Any]:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="19.3.0"))
    return compose_dict(lab, image_for(lab), "/labs/scaled")


def test_omnibus_services(omnibus_compose: dict[str, Any]) -> None:
    app, gitaly = omnibus_compose["services"]["gitlab"], omnibus_compose["services"]["gitaly1"]
    assert app["image"] == gitaly["image"] == "gitlab/gitlab-ce:19.3.0-ce.0"
    assert app["shm_size"] == "256m"
    assert app["healthcheck"]["test"] == ["CMD", *healthcheck_cmd()]
    # Gitaly-only nodes: their own check (the image's marks them unhealthy before 19.1).
    assert gitaly["healthcheck"]["test"] == ["CMD", *status_cmd("gitaly")]
    assert app["ports"] == ["127.0.0.1::80"]
    assert "ports" not in gitaly  # Gitaly is reachable only inside the lab network
    assert "depends_on" not in app  # every node starts at once
    assert app["volumes"][0] == "./nodes/gitlab:/etc/gitlab"
    assert app["labels"]["io.gitlab-testlab.lab"] == "scaled"
    # gitlab-ctl boots Ruby: not every 5 s; and PostgreSQL gets time to stop.
    assert app["healthcheck"]["interval"] == gitaly["healthcheck"]["interval"] == "60s"
    assert app["stop_grace_period"] == "120s"
    assert omnibus_compose["networks"]["lab"]["labels"]["io.gitlab-testlab.dir"] == "/labs/scaled"


def test_an_omnibus_pull_shows_its_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    # A multi-GB pull that says nothing for minutes looks hung.
    from lab.engine import docker as dk
    from lab.lifecycle.readiness import RecordingProgress

    events = [{"status": "Pulling from gitlab/gitlab-ce", "id": "19.3.0-ce.0"},
              {"status": "Pulling fs layer", "id": "a1"}, {"status": "Pulling fs layer",
                                                           "id": "b2"},
              {"status": "Downloading", "id": "a1",
               "progressDetail": {"current": 500_000_000, "total": 1_000_000_000}},
              {"status": "Downloading", "id": "b2",
               "progressDetail": {"current": 1_000_000_000, "total": 3_000_000_000}},
              {"status": "Pull complete", "id": "a1"}]

    class Api:
        def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> object:
            assert (repository, tag) == ("gitlab/gitlab-ce", "19.3.0-ce.0")
            return iter(events)

    monkeypatch.setattr(dk, "_client", lambda: type("C", (), {"api": Api()})())
    monkeypatch.setattr(handle.dk, "image_present", lambda ref: False)
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="19.3.0"))
    seen: list[str] = []

    class Recording(RecordingProgress):
        def layer_update(self, layer: str, waiting: Any, elapsed: float) -> None:
            super().layer_update(layer, waiting, elapsed)
            seen.extend(waiting.values())

    progress = Recording()
    lab_image.ensure_image(lab, image_for(lab), progress)
    assert ("start", "pulling image") in progress.events
    assert ("done", "pulling image") in progress.events
    assert seen[-1] == "2.00 of 4.00 GB, 1/2 layers"
    assert "0.50 of 1.00 GB, 0/2 layers" in seen


def test_a_pull_error_in_the_stream_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.engine import docker as dk

    class Api:
        def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> object:
            return iter([{"error": "manifest unknown"}])

    monkeypatch.setattr(dk, "_client", lambda: type("C", (), {"api": Api()})())
    with pytest.raises(EngineError, match="manifest unknown"):
        dk.pull("gitlab/gitlab-ce:99.0.0-ce.0")


def test_missing_omnibus_image_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="omnibus", version="19.3.0"))
    monkeypatch.setattr(handle.dk, "image_present", lambda ref: False)
    pulls: list[str] = []

    def no_registry(ref: str, progress: object = None) -> None:
        pulls.append(ref)
        raise EngineError(["pull", ref], -1, "500 Server Error: Get "
                          "https://mirror.invalid/v2/: no such host")
    monkeypatch.setattr(lab_image, "pull_image", no_registry)
    with pytest.raises(ImageMissing) as err:
        lab_image.ensure_image(lab, image_for(lab))
    assert pulls == ["gitlab/gitlab-ce:19.3.0-ce.0"]
    msg = str(err.value)
    assert "no such host" in msg
    assert "docker pull gitlab/gitlab-ce:19.3.0-ce.0" in msg
    assert "lab images load FILE.tar" in msg
    assert "--flavor sim" in msg
