"""The sim's Praefect, the parts that need neither Docker nor the image's database client:
what a Praefect or database node's gitlab.rb starts, the config.toml it writes, replica
paths, texts, and a scenario that stops two nodes before starting them again."""

from __future__ import annotations

import importlib
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import grpc
import pytest
from conftest import ROOT
from test_scenario_steps import _run
from test_sim_config import node as sim_node

from lab.scenario.results import Outcome
from lab.scenario.steps import STEPS

GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture
def simconfig() -> ModuleType:
    return importlib.import_module("labsim.common.simconfig")


@pytest.fixture
def pure() -> ModuleType:
    return importlib.import_module("labsim.praefect.pure")


@pytest.mark.parametrize("release", ["13.3.0", "19.3.0"])
def test_praefect_node_starts_praefect_from_either_dialect(
        simconfig: ModuleType, tmp_path: Path, release: str) -> None:
    text = (GOLDEN / f"cluster-{release}" / "nodes" / "praefect" / "gitlab.rb").read_text()
    got = sim_node(simconfig, tmp_path, text, version=release)
    assert (got["gitaly"], got["app"], got["postgresql"]) == (None, None, None)
    p = got["praefect"]
    assert p["listen_addr"] == "0.0.0.0:2305"
    assert p["token"].endswith("01")  # the external token
    assert p["database"]["host"] == "praefect-db"
    assert p["database"]["dbname"] == "praefect_production"
    nodes = p["virtual_storages"]["default"]
    assert [n["storage"] for n in nodes] == ["gitaly1", "gitaly2", "gitaly3"]
    assert {n["token"][-2:] for n in nodes} == {"09"}  # the internal token
    assert nodes[0]["address"] == "tcp://gitaly1:8075"


def test_database_node_runs_only_postgresql(simconfig: ModuleType, tmp_path: Path) -> None:
    text = (GOLDEN / "cluster-19.3.0" / "nodes" / "praefect-db" / "gitlab.rb").read_text()
    got = sim_node(simconfig, tmp_path, text, version="19.3.0")
    # roles(['postgres_role']): any role turns off the default services it does not name.
    assert (got["gitaly"], got["app"], got["praefect"]) == (None, None, None)
    assert got["postgresql"]["listen_address"] == "0.0.0.0"
    assert got["postgresql"]["md5_auth_cidr_addresses"] == ["0.0.0.0/0"]
    postgres = importlib.import_module("labsim.praefect.postgres")
    hba = postgres.hba(got["postgresql"]).splitlines()
    assert hba[1:] == ["local all all trust", "host all all 127.0.0.1/32 trust",
                       "host all all 0.0.0.0/0 md5"]


def test_gitaly_role_node_still_runs_gitaly(simconfig: ModuleType, tmp_path: Path) -> None:
    text = (GOLDEN / "cluster-19.3.0" / "nodes" / "gitaly1" / "gitlab.rb").read_text()
    got = sim_node(simconfig, tmp_path, text, version="19.3.0")
    assert got["gitaly"]["storages"] == {"gitaly1": "/var/opt/gitlab/git-data/repositories"}
    assert (got["praefect"], got["postgresql"]) == (None, None)


def test_config_toml_is_praefects_own_structure(pure: ModuleType, tmp_path: Path) -> None:
    conf = {"listen_addr": "0.0.0.0:2305", "tls_listen_addr": "", "token": 'ex"t',
            "database": {"host": "praefect-db", "port": "5432", "dbname": "praefect_production"},
            "replication_factor": {"default": 2},
            "virtual_storages": {"default": [
                {"storage": "gitaly1", "address": "tcp://gitaly1:8075", "token": "int"}]}}
    path = tmp_path / "praefect" / "config.toml"
    pure.write_config(conf, str(path))
    data = tomllib.loads(path.read_text())
    assert data["auth"]["token"] == 'ex"t'
    assert data["database"]["port"] == 5432
    (vs,) = data["virtual_storage"]
    assert (vs["name"], vs["default_replication_factor"]) == ("default", 2)
    assert vs["node"] == [{"storage": "gitaly1", "address": "tcp://gitaly1:8075",
                           "token": "int"}]
    assert path.stat().st_mode & 0o777 == 0o640


