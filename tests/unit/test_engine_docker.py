"""The engine's typed snapshots and its SDK calls, against a fake docker-py client (no Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.engine import docker as dk
from lab.engine.run import REDACTED, Redactor
from lab.engine.snapshots import Container, ContainerState, Image, Network, Volume
from lab.errors import DockerUnavailable, EngineError

SECRET = "0123456789abcdef-gitaly-token"

INSPECTED: dict[str, Any] = {
    "Id": "c0ffee",
    "Name": "/glt-demo-gitaly1-1",
    "Config": {"Image": "gitlab-testlab/sim:abc",
               "Labels": {"io.gitlab-testlab.lab": "demo", "io.gitlab-testlab.node": "gitaly1"}},
    "State": {"Status": "exited", "ExitCode": 3, "OOMKilled": True,
              "StartedAt": "2026-11-29T19:37:01.123456789Z",
              "Health": {"Status": "unhealthy"}},
    "NetworkSettings": {
        "Ports": {"8075/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}],
                  "9999/tcp": None,
                  "80/tcp": [{"HostIp": "", "HostPort": "8080"},
                             {"HostIp": "::", "HostPort": "8080"}]},
        "Networks": {"glt-demo_lab": {"IPAddress": "172.20.0.3"}},
    },
}


class NotFound(Exception):
    status_code = 404


#: A listing's rows (the Engine API's container list): one running, one exited.
LISTED: list[dict[str, Any]] = [
    {"Id": "beef", "Names": ["/glt-demo-gitlab-1"], "Image": "gitlab-testlab/sim:abc",
     "State": "running", "Status": "Up 2 minutes (health: starting)",
     "Labels": {"io.gitlab-testlab.lab": "demo", "io.gitlab-testlab.node": "gitlab"},
     "Ports": [{"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
               {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
               {"PrivatePort": 22, "Type": "tcp"}],
     "NetworkSettings": {"Networks": {"glt-demo_lab": {"IPAddress": "172.20.0.2"}}}},
    {"Id": "c0ffee", "Names": ["/glt-demo-gitaly1-1"], "Image": "gitlab-testlab/sim:abc",
     "State": "exited", "Status": "Exited (3) 5 seconds ago",
     "Labels": {"io.gitlab-testlab.lab": "demo", "io.gitlab-testlab.node": "gitaly1"}},
]


class FakeApi:
    """The slice of docker-py's low-level APIClient the engine uses, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.listed = LISTED
        self.exit_code = 0
        self.output: tuple[bytes | None, bytes | None] = (b"out\n", b"")
        self.gone: set[str] = set()
        self.log = b""

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        self.calls.append(("containers", all, filters))
        return self.listed

    def inspect_container(self, ref: str) -> dict[str, Any]:
        self.calls.append(("inspect", ref))
        if ref in self.gone:
            raise NotFound(f"No such container: {ref}")
        return INSPECTED

    def exec_create(self, ref: str, cmd: list[str], user: str = "") -> dict[str, str]:
        self.calls.append(("exec_create", ref, cmd, user))
        return {"Id": "exec1"}

    def exec_start(self, exec_id: str, demux: bool = False) -> tuple[bytes | None, bytes | None]:
        return self.output

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"ExitCode": self.exit_code}

    def logs(self, ref: str, **kw: Any) -> Any:
        self.calls.append(("logs", ref, kw))
        if kw.get("stream"):
            return iter([self.log[:7], self.log[7:]])
        return self.log

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.calls.append(("stop", ref, timeout))

    def restart(self, ref: str, **kw: Any) -> None:
        self.calls.append(("restart", ref, kw))

    def remove_container(self, ref: str, **kw: Any) -> None:
        self.calls.append(("remove_container", ref, kw))
        if ref in self.gone:
            raise NotFound(ref)

    def connect_container_to_network(self, ref: str, net: str, aliases: list[str]) -> None:
        self.calls.append(("connect", ref, net, aliases))

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref != "sim:here":
            raise NotFound(ref)
        return {"Id": "sha256:feed", "RepoTags": ["sim:here"], "Size": 183_000_000,
                "Config": {"Labels": {"io.gitlab-testlab.flavor": "sim"}}}


