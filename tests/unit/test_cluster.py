"""Gitaly Cluster (Praefect) labs: the wiring the three sides must agree on, per release.

GitLab's docs (doc/administration/gitaly/praefect/configure.md): the app dials Praefect
with Praefect's external token; Praefect dials each Gitaly node with the internal token,
naming each node's storage as that node's gitaly['configuration'][:storage] does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import fixed_secrets, skip_or_fail

from lab.errors import SpecError
from lab.lifecycle.readiness import Verdict
from lab.model.topology import Lab
from lab.omnibus import praefect as pf
from lab.omnibus.release import Version
from lab.render.gitlab_rb import render_gitlab_rb, token_of
from lab.render.secrets import LabSecrets
from lab.spec.labspec import SpecRequest, resolve

RELEASES = ("13.3.0", "13.8.0", "13.9.0", "15.8.0", "15.9.0", "15.11.13", "16.0.0", "19.3.0")


def cluster(version: str = "19.3.0", *sets: str) -> tuple[Lab, LabSecrets, dict[str, str]]:
    lab = resolve(SpecRequest(topology="cluster", version=version, flavor="omnibus", sets=sets))
    sec = fixed_secrets(lab)
    return lab, sec, {n.name: render_gitlab_rb(lab, n, sec.gitaly_token, sec) for n in lab.nodes}


def quoted_after(text: str, key: str) -> list[str]:
    return re.findall(rf"{key}(?:'\])?(?: =>|:| =)\s*'([^']*)'", text)


@pytest.mark.parametrize("version", RELEASES)
def test_three_sides_agree(version: str) -> None:
    lab, sec, rb = cluster(version)
    # App -> Praefect with the external token.
    assert "'default' => { 'gitaly_address' => 'tcp://praefect:2305' }" in rb["gitlab"]
    assert f"gitlab_rails['gitaly_token'] = '{sec.gitaly_token}'" in rb["gitlab"]
    praefect = rb["praefect"]
    external = quoted_after(praefect, "auth_token") + quoted_after(praefect, "token")
    assert external[0] == sec.gitaly_token
    # Praefect -> each Gitaly with the internal token, each storage named as the node names it.
    for name in ("gitaly1", "gitaly2", "gitaly3"):
        assert sec.praefect_token in rb[name]
        assert sec.gitaly_token not in rb[name]
        assert f"'{name}'" in rb[name]  # the node's storage name
        assert re.search(rf"(?:'{name}' =>|storage: '{name}', address: 'tcp://{name}:8075', "
                         rf"token: '{sec.praefect_token}')", praefect)
        assert token_of(lab, sec, lab.node(name)) == sec.praefect_token
    assert token_of(lab, sec, lab.node("praefect")) == sec.gitaly_token
    assert sec.praefect_token != sec.gitaly_token
    # The database: Praefect's settings name the postgres node, user and password.
    assert "praefect-db" in praefect
    assert sec.praefect_db_password in praefect
    assert "roles(['postgres_role'])" in rb["praefect-db"]


@pytest.mark.parametrize(("version", "dialect"), [
    ("13.3.0", "nodes-only"), ("13.8.0", "nodes-only"), ("13.9.0", "factor"),
    ("15.8.0", "factor"), ("15.9.0", "configuration"), ("19.3.0", "configuration")])
def test_praefect_dialect_per_release(version: str, dialect: str) -> None:
    text = cluster(version)[2]["praefect"]
    assert ("praefect['configuration'] = {" in text) is (dialect == "configuration")
    assert ("praefect['virtual_storages'] = {" in text) is (dialect != "configuration")
    assert ("'nodes' => {" in text) is (dialect == "factor")
    assert ("default_replication_factor" in text) is (dialect != "nodes-only")


def test_replication_factor_is_settable() -> None:
    text = cluster("19.3.0", "nodes.praefect.replication_factor=2")[2]["praefect"]
    assert "default_replication_factor: 2," in text
    assert "default_replication_factor: 3," in cluster("19.3.0")[2]["praefect"]


def test_tls_on_praefect() -> None:
    _, sec, rb = cluster("19.3.0", "tls=true")
    assert "'default' => { 'gitaly_address' => 'tls://praefect:3305' }" in rb["gitlab"]
    assert "tls_listen_addr: '0.0.0.0:3305'," in rb["praefect"]
    assert "address: 'tls://gitaly1:9999'" in rb["praefect"]
    assert "praefect.crt" in sec.tls


def test_a_gitaly_token_of_its_own_differs_from_the_internal_one() -> None:
    _, sec, rb = cluster("19.3.0", "nodes.gitaly2.gitaly_token=other")
    assert "token: 'other'" in rb["gitaly2"]
    assert f"token: '{sec.praefect_token}'" in rb["gitaly1"]
    assert rb["praefect"].count(sec.praefect_token) == 3  # Praefect still sends its own


def test_storage_name_mismatch_is_renderable() -> None:
    # Praefect names gitaly3's storage after the node; the node calls it otherwise.
    rb = cluster("19.3.0", "nodes.gitaly3.storages=[gitaly-3]")[2]
    assert "name: 'gitaly-3'" in rb["gitaly3"]
    assert "storage: 'gitaly3'" in rb["praefect"]


def test_older_release_is_a_usage_error_naming_the_first() -> None:
    with pytest.raises(SpecError, match=r"start at GitLab 13\.3\.0.*cookbook from 12\.4\.0"):
        resolve(SpecRequest(topology="cluster", version="13.2.9"))
    assert pf.cluster_unsupported(Version.parse("13.3.0")) is None
    # SpecError is a usage error: exit code 2.
    assert SpecError("x").exit_code == 2



def test_diagram_checks_three_sides() -> None:
    from lab.render.diagram import mermaid, mismatches, rendered_hashes

    lab, sec, _ = cluster("19.3.0")
    assert mismatches(lab, rendered_hashes(lab, sec)) == []
    chart = mermaid(lab, rendered_hashes(lab, sec))
    assert '-->|"gRPC tcp://praefect:2305 (default)"| n_praefect' in chart
    assert '-->|"gRPC tcp://gitaly2:8075 (gitaly2)"| n_gitaly2' in chart
    lab, sec, _ = cluster("19.3.0", "nodes.gitaly2.gitaly_token=x", "nodes.gitlab.gitaly_token=y",
                          "nodes.gitaly3.storages=[gitaly-3]")
    assert mismatches(lab, rendered_hashes(lab, sec)) == [
        "gitaly auth token: gitlab vs praefect: differs",
        "gitaly auth token: praefect vs gitaly2: differs",
        "storage name: praefect vs gitaly3: praefect says gitaly3, the node serves gitaly-3"]


def test_collect_hash_table_has_an_internal_token_row() -> None:
    from lab.support.collect import hash_table

    table = hash_table({}, {"gitlab": "ext", "praefect": "ext"},
                       {"praefect": "int", "gitaly1": "int", "gitaly2": "other"})
    assert table["gitlab.rb gitaly token"]["praefect"] == table["gitlab.rb gitaly token"]["gitlab"]
    row = table["praefect internal token"]
    assert row["praefect"] == row["gitaly1"] != row["gitaly2"]
    assert row["gitlab"] is None


class FakeNodes:
    """A running cluster lab's exec, answering like the Omnibus nodes would."""

    def __init__(self, lab: Lab, sec: LabSecrets, db_there: bool = False) -> None:
        from lab.engine.run import Result

        self.Result = Result
        self.lab = lab
        self.rendered = type("Rendered", (), {"secrets": sec})()
        self.db_there = db_there
        self.calls: list[tuple[str, list[str]]] = []

    def exec(self, node: str, cmd: list[str], *, check: bool, timeout: float) -> object:
        self.calls.append((node, cmd))
        if cmd == pf.database_setup_cmd(self.rendered.secrets.praefect_db_password):
            made, self.db_there = not self.db_there, True
            return self.Result(cmd, 0, "DO\nCREATE DATABASE\n" if made else "DO\n", "")
        return self.Result(cmd, 0, "", "")