def test_replica_paths_are_praefects(pure: ModuleType) -> None:
    # sha256("1") = 6b86b273...; sha256("42") = 73475cb4...
    assert pure.replica_path(1) == "@cluster/repositories/6b/86/1"
    assert pure.replica_path(42) == "@cluster/repositories/73/47/42"


def test_grpc_codes_read_as_go_names_them(pure: ModuleType) -> None:
    assert pure.go_code(grpc.StatusCode.PERMISSION_DENIED) == "PermissionDenied"
    assert pure.go_code(grpc.StatusCode.UNAVAILABLE) == "Unavailable"
    assert pure.go_code(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert pure.go_code(grpc.StatusCode.OK) == "OK"


def test_starting_one_of_two_stopped_nodes_does_not_wait_for_the_lab(tmp_path: Path) -> None:
    # The lab can't be ready while another node the scenario stopped is down; the start
    # that brings the last one back waits.
    result, (lab,) = _run(tmp_path, textwrap.dedent("""\
        lab: {topology: scaled}
        steps:
          - stop: gitaly1
          - stop: gitlab
          - start: gitaly1
          - start: gitlab
        """), dict(STEPS), _recording_verbs())
    assert result.outcome is Outcome.PASSED, result.message
    assert "gitlab still down" in result.steps[2].output
    assert "lab ready" in result.steps[3].output
    assert lab.calls.count(("wait_ready",)) == 1  # after the last start only


def _recording_verbs() -> dict[str, Any]:
    from lab.lifecycle.faults import VERBS, Verb
    return {name: Verb(v.name, lambda target: None, undo=v.undo, ready_after=v.ready_after)
            for name, v in VERBS.items()}


# -- check, list-storages, accept-dataloss: texts and release rules (labsim/praefect/texts.py)

@pytest.fixture
def texts() -> ModuleType:
    return importlib.import_module("labsim.praefect.texts")


def _v(text: str) -> Any:
    from lab.omnibus.release import Version
    return Version.parse(text)


@pytest.mark.parametrize(("name", "last_without", "first_with"), [
    ("accept-dataloss", "13.2.10", "13.3.0"), ("check", "14.4.5", "14.5.0"),
    ("list-storages", "15.0.5", "15.1.0")])
def test_each_subcommand_answers_from_the_release_that_has_it(
        texts: ModuleType, name: str, last_without: str, first_with: str) -> None:
    assert not texts.has_subcommand(name, _v(last_without))
    assert texts.has_subcommand(name, _v(first_with))
    assert texts.has_subcommand("sql-ping", _v("13.0.0"))
    assert texts.unknown_subcommand(name) == f'praefect: unknown subcommand: "{name}"'


def test_checks_grow_release_by_release(texts: ModuleType) -> None:
    names = {v: [c.name for c in texts.checks_for(_v(v))]
             for v in ("14.5.0", "14.6.0", "14.7.0", "14.8.0", "16.11.10")}
    assert names["14.5.0"] == ["praefect migrations", "gitaly node connectivity & disk access"]
    assert names["14.6.0"][2:] == ["database read/write"]
    assert names["14.7.0"][3:] == ["unavailable repositories"]
    assert names["14.8.0"][4:] == names["16.11.10"][4:] == ["clock synchronization"]


def test_check_headings_short_before_14_6_and_with_q(texts: ModuleType) -> None:
    mig = texts.checks_for(_v("16.11.10"))[0]
    short = "Checking praefect migrations..."
    assert texts.check_heading(mig, quiet=False, version=_v("14.5.0")) == short
    assert not texts.has_quiet_flag(_v("14.5.0"))
    assert texts.check_heading(mig, quiet=True, version=_v("16.11.10")) == short
    assert texts.check_heading(mig, quiet=False, version=_v("14.6.0")) == (
        "Checking praefect migrations - confirms whether or not all praefect migrations "
        "have run [fatal]\n")
    assert texts.check_outcome(mig, None) == "Passed\n"
    assert texts.check_outcome(mig, "2 migrations have not been run") == \
        "Failed (fatal) error: 2 migrations have not been run\n"


def test_check_summary_counts_and_says_if_one_was_fatal(texts: ModuleType) -> None:
    checks = {c.name: c for c in texts.checks_for(_v("16.11.10"))}
    warn, fatal = checks["unavailable repositories"], checks["clock synchronization"]
    assert texts.check_summary([]) == "\nAll checks passed.\n"
    assert texts.check_summary([warn]) == "\n1 check(s) failed, but none are fatal.\n"
    assert texts.check_summary([warn, fatal]) == \
        "\n2 check(s) failed, at least one was fatal.\n"
    assert texts.unavailable_lines({}) == ["All repositories are available."]
    assert texts.unavailable_lines({"b": 2, "a": 1}) == [
        'virtual-storage "a" has 1 repository that is unavailable.',
        'virtual-storage "b" has 2 repositories that are unavailable.']


def test_clock_check_texts(texts: ModuleType) -> None:
    assert texts.drift_threshold_ms({}) == 60000
    assert texts.drift_threshold_ms({"DRIFT_THRESHOLD": "1m30s"}) == 90000
    assert texts.drift_threshold_ms({"DRIFT_THRESHOLD": "0"}) == 0
    with pytest.raises(ValueError, match="expected to be an duration"):
        texts.drift_threshold_ms({"DRIFT_THRESHOLD": "5 seconds"})
    with pytest.raises(ValueError, match="0 or at least 1ms"):
        texts.drift_threshold_ms({"DRIFT_THRESHOLD": "10ns"})
    assert texts.clock_message("", 60000, "01H") == (
        "checking with NTP service at  and allowed clock drift 60000 ms [correlation_id: 01H]")
    err = "lookup pool.ntp.org on 127.0.0.11:53: no such host"
    assert texts.ntp_failure(_v("15.4.0"), "", err) == \
        f"praefect: query ntp host pool.ntp.org: {err}"
    assert texts.ntp_failure(_v("15.5.0"), "", err).endswith(" (NTP_HOST was not set)")
    assert texts.ntp_failure(_v("15.5.0"), "ntp.lan", "x") == "praefect: query ntp host ntp.lan: x"


def test_list_storages_is_tablewriters_tab_padded_table(texts: ModuleType) -> None:
    vss = {"default": [{"storage": "gitaly1", "address": "tcp://gitaly1:8075"},
                       {"storage": "gitaly-two", "address": "tls://gitaly2:9999"}],
           "other": [{"storage": "g", "address": "tcp://g:1"}]}
    assert texts.list_storages(vss) == (
        "VIRTUAL_STORAGE\tNODE      \tADDRESS            \n"
        "default        \tgitaly1   \ttcp://gitaly1:8075\t\n"
        "default        \tgitaly-two\ttls://gitaly2:9999\t\n"
        "other          \tg         \ttcp://g:1         \t\n")
    assert texts.list_storages(vss, "other") == (
        "VIRTUAL_STORAGE\tNODE\tADDRESS   \nother          \tg   \ttcp://g:1\t\n")
    assert texts.list_storages(vss, "nope") == "No virtual storages named nope.\n"


def test_accept_dataloss_errors_per_release(texts: ModuleType) -> None:
    old, new = _v("15.11.13"), _v("16.11.10")
    assert texts.missing_flags(old, {"virtual-storage": "default"}) == \
        '"repository" is a required parameter'
    assert texts.missing_flags(new, {"virtual-storage": "default"}) == \
        'Required flags "repository, authoritative-storage" not set'
    assert texts.missing_flags(new, {"virtual-storage": "d", "repository": "r"}) == \
        'Required flag "authoritative-storage" not set'
    assert texts.missing_flags(new, dict.fromkeys(texts.ACCEPT_FLAGS, "x")) is None
    assert texts.repository_missing(_v("16.0.0"), "default", "@hashed/a.git") == \
        'repository "@hashed/a.git" does not exist on virtual storage "default"'
    assert texts.repository_missing(_v("16.1.0"), "default", "x") == \
        "repository does not exist on virtual storage"
    assert texts.set_authoritative_error('unknown virtual storage: "x"') == (
        "set authoritative storage: rpc error: code = InvalidArgument desc = "
        'unknown virtual storage: "x"')


def test_errors_get_logs_date_only_from_the_cli_toolkit(texts: ModuleType) -> None:
    import time
    now = time.strptime("2026-12-05 08:00:00", "%Y-%m-%d %H:%M:%S")
    assert texts.failure(_v("15.11.13"), "checks failed", now=now) == "checks failed"
    assert texts.failure(_v("16.0.0"), "checks failed", now=now) == \
        "2026/12/05 08:00:00 checks failed"
    assert texts.failure(_v("16.0.0"), "set authoritative storage: x", exit_coder=True,
                         now=now) == "set authoritative storage: x"


def test_flags_parse_as_gos_flag_package(texts: ModuleType) -> None:
    strings = ("virtual-storage", "repository")
    assert texts.parse_flags(["-virtual-storage", "default", "--repository=a b"],
                             strings=strings) == {"virtual-storage": "default",
                                                  "repository": "a b"}
    assert texts.parse_flags(["-q"], bools=("q",)) == {"q": "true"}
    assert texts.parse_flags(["-q", "extra"], bools=("q",))["positional"] == "extra"
    with pytest.raises(texts.Usage, match="flag provided but not defined: -q"):
        texts.parse_flags(["-q"])
    with pytest.raises(texts.Usage, match="flag needs an argument: -repository"):
        texts.parse_flags(["-repository"], strings=strings)


@pytest.fixture
def praefect_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """labsim.praefect.server imported with a stand-in for the image's psycopg2 (it only
    names psycopg2.Error until it talks to a database), and forgotten afterwards."""
    import sys
    import types

    import labsim.praefect

    fake = types.ModuleType("psycopg2")
    fake.Error = Exception  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "psycopg2", fake)
    names = ("store", "server")
    for name in names:
        monkeypatch.delitem(sys.modules, f"labsim.praefect.{name}", raising=False)
        monkeypatch.delattr(labsim.praefect, name, raising=False)
    yield importlib.import_module("labsim.praefect.server")
    for name in names:
        sys.modules.pop(f"labsim.praefect.{name}", None)
        if hasattr(labsim.praefect, name):
            delattr(labsim.praefect, name)