class FakeListing:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.filters: list[Any] = []

    def list(self, **kw: Any) -> list[Any]:
        self.filters.append(kw.get("filters"))
        return [type("SdkObject", (), {"attrs": row})() for row in self.rows]


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.networks = FakeListing([{"Id": "n1", "Name": "glt-demo_lab",
                                      "Labels": {"io.gitlab-testlab.lab": "demo"}}])
        self.volumes = FakeListing([{"Name": "glt-demo_data", "Labels": None}])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(dk, "_client", lambda: client)
    return client


def test_container_snapshot_from_inspect_data() -> None:
    c = Container.from_attrs(INSPECTED)
    assert (c.id, c.name, c.image, c.node) == ("c0ffee", "glt-demo-gitaly1-1",
                                               "gitlab-testlab/sim:abc", "gitaly1")
    assert c.state == ContainerState("exited", 3, "unhealthy", True,
                                     "2026-11-29T19:37:01.123456789Z")
    assert c.state.gone
    assert not c.state.running
    assert c.status == "exited"
    # The first binding of each published port; an unpublished one is left out.
    assert c.ports == {"8075/tcp": "127.0.0.1:49153", "80/tcp": "0.0.0.0:8080"}
    assert c.published_port(8075) == 49153
    assert c.published_port(9999) is None
    assert c.ip == "172.20.0.3"


def test_snapshots_of_sparse_inspect_data() -> None:
    # A container just created has no state details, ports or networks yet.
    c = Container.from_attrs({"Id": "x", "Name": "/x", "State": {"Status": "created"}})
    assert c.state == ContainerState("created", 0, "")
    assert (c.node, c.ip, c.ports, c.labels) == ("", None, {}, {})
    assert Volume.from_attrs({"Name": "v", "Labels": None}) == Volume("v", {})
    assert Network.from_attrs({"Id": "n", "Name": "lab"}).labels == {}
    img = Image.from_attrs({"Id": "sha256:1", "RepoTags": None})
    assert (img.tags, img.labels, img.size) == ((), {}, 0)


def test_container_snapshot_from_a_listing_row() -> None:
    c = Container.from_listing(LISTED[0])
    assert (c.id, c.name, c.image, c.node) == ("beef", "glt-demo-gitlab-1",
                                               "gitlab-testlab/sim:abc", "gitlab")
    # No exit code, OOM flag or start time in a listing; health from the status text.
    assert c.state == ContainerState("running", 0, "starting")
    # The IPv4 binding, as inspect lists it first; an unpublished port is left out.
    assert c.ports == {"80/tcp": "0.0.0.0:8080"}
    assert c.ip == "172.20.0.2"
    for status, health in [("Up 1 second (healthy)", "healthy"), ("Up 3 hours", ""),
                           ("Up 5 seconds (unhealthy)", "unhealthy")]:
        assert Container.from_listing({**LISTED[0], "Status": status}).state.health == health


def test_listing_returns_snapshots_filtered_by_label(fake: FakeClient) -> None:
    running, stopped = dk.containers({"io.gitlab-testlab.lab": "demo",
                                      "io.gitlab-testlab.dir": ""})
    assert isinstance(running, Container)
    assert (running.node, stopped.node) == ("gitlab", "gitaly1")
    assert fake.api.calls[0] == ("containers", True, {"label": [
        "io.gitlab-testlab.lab=demo", "io.gitlab-testlab.dir"]})
    # Only the container that is not running is inspected: its exit code and OOM flag.
    assert fake.api.calls[1:] == [("inspect", "c0ffee")]
    assert (stopped.state.exit_code, stopped.state.oom_killed) == (3, True)
    fake.api.gone.add("c0ffee")  # removed between the listing and the inspect
    assert [c.node for c in dk.containers({})] == ["gitlab"]
    assert dk.networks({}) == [Network("n1", "glt-demo_lab", {"io.gitlab-testlab.lab": "demo"})]
    assert dk.volumes({}) == [Volume("glt-demo_data", {})]