def test_omnibus_layers_make_the_database_then_migrate(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.lifecycle import layers

    monkeypatch.setattr(layers, "containers_routable", lambda: True)
    lab, sec, _ = cluster("19.3.0")
    fake = FakeNodes(lab, sec)
    names = [layer.name for layer in layers.readiness_layers(fake)]  # type: ignore[arg-type]
    assert names[:6] == ["containers running", "praefect database", "praefect migrated",
                         "services up", "praefect routes", "app ready"]
    asks = layers.LabProbes(fake)  # type: ignore[arg-type]
    first = asks.praefect_database("praefect-db")
    assert first == Verdict(True, "praefect_production created")
    again = asks.praefect_database("praefect-db")
    assert again == Verdict(True, "praefect_production exists")
    setup = pf.database_setup_cmd(sec.praefect_db_password)
    # One exec each time: the role, then the database where it is missing.
    assert [cmd for node, cmd in fake.calls if node == "praefect-db"] == [setup, setup]
    assert setup[:2] == ["/bin/sh", "-c"]
    assert setup[2].count(
        f"CREATE ROLE praefect WITH LOGIN PASSWORD '\"'\"'{sec.praefect_db_password}") == 1
    assert setup[2].endswith("| /opt/gitlab/bin/gitlab-psql -d template1 -v ON_ERROR_STOP=1 -tA")
    assert "CREATE DATABASE praefect_production WITH OWNER praefect ENCODING" in setup[2]
    assert asks.praefect_migrated("praefect").ok
    assert fake.calls[-1] == ("praefect", [pf.CHPST, "-u", "git:git", pf.BINARY, "-config",
                                           pf.CONFIG_TOML, "sql-migrate"])
    # The Praefect node answers ServerInfo with the external token; Gitaly nodes the internal.
    assert set(asks.gitaly(via_app=False)) == {"gitaly1", "gitaly2", "gitaly3", "praefect"}


def test_praefect_setup_waits_for_its_node_and_only_for_it() -> None:
    """The database is made once its node is up, before the other nodes' "services up";
    an apply that asks no node's services goes straight to the database question."""
    from lab.lifecycle import layers
    from lab.lifecycle.readiness import Layer, Probe

    asked: list[str] = []

    def answers(name: str, *verdicts: bool) -> Probe:
        left = list(verdicts)

        def probe() -> Verdict:
            asked.append(name)
            return Verdict(left.pop(0) if len(left) > 1 else left[0], name)
        return probe

    made = layers.After(answers("db up", False, True), answers("database", True))
    assert made() == Verdict(False, "db up")  # the database is not asked before its node
    assert made() == Verdict(True, "database")
    assert made() == Verdict(True, "database")
    assert asked == ["db up", "db up", "database", "database"]  # its node: not asked again

    setup = Layer(layers.PRAEFECT_DATABASE, {"praefect-db": made, "other": made.then})
    services = Layer(layers.SERVICES_UP, {"praefect-db": made.first, "gitaly1": made.first})
    kept = layers.services_asked_of(setup, {"gitaly1"})
    assert kept.probes == {"praefect-db": made.then, "other": made.then}
    assert layers.services_asked_of(setup, {"praefect-db"}).probes["praefect-db"] is made
    assert list(layers.services_asked_of(services, {"gitaly1"}).probes) == ["gitaly1"]


def test_sql_literal_doubles_quotes() -> None:
    assert pf.sql_literal("it's") == "'it''s'"


@pytest.mark.parametrize("version", RELEASES)
def test_read_praefect_reads_what_the_renderer_wrote(version: str, tmp_path: Path) -> None:
    if shutil.which("ruby") is None:
        skip_or_fail("ruby is not installed (apt-get install ruby)")
    from lab.omnibus.dialect import getter
    from lab.spec.rb_reader import read_rb

    _lab, sec, rb = cluster(version, "nodes.gitaly2.gitaly_token=x")
    path = tmp_path / "praefect.rb"
    path.write_text(rb["praefect"])
    facts = pf.read_praefect(getter(read_rb(path).settings), Version.parse(version))
    assert facts.enabled
    assert facts.listen_addr == "0.0.0.0:2305"
    assert facts.token == sec.gitaly_token
    assert facts.database == {"host": "praefect-db", "port": "5432", "user": "praefect",
                              "password": sec.praefect_db_password,
                              "dbname": "praefect_production", "sslmode": "disable"}
    assert facts.virtual_storages == {"default": [
        pf.PraefectBackend(f"gitaly{i}", f"tcp://gitaly{i}:8075", sec.praefect_token)
        for i in (1, 2, 3)]}
    factor = {} if not Version.parse(version).at_least("13.9.0") else {"default": 3}
    assert facts.replication_factor == factor


def test_doctor_cluster_checks_name_each_side() -> None:
    from lab.support.doctor.checks import Level, cluster_checks
    from lab.support.doctor.facts import BackendFacts, ClusterFacts

    good = BackendFacts("gitaly1", "tcp://gitaly1:8075", "sha:i", "gitaly1", "sha:i",
                        ("gitaly1",))
    bad_token = BackendFacts("gitaly2", "tcp://gitaly2:8075", "sha:i", "gitaly2", "sha:x",
                             ("gitaly2",))
    bad_name = BackendFacts("gitaly3", "tcp://gitaly3:8075", "sha:i", "gitaly3", "sha:i",
                            ("gitaly-3",))
    facts = ClusterFacts("praefect", "0.0.0.0:2305", "sha:e", ("default",), "sha:a",
                         ("default",), (good, bad_token, bad_name), "praefect-db:5432",
                         "praefect sql-ping: fail: dial tcp: connection refused", False)
    rows = {(c.scope, c.name): c for c in cluster_checks("gitlab", [facts])}
    assert rows[("praefect", "external token")].level is Level.FAIL
    assert "7:permission denied" in rows[("praefect", "external token")].detail
    assert rows[("gitaly1", "internal token")].level is Level.OK
    assert rows[("gitaly2", "internal token")].level is Level.FAIL
    assert rows[("gitaly2", "storage name")].level is Level.OK
    assert rows[("gitaly3", "storage name")].level is Level.FAIL
    assert "gitaly-3" in rows[("gitaly3", "storage name")].detail
    assert rows[("praefect", "database")].level is Level.FAIL
    ok = ClusterFacts("praefect", "0.0.0.0:2305", "sha:e", ("default",), "sha:e", ("default",),
                      (good,), "praefect-db:5432", "praefect sql-ping: OK", True)
    assert {c.level for c in cluster_checks("gitlab", [ok])} == {Level.OK}


@pytest.mark.parametrize("version", ["13.12.15", "19.3.0"])
def test_doctor_reads_the_three_sides_from_the_files(version: str, tmp_path: Path) -> None:
    if shutil.which("ruby") is None:
        skip_or_fail("ruby is not installed (apt-get install ruby)")
    from lab.support.doctor.checks import Level, cluster_checks
    from lab.support.doctor.gather import cluster_facts

    lab, sec, rb = cluster(version, "nodes.gitaly2.gitaly_token=x",
                           "nodes.gitaly3.storages=[gitaly-3]")
    for name, text in rb.items():
        (tmp_path / "nodes" / name).mkdir(parents=True)
        (tmp_path / "nodes" / name / "gitlab.rb").write_text(text)
    fake = FakeNodes(lab, sec)
    fake.path = tmp_path  # type: ignore[attr-defined]
    facts = cluster_facts(fake, lab.node("praefect"), {"praefect": "running"})  # type: ignore[arg-type]
    assert fake.calls == [("praefect", pf.praefect_cmd("sql-ping"))]
    assert facts.app_storages == ("default",)
    assert facts.app_token_sha == facts.external_sha
    assert [b.node for b in facts.backends] == ["gitaly1", "gitaly2", "gitaly3"]
    failed = {(c.scope, c.name) for c in cluster_checks("gitlab", [facts])
              if c.level is Level.FAIL}
    assert failed == {("gitaly2", "internal token"), ("gitaly3", "storage name")}


def test_legacy_praefect_keys_abort_reconfigure_from_16_0() -> None:
    from lab.omnibus.dialect import removals

    settings = {"praefect": {"auth_token": "x", "configuration": {"listen_addr": "a"}}}
    assert removals(settings, Version.parse("15.11.13")) == []
    [line] = removals(settings, Version.parse("16.11.10"))
    assert line.startswith("* praefect['auth_token'] has been deprecated since 15.9 and was "
                           "removed in 16.0. In GitLab 15.9, Praefect's configuration")


class ReplicaWorld:
    """A cluster lab's nodes answering the replicas step's search, and the API's commit."""

    def __init__(self, lab: Lab, holders: dict[str, str]) -> None:
        from types import SimpleNamespace

        from lab.client.gitlab import ApiResponse
        from lab.engine.run import Result

        self.holders = holders  # node -> its refs ("" = no repository)
        self.labs = SimpleNamespace(target=lab)
        self.projects = {"p1": {"id": 1, "repository_storage": "default"}}
        self.asked: list[tuple[str, list[str]]] = []

        def call(method: str, path: str, **kw: object) -> ApiResponse:
            body = ('{"commit": {"id": "abc123"}}' if "/branches/" in path
                    else '{"default_branch": "main"}')
            return ApiResponse(method, path, 200, body)

        def exec_(node: str, cmd: list[str], **kw: object) -> Result:
            self.asked.append((node, cmd))
            refs = self.holders.get(node, "")
            return Result(cmd, 0, f"/repos/@cluster/repositories/aa/bb/1\n{refs}\n" if refs
                          else "", "")

        self.client = SimpleNamespace(api=SimpleNamespace(call=call))
        self.running = SimpleNamespace(exec=exec_)

    def project_path(self, alias: str) -> str:
        return f"root/{alias}"


@pytest.mark.parametrize(("holders", "args", "ok"), [
    ({"gitaly1": "abc123 refs/heads/main", "gitaly2": "abc123 refs/heads/main",
      "gitaly3": "abc123 refs/heads/main"}, {}, True),
    ({"gitaly1": "abc123 refs/heads/main", "gitaly3": "abc123 refs/heads/main"}, {}, False),
    ({"gitaly1": "abc123 refs/heads/main", "gitaly2": "abc123 refs/heads/main",
      "gitaly3": "abc123 refs/heads/main def456 refs/heads/x"}, {}, False),
    ({"gitaly1": "abc123 refs/heads/main", "gitaly3": "abc123 refs/heads/main"},
     {"nodes": ["gitaly1", "gitaly3"], "absent": ["gitaly2"]}, True),
    ({"gitaly1": "abc123 refs/heads/main", "gitaly2": "abc123 refs/heads/main",
      "gitaly3": "abc123 refs/heads/main"}, {"absent": ["gitaly2"]}, False),
])
def test_replicas_step(holders: dict[str, str], args: dict[str, object], ok: bool) -> None:
    from types import SimpleNamespace

    from lab.scenario.steps import STEPS

    world = ReplicaWorld(cluster("19.3.0")[0], holders)
    step = SimpleNamespace(arg=lambda name, default=None: {"project": "p1", **args}.get(
        name, default))
    passed, text = STEPS["replicas"].run(world, step)  # type: ignore[arg-type]
    assert passed is ok, text
    node, cmd = world.asked[0]
    assert node == "gitaly1"
    assert cmd[:2] == ["bash", "-c"]
    assert cmd[-2:] == ["/var/opt/gitlab/git-data/repositories", "abc123"]


def test_a_lab_token_the_secrets_do_not_hold_is_refused_not_ignored() -> None:
    # With the secrets, every node's token comes from them (token_of): a different
    # lab_token would silently not be rendered.
    lab, sec, _ = cluster()
    with pytest.raises(ValueError, match="lab_token differs"):
        render_gitlab_rb(lab, lab.app, "another-token", sec)
    assert sec.gitaly_token in render_gitlab_rb(lab, lab.app, sec.gitaly_token, sec)


# --- the unhealthy step: Praefect's node_status, read until the node is unhealthy ---------

def test_node_health_sql_names_the_node_and_storage_as_literals_only() -> None:
    cmd = pf.node_health_cmd("gitaly2", "default")
    assert cmd[:-1] == ["/opt/gitlab/bin/gitlab-psql", "-d", "praefect_production",
                        "-v", "ON_ERROR_STOP=1", "-tA", "-c"]
    assert cmd[-1] == (
        "SELECT EXTRACT(EPOCH FROM NOW() - MAX(last_seen_active_at)), "
        "EXTRACT(EPOCH FROM NOW() - MAX(last_contact_attempt_at)) FROM node_status "
        "WHERE node_name = 'gitaly2' AND shard_name = 'default' HAVING COUNT(*) > 0")
    # A quote in a name stays inside its literal.
    sql = pf.node_health_cmd("x'; DROP TABLE node_status; --", "a'b")[-1]
    assert "node_name = 'x''; DROP TABLE node_status; --' AND shard_name = 'a''b' " in sql


def test_praefect_routes_once_each_virtual_storage_has_a_healthy_node() -> None:
    """CI, seven eras: at 13.12 a project created right after `lab up` met Praefect's
    "primary is not healthy": its health checks had found no Gitaly node up yet."""
    cmd = pf.routing_cmd(["default", "it's"])
    assert cmd[:-1] == ["/opt/gitlab/bin/gitlab-psql", "-d", "praefect_production",
                        "-v", "ON_ERROR_STOP=1", "-tA", "-c"]
    assert "shard_name IN ('default', 'it''s')" in cmd[-1]
    assert "last_seen_active_at >= NOW() - make_interval(secs => 10)" in cmd[-1]
    assert pf.unroutable("", ["default"]) == ["default"]
    assert pf.unroutable("default|0\n", ["default"]) == ["default"]
    assert pf.unroutable("default|1\n", ["default", "b"]) == ["b"]
    assert pf.unroutable("default|3\nb|1\n", ["default", "b"]) == []


def test_node_health_output() -> None:
    assert pf.parse_node_health("11.432187|0.301\n") == pf.NodeHealth(11.432187, 0.301)
    assert pf.parse_node_health("|2.5\n") == pf.NodeHealth(None, 2.5)
    assert pf.parse_node_health("") == pf.NodeHealth(None, None, recorded=False)
    # Past the failover timeout and one health-check tick, or never seen.
    assert pf.NodeHealth(None, 2.5).acted_on
    assert pf.NodeHealth(None, None, recorded=False).acted_on
    assert pf.NodeHealth(11.01, 0.1).acted_on
    assert not pf.NodeHealth(11.0, 0.1).acted_on
    assert not pf.NodeHealth(0.2, 0.2).acted_on
    for bad in ("ERROR\n", "1.0|2.0|3.0\n", "1.0|2.0\n3.0|4.0\n", "soon|1.0\n"):
        with pytest.raises(ValueError, match="unexpected psql output"):
            pf.parse_node_health(bad)


class HealthWorld:
    """A cluster lab whose database node answers node_status on a fake clock: ``seen_at``
    is when gitaly2's last successful health check was (None: never; "norow": no row;
    "always": it keeps passing them). Each read takes EXEC_TAKES of the clock."""

    EXEC_TAKES = 0.2

    def __init__(self, seen_at: float | str | None, *, rc: int = 0, stderr: str = "") -> None:
        from types import SimpleNamespace

        from lab.engine.run import Result

        self.now = 0.0
        self.seen_at, self.rc, self.stderr = seen_at, rc, stderr
        self.labs = SimpleNamespace(target=cluster("19.3.0")[0])
        self.asked: list[tuple[str, list[str], float]] = []
        self.slept: list[float] = []

        def exec_(node: str, cmd: list[str], **kw: object) -> Result:
            self.asked.append((node, cmd, self.now))
            read_at = self.now
            self.now += self.EXEC_TAKES
            if self.rc or self.seen_at == "norow":
                return Result(cmd, self.rc, "", self.stderr)
            attempt = read_at - int(read_at)  # a check every whole second
            if self.seen_at is None:
                seen = ""
            elif self.seen_at == "always":
                seen = f"{attempt:.3f}"
            else:
                seen = f"{read_at - float(self.seen_at):.3f}"
            return Result(cmd, 0, f"{seen}|{attempt:.3f}\n", "")

        self.running = SimpleNamespace(exec=exec_)
        self.time = SimpleNamespace(monotonic=lambda: self.now, sleep=self.sleep)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def times(self) -> list[float]:
        return [round(t, 3) for _, _, t in self.asked]


def _unhealthy(world: HealthWorld, monkeypatch: pytest.MonkeyPatch,
               **args: object) -> tuple[bool, str]:
    from types import SimpleNamespace

    from lab.scenario import steps as steps_module

    monkeypatch.setattr(steps_module, "time", world.time)
    step = SimpleNamespace(arg=lambda name, default=None: {"node": "gitaly2", **args}.get(
        name, default))
    return steps_module.STEPS["unhealthy"].run(world, step)  # type: ignore[arg-type]


TAIL = "; unhealthy after 10 s (Praefect acts on it at its next 1 s health check)"


def test_unhealthy_reads_node_status_again_when_the_check_it_saw_is_old_enough(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read is a `docker exec`: read every half second, the step cost a cluster
    scenario 23 of them (CI's seven eras were CPU-bound)."""
    world = HealthWorld(seen_at=0.0)
    ok, text = _unhealthy(world, monkeypatch)
    assert ok, text
    # Read at 0 s (last good check 0 s ago), then when it is past the failover timeout
    # and one tick (11 s) and the margin: once.
    assert world.times() == [0.0, 11.1]
    assert all(node == "praefect-db" for node, _, _ in world.asked)
    assert all(cmd == pf.node_health_cmd("gitaly2", "default") for _, cmd, _ in world.asked)
    assert world.slept == pytest.approx([10.9])  # what is left after the read's 0.2 s
    assert text == ("gitaly2: Praefect's last successful health check 11.1 s ago, last "
                    "attempt 0.1 s ago (node_status)" + TAIL)


def test_unhealthy_reads_again_when_a_newer_check_passed_in_between(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The node stopped only after the first read (its checks passed until 4.5 s): the
    read at 11.1 s sees a check 6.6 s old and waits what is left of that one."""
    world = HealthWorld(seen_at=0.0)
    seen_at = iter([0.0, 4.5, 4.5])  # as each read finds it
    real = world.running.exec

    def exec_(node: str, cmd: list[str], **kw: object) -> object:
        world.seen_at = next(seen_at)
        return real(node, cmd, **kw)

    world.running.exec = exec_
    ok, text = _unhealthy(world, monkeypatch)
    assert ok, text
    assert world.times() == pytest.approx([0.0, 11.1, 15.6])
    assert text == ("gitaly2: Praefect's last successful health check 11.1 s ago, last "
                    "attempt 0.6 s ago (node_status)" + TAIL)


@pytest.mark.parametrize(("seen_at", "said"), [
    (None, "gitaly2: Praefect's last successful health check never, last attempt 0.0 s ago "
           "(node_status)" + TAIL),
    ("norow", "gitaly2: no health check by Praefect recorded (node_status)" + TAIL),
    (-30.0, "gitaly2: Praefect's last successful health check 30.0 s ago, last attempt "
            "0.0 s ago (node_status)" + TAIL),
])
def test_unhealthy_at_once_when_never_or_long_ago_seen(
        monkeypatch: pytest.MonkeyPatch, seen_at: float | str | None, said: str) -> None:
    world = HealthWorld(seen_at=seen_at)
    ok, text = _unhealthy(world, monkeypatch)
    assert ok, text
    assert text == said
    assert world.times() == [0.0]
    assert world.slept == []


def test_unhealthy_fails_with_the_evidence_when_the_wait_runs_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = HealthWorld(seen_at="always")  # its health checks keep passing
    ok, text = _unhealthy(world, monkeypatch, wait=3)
    assert not ok
    assert text == ("gitaly2: Praefect's last successful health check 0.0 s ago, last "
                    "attempt 0.0 s ago (node_status)" + TAIL + "; still so after waiting 3 s")
    # Read at 0 s, then at the deadline (the check it saw is never old enough before),
    # never slept past it.
    assert world.times() == [0.0, 3.0]
    assert world.now == pytest.approx(3.2)


def test_unhealthy_fails_when_the_database_cannot_be_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = HealthWorld(seen_at=0.0, rc=2, stderr="psql: error: connection to server failed")
    ok, text = _unhealthy(world, monkeypatch, wait=1)
    assert not ok
    assert text == ("gitaly2: reading node_status on praefect-db failed: psql: error: "
                    "connection to server failed; still so after waiting 1 s")
    assert world.times() == [0.0, 0.5, 1.0]


def test_the_database_setup_is_one_psql_script_that_makes_what_is_missing(
        tmp_path: Path) -> None:
    """database_setup_cmd's shell line hands psql the role's DO block and a \\gexec that makes
    the database only where the catalogue lacks it (a fake gitlab-psql records its input)."""
    psql = tmp_path / "gitlab-psql"
    seen = tmp_path / "stdin"
    psql.write_text(f"#!/bin/sh\necho \"$@\" > {seen}.args\ncat > {seen}\necho DO\n")
    psql.chmod(0o755)
    cmd = pf.database_setup_cmd("it's $HOME `x`")
    line = cmd[2].replace(pf.GITLAB_PSQL, str(psql))
    res = subprocess.run([cmd[0], "-c", line], capture_output=True, text=True, check=False)
    assert (res.returncode, res.stdout) == (0, "DO\n"), res.stderr
    assert not pf.database_made(res.stdout)
    assert pf.database_made("DO\nCREATE DATABASE\n")
    assert Path(f"{seen}.args").read_text() == "-d template1 -v ON_ERROR_STOP=1 -tA\n"
    role, make = seen.read_text().splitlines()
    # Quotes doubled for SQL, and nothing expanded by the shell on the way.
    assert "LOGIN PASSWORD 'it''s $HOME `x`'; ELSE ALTER ROLE" in role
    assert role.startswith("DO $$BEGIN IF NOT EXISTS")
    assert role.endswith("END$$;")
    assert make == ("SELECT 'CREATE DATABASE praefect_production WITH OWNER praefect ENCODING "
                    "''UTF8''' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = "
                    "'praefect_production') \\gexec")