@pytest.mark.parametrize("tls", [False, True])
def test_praefect_dials_the_address_a_node_name_has_now(
        praefect_server: ModuleType, monkeypatch: pytest.MonkeyPatch, tls: bool) -> None:
    """Gitaly's client dials host:port anew for each connection (grpc-go passthrough): a node
    that came back at another node's old address is never reached at its own old one."""
    answers = iter(["172.31.0.5", "172.31.0.5", "172.31.0.6", None, "172.31.0.5"])
    monkeypatch.setattr(praefect_server, "resolve", lambda host, port: next(answers))
    dialled: list[tuple[str, dict[str, Any]]] = []

    def insecure(target: str, options: list[tuple[str, Any]]) -> object:
        dialled.append((target, dict(options)))
        return SimpleNamespace(subscribe=lambda callback: None,
                               unsubscribe=lambda callback: None, close=lambda: None)

    def secure(target: str, creds: object, options: list[tuple[str, Any]]) -> object:
        return insecure(target, options)

    monkeypatch.setattr(praefect_server.grpc, "insecure_channel", insecure)
    monkeypatch.setattr(praefect_server.grpc, "secure_channel", secure)
    monkeypatch.setattr(praefect_server.grpc, "ssl_channel_credentials", lambda pem: None)
    monkeypatch.setattr(praefect_server.simconfig, "trusted_ca_pem", lambda: b"")
    scheme = "tls" if tls else "tcp"
    node = praefect_server.Node("default", "gitaly2", f"{scheme}://gitaly2:8075", "t")
    first = node.channel()
    assert node.channel() is first  # the same address: the same channel
    third = node.channel()  # the name moved: a channel to where it is now
    assert third is not first
    node.channel()  # no address (the container is stopped): the name, which fails to resolve
    node.channel()
    assert [t for t, _ in dialled] == ["172.31.0.5:8075", "172.31.0.6:8075", "gitaly2:8075",
                                       "172.31.0.5:8075"]
    for target, options in dialled:
        if target.startswith("172."):
            assert options["grpc.default_authority"] == "gitaly2:8075"
            assert options.get("grpc.ssl_target_name_override") == ("gitaly2" if tls else None)
        else:
            assert "grpc.default_authority" not in options