def test_inspect_of_a_removed_container_is_an_engine_error(fake: FakeClient) -> None:
    fake.api.gone.add("glt-demo-gitaly1-1")
    with pytest.raises(EngineError, match="inspect glt-demo-gitaly1-1") as err:
        dk.inspect("glt-demo-gitaly1-1")
    assert "No such container" in str(err.value)
    assert dk.inspect("c0ffee").state.exit_code == 3


def test_exec_by_snapshot_or_id_with_the_labs_redaction(fake: FakeClient) -> None:
    c = Container.from_attrs(INSPECTED)
    res = dk.exec_in(c, ["echo", "hi"], timeout=30, user="git")
    assert (res.cmd, res.returncode, res.stdout) == (["echo", "hi"], 0, "out\n")
    # The engine cannot time an exec out; the container's own `timeout` does.
    assert fake.api.calls[-1] == ("exec_create", "c0ffee",
                                  ["timeout", "-k", "5", "30", "echo", "hi"], "git")
    redact = Redactor()
    redact.add([SECRET])
    fake.api.exit_code, fake.api.output = 1, (None, f"bad token {SECRET}\n".encode())
    with pytest.raises(EngineError) as err:
        dk.exec_in("glt-demo-gitaly1-1", ["check", SECRET], redact=redact)
    assert SECRET not in str(err.value)
    assert err.value.cmd == ["exec", "glt-demo-gitaly1-1", "check", REDACTED]
    assert f"bad token {REDACTED}" in err.value.stderr
    # Without check the caller gets the output as printed (and redacts what it shows).
    assert dk.exec_in(c, ["x"], check=False, redact=redact).stderr == f"bad token {SECRET}\n"
    fake.api.exit_code = dk.EXEC_TIMED_OUT
    with pytest.raises(EngineError, match="timed out after 5s"):
        dk.exec_in(c, ["sleep", "60"], timeout=5)


def test_logs_are_redacted_whole_lines_even_when_streamed(fake: FakeClient) -> None:
    redact = Redactor()
    redact.add([SECRET])
    fake.api.log = f"a\ntoken={SECRET}\nlast".encode()
    assert dk.logs("c0ffee", tail=None, redact=redact) == f"a\ntoken={REDACTED}\nlast"
    assert fake.api.calls[-1][2]["tail"] == "all"
    # The secret is split across two chunks of the stream; lines are joined first.
    assert list(dk.follow_logs("c0ffee", redact=redact)) == ["a", f"token={REDACTED}", "last"]


def test_faults_and_removal_go_by_id(fake: FakeClient) -> None:
    c = Container.from_attrs(INSPECTED)
    dk.stop(c)
    dk.restart(c)
    dk.restart(c, timeout=3)
    dk.connect(Network("n1", "glt-demo_lab"), c, aliases=["gitaly1"])
    assert fake.api.calls == [("stop", "c0ffee", None), ("restart", "c0ffee", {}),
                              ("restart", "c0ffee", {"timeout": 3}),
                              ("connect", "c0ffee", "n1", ["gitaly1"])]
    fake.api.gone.add("c0ffee")
    dk.remove_container(c)  # already gone: nothing to do


def test_image_lookup(fake: FakeClient) -> None:
    img = dk.image("sim:here")
    assert img == Image("sha256:feed", ("sim:here",), {"io.gitlab-testlab.flavor": "sim"},
                        183_000_000)
    assert dk.image("sim:gone") is None
    assert dk.image_present("sim:here")
    assert not dk.image_present("sim:gone")


