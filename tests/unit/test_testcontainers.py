"""lab.testcontainers without Docker: Ryuk's switch, the node's rendered config, addresses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testcontainers.core.config import testcontainers_config

from lab import testcontainers as tc
from lab.errors import LabError
from lab.store import state


@pytest.mark.parametrize(("env", "present", "usable"), [
    ({}, False, False),  # not here: would be pulled from a registry, so off
    ({}, True, True),
    ({tc.RYUK_ENV: "true"}, True, False),
    ({tc.RYUK_ENV: "false"}, False, True),  # the user's word wins
])
def test_ryuk_usable(env: dict[str, str], present: bool, usable: bool) -> None:
    asked: list[str] = []

    def image_present(ref: str) -> bool:
        asked.append(ref)
        return present

    assert tc.ryuk_usable(image_present, env) is usable
    assert asked in ([], [testcontainers_config.ryuk_image])


def test_configure_ryuk_switches_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tc.RYUK_ENV, raising=False)
    monkeypatch.setattr(tc.dk, "image_present", lambda ref: False)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", False)
    assert tc.configure_ryuk() is False
    assert testcontainers_config.ryuk_disabled is True


def test_gitaly_container_config(tmp_path: Path) -> None:
    node = tc.GitalyContainer("some/image:1", tls=True, storages=("default", "storage1"),
                              token="t0k3n", version="17.11.7")
    assert node.token == "t0k3n"
    assert node.port == 9999
    assert node.ca_pem is not None
    assert node.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    etc = node._write_config("some/image:1")
    root = etc.parent.parent
    try:
        assert etc == root / "nodes" / "gitaly1"
        # What `lab gc` reads: a lab folder whose `up` is still running (this process).
        assert (root / "manifest.json").is_file()
        assert state.up_marker_pid(root) == os.getpid()
        assert not state.interrupted_up(root)
        rb = (etc / "gitlab.rb").read_text()
        assert "tls_listen_addr: '0.0.0.0:9999'" in rb
        assert "token: 't0k3n'" in rb
        assert "storage1" in rb
        assert (etc / "gitlab-secrets.json").stat().st_mode & 0o777 == 0o600
        assert (etc / "ssl" / "gitaly1.crt").is_file()
        assert (etc / "trusted-certs" / "lab-ca.crt").is_file()
    finally:
        import shutil

        shutil.rmtree(root)


def test_lab_compose_needs_start() -> None:
    lab = tc.LabCompose("scaled")
    with pytest.raises(LabError, match=r"not started; call start\(\) or use `with`"):
        lab.get_service_port("gitlab", 80)


def test_lab_compose_waits_as_long_as_lab_up_per_flavour(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.lifecycle.timeouts import default_timeout
    from lab.model.topology import Lab

    seen: dict[str, float | None] = {}

    def fake_up(lab: Lab, *, name: str, timeout: float | None) -> object:
        seen[name] = timeout if timeout is not None else default_timeout(lab)
        return object()

    monkeypatch.setattr(tc, "configure_ryuk", lambda: False)
    monkeypatch.setattr(tc, "up", fake_up)
    tc.LabCompose("scaled", flavor="omnibus", version="19.3.0", name="om").start()
    tc.LabCompose("scaled", flavor="sim", name="sim").start()
    tc.LabCompose("scaled", flavor="omnibus", version="19.3.0", name="given", timeout=5).start()
    assert seen == {"om": 1200.0, "sim": 300.0, "given": 5}


def test_omnibus_image_is_never_pulled(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.errors import ImageMissing

    monkeypatch.setattr(tc.dk, "image_present", lambda ref: False)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    node = tc.GitalyContainer(flavor="omnibus", version="17.11.7")
    with pytest.raises(ImageMissing, match=r"gitlab/gitlab-ce:17\.11\.7-ce\.0 .*never pulled.*"
                                           r"lab images load"):
        node.start()
    assert node._container is None  # stopped before anything was created
    assert node._root is None


def test_gitaly_container_waits_its_flavours_time_for_one_node() -> None:
    # One Gitaly node answers sooner than a whole lab is ready (lab.lifecycle.timeouts).
    assert tc.GitalyContainer("some/image:1").timeout == 60.0
    assert tc.GitalyContainer("some/image:1", flavor="omnibus", version="17.11.7").timeout == 900.0
    assert tc.GitalyContainer("some/image:1", timeout=7).timeout == 7