def test_a_node_that_refused_a_connection_is_reached_as_soon_as_it_listens_again(
        praefect_server: ModuleType) -> None:
    """Omnibus restarts Gitaly gracefully on a reconfigure (its listeners handed over), so
    Praefect never meets a refusal there; the sim's Gitaly stops and starts. A call that
    met the refusal must not leave the node in gRPC's reconnect backoff (0.5 s and more)
    for the next call, made once the node listens again."""
    import socket
    import time
    from concurrent import futures

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = praefect_server.Node("default", "gitaly1", f"tcp://127.0.0.1:{port}", "t")
    check = praefect_server.HEALTH_CHECK
    first = node.channel()
    with pytest.raises(grpc.RpcError) as refused:
        first.unary_unary(check)(b"", timeout=2)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    # The channel reports its failure on gRPC's own thread (within milliseconds; Praefect's
    # health checks come a second apart): from then on the node hands out a new channel.
    deadline = time.monotonic() + 5
    while node.channel() is first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert node.channel() is not first
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(
            lambda request, context: b"")})])
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    try:
        answered = node.channel().unary_unary(check)(b"", timeout=2)
    finally:
        server.stop(None)
        # No gRPC thread outlives the test (a later fork in this worker would say so).
        node.close()
        first.close()
    assert answered == b""