def test_no_docker_py_object_leaves_the_engine(fake: FakeClient, tmp_path: Path) -> None:
    # Every value the engine hands upward is one of its own frozen snapshots.
    out: list[Any] = [*dk.containers({}), *dk.networks({}), *dk.volumes({}),
                      dk.inspect("c0ffee"), dk.image("sim:here")]
    assert {type(o) for o in out} == {Container, Network, Volume, Image}
    with pytest.raises(AttributeError):
        out[0].name = "other"  # type: ignore[misc]


class _APIError(Exception):
    status_code = 500


class _NotFound(Exception):
    status_code = 404


def test_docker_errors_become_the_toolkits_in_one_place() -> None:
    with pytest.raises(EngineError) as info, dk.engine_call(
            "stop", "node", redact=lambda text: text.replace("tok3n", REDACTED)):
        raise _APIError("500 Server Error: tok3n")
    assert (info.value.cmd, info.value.returncode) == (["stop", "node"], -1)
    assert info.value.stderr == f"500 Server Error: {REDACTED}"
    assert isinstance(info.value.__cause__, _APIError)
    # A 404 ends the block quietly only where the object may be gone.
    with dk.engine_call("rm", "node", missing_ok=True):
        raise _NotFound("no such container")
    with pytest.raises(EngineError, match="no such container"), dk.engine_call("rm", "node"):
        raise _NotFound("no such container")
    # The toolkit's own errors pass as they are.
    with pytest.raises(DockerUnavailable, match="not reachable"), dk.engine_call("ps"):
        raise DockerUnavailable("not reachable")
    mine = EngineError(["build"], 1, "step failed")
    with pytest.raises(EngineError) as own, dk.engine_call("build"):
        raise mine
    assert own.value is mine


def test_swarm_asks_the_engine_through_the_docker_modules_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # lab.engine.swarm reaches the SDK client through dk.sdk_client, looked up at each
    # call: the client dk holds (here a stand-in) is the one swarm asks, never a copy of
    # a private name taken at import.
    from lab.engine import swarm

    info = {"Name": "manager-host",
            "Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "n1"}}
    monkeypatch.setattr(dk, "_client", lambda: type("C", (), {"info": lambda self: info})())
    assert swarm.manager() == swarm.Manager("n1", "manager-host")
    assert swarm.in_swarm()


def test_carries_is_the_engines_label_filter() -> None:
    # `lab up` looks for its leftovers among what it listed by the lab's name.
    have = {"a": "1", "b": "2"}
    assert dk.carries(have, {"a": "1"})
    assert dk.carries(have, {"a": "", "b": "2"})  # "": any value, as label_filters says
    assert not dk.carries(have, {"a": "2"})
    assert not dk.carries(have, {"c": ""})
    assert dk.label_filters({"a": "", "b": "2"}) == {"label": ["a", "b=2"]}


@pytest.mark.parametrize(("host", "trusts_env"), [("unix:///var/run/docker.sock", False),
                                                  ("tcp://127.0.0.1:2375", True)])
def test_a_local_socket_skips_requests_environment_lookups(
        monkeypatch: pytest.MonkeyPatch, host: str, trusts_env: bool) -> None:
    """requests reads the proxy variables for each call unless told not to: nothing of
    them applies to the engine's unix socket; a TCP engine may sit behind a proxy."""
    import docker

    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.setattr(dk, "_clients", {})
    made: list[Any] = []

    def from_env(**kw: Any) -> Any:
        client = docker.DockerClient(base_url=host, version="1.41", **kw)  # asks nothing
        client.ping = lambda: True  # type: ignore[method-assign]
        made.append(client)
        return client

    monkeypatch.setattr(docker, "from_env", from_env)
    client = dk._client()
    assert client is made[0]
    assert client.api.trust_env is trusts_env