class Stop:
    """A stop event that is never set, whose waits return at once and are recorded."""

    def __init__(self, events: list[str], *, set_after: int = 100) -> None:
        self.events, self.left = events, set_after

    def wait(self, seconds: float | None = None) -> bool:
        self.events.append(f"tick {seconds:g}" if seconds is not None else "wait")
        self.left -= 1
        return self.left < 0

    def is_set(self) -> bool:
        return self.left < 0


def praefect_of(praefect_server: ModuleType, release: str) -> Any:
    from lab.omnibus.release import Version

    conf = {"listen_addr": "0.0.0.0:2305", "token": "x", "database": {"host": "praefect-db"},
            "virtual_storages": {"default": [
                {"storage": "gitaly1", "address": "tcp://gitaly1:8075", "token": "t"}]}}
    return praefect_server.Praefect(conf, Version.parse(release))


def test_praefect_serves_after_its_first_written_health_round(
        praefect_server: ModuleType) -> None:
    """From 14.0 (per_repository) Praefect waits for its health manager's first update, which
    comes a tick (1 s) after the start and counts only once node_status could be written
    (Gitaly serve.go `<-healthManager.Updated()`, health_manager.go `Run`)."""
    events: list[str] = []
    praefect = praefect_of(praefect_server, "19.3.0")
    written = iter([False, False, True])

    def check() -> bool:
        events.append("check")
        return next(written)

    praefect.check_health = check
    assert praefect.first_health_update(Stop(events)) is True
    assert events == ["tick 1", "check"] * 3
    assert praefect.first_health_update(Stop([], set_after=0)) is False  # stopped first


@pytest.mark.parametrize(("release", "waits"), [("19.3.0", True), ("13.12.15", False)])
def test_praefect_listens_after_its_database_and_first_update(
        praefect_server: ModuleType, monkeypatch: pytest.MonkeyPatch, release: str,
        waits: bool) -> None:
    """Praefect pings its database first and exits 1 when that fails (initDatabase's
    "send ping"); from 14.0 it serves after the first health update, before 14.0 at once
    (the node manager checks the nodes meanwhile)."""
    praefect = praefect_of(praefect_server, release)
    events: list[str] = []
    monkeypatch.setattr(praefect_server, "Praefect", lambda conf, version: praefect)
    monkeypatch.setattr(praefect_server.simconfig, "read_runtime", lambda: {"praefect": {}})
    monkeypatch.setattr(praefect_server.simconfig, "release", lambda runtime: praefect.version)
    monkeypatch.setattr(praefect_server, "log", events.append)
    monkeypatch.setattr(praefect_server.signal, "signal", lambda *a: None)

    def refused() -> None:
        raise praefect_server.psycopg2.Error("connection to server failed: Connection refused")

    praefect.store.ping = refused
    assert praefect_server.main() == 1
    assert events[-1] == "SQL connection open failed: send ping: connection to server " \
        "failed: Connection refused"

    praefect.store.ping = lambda: None
    def first_update(stop: object) -> bool:
        events.append("first update")
        return True

    def serve(p: object) -> Any:
        events.append("serve")
        return Server()

    monkeypatch.setattr(praefect, "first_health_update", first_update)

    class Server:
        def stop(self, grace: float) -> Any:
            return SimpleNamespace(wait=lambda seconds: None)

    monkeypatch.setattr(praefect_server, "serve", serve)
    # The background loops are not started; the stop event is set at once.
    monkeypatch.setattr(praefect_server, "threading", SimpleNamespace(
        Event=lambda: Stop([], set_after=0),
        Thread=lambda **kw: SimpleNamespace(start=lambda: None)))
    events.clear()
    assert praefect_server.main() == 0
    assert [e for e in events if e in ("first update", "serve")] == (
        ["first update", "serve"] if waits else ["serve"])


def test_a_replication_job_gets_three_attempts_then_dies(
        praefect_server: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each dequeue takes an attempt (the queue's default is 3); a failed job with attempts
    left is failed and taken again, one with none is dead and deleted (Gitaly
    datastore/queue.go Dequeue and Acknowledge, replicator.go ``JobStateDead``)."""
    conf = {"listen_addr": "0.0.0.0:2305", "token": "x", "database": {"host": "praefect-db"},
            "virtual_storages": {"default": [
                {"storage": s, "address": f"tcp://{s}:8075", "token": "t"}
                for s in ("gitaly1", "gitaly2")]}}
    from lab.omnibus.release import Version

    praefect = praefect_server.Praefect(conf, Version.parse("19.3.0"))
    job = {"virtual_storage": "default", "relative_path": "@hashed/a.git",
           "replica_path": "@cluster/a.git", "target_node_storage": "gitaly2",
           "source_node_storage": "gitaly1", "generation": 1}
    queue = {7: {"state": "ready", "attempt": 3}}
    calls: list[str] = []

    class Store:
        def ready_jobs(self) -> list[tuple[int, dict[str, Any]]]:
            return [(i, job) for i, q in queue.items() if q["state"] in ("ready", "failed")]

        def take(self, job_id: int) -> int:
            queue[job_id].update(state="in_progress", attempt=queue[job_id]["attempt"] - 1)
            return int(queue[job_id]["attempt"])

        def finish(self, job_id: int, state: str) -> None:
            if state in ("completed", "dead"):
                del queue[job_id]
            else:
                queue[job_id]["state"] = state

    class Refused(praefect_server.grpc.RpcError):  # type: ignore[misc]
        def details(self) -> str:
            return "storage not found"

    def call(*args: Any, **kwargs: Any) -> None:
        calls.append("ReplicateRepository")
        raise Refused()

    praefect.store = Store()
    for node in praefect.nodes["default"].values():
        monkeypatch.setattr(node, "healthy", lambda now=None: True)
        monkeypatch.setattr(node, "channel", lambda: SimpleNamespace(
            unary_unary=lambda method: call))
    monkeypatch.setattr(praefect_server, "log", lambda text: None)
    praefect.replicate()
    assert queue == {7: {"state": "failed", "attempt": 2}}
    for _ in range(4):
        praefect.replicate()
    assert queue == {}
    assert calls == ["ReplicateRepository"] * 3


ROUND = [("default", "gitaly1", True), ("default", "gitaly2", False),
         ("default", "gitaly3", True)]


@pytest.mark.parametrize(("release", "statements"), [
    # The health manager's updateHealthChecks: every node's row in one upsert.
    ("19.3.0", [ROUND]),
    ("14.0.12", [ROUND]),
    # Before per_repository, the SQL elector's updateNode: an upsert per node.
    ("13.12.15", [[check] for check in ROUND]),
])
def test_a_health_round_writes_node_status_as_that_release_does(
        praefect_server: ModuleType, release: str,
        statements: list[list[tuple[str, str, bool]]]) -> None:
    from lab.omnibus.release import Version

    conf = {"listen_addr": "0.0.0.0:2305", "token": "x", "database": {"host": "praefect-db"},
            "virtual_storages": {"default": [
                {"storage": f"gitaly{i}", "address": f"tcp://gitaly{i}:8075", "token": "t"}
                for i in (1, 2, 3)]}}
    praefect = praefect_server.Praefect(conf, Version.parse(release))
    written: list[list[tuple[str, str, bool]]] = []

    class Store:
        def record_health(self, name: str, checks: list[tuple[str, str, bool]]) -> None:
            written.append(checks)

    praefect.store = Store()
    praefect.answers_health_check = lambda node: node.storage != "gitaly2"
    assert praefect.check_health() is True
    assert written == statements
    assert praefect.check_health() is True  # the same threads ask again
    assert written == statements * 2
