"""Pure parts of the image engine and the host Gitaly client (no Docker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.client.gitaly import GitalyError, ServerInfo, StorageStatus, decode_server_info
from lab.engine import images
from lab.engine.run import Result


def test_refs_are_content_hashes() -> None:
    assert re.fullmatch(r"gitlab-testlab/sim:[0-9a-f]{12}", images.sim_image_ref())
    assert re.fullmatch(r"gitlab-testlab/base:[0-9a-f]{12}", images.base_image_ref())
    assert images.sim_image_ref() == images.sim_image_ref()
    assert "python3-grpcio" in images.base_packages()


def test_debian_sources_from_deb822_and_one_line(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg] http://mirror.test/debian bookworm main contrib\n"
        "deb-src http://mirror.test/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://other.test/x\nSuites: nodistro\nComponents: main\n")
    (tmp_path / "sources.list.d" / "x.list.disabled").write_text("deb http://no bookworm main\n")
    assert images.debian_sources(tmp_path, env={}) == [
        "deb http://mirror.test/debian bookworm main contrib",
        "deb http://mirror.test/debian bookworm main",
        "deb http://mirror.test/debian bookworm-updates main",
    ]


def test_debian_mirror_override(tmp_path: Path) -> None:
    sources = images.debian_sources(tmp_path, env={"LAB_DEBIAN_MIRROR": "http://m.test/d"})
    assert sources == ["deb http://m.test/d bookworm main",
                       "deb http://m.test/d bookworm-updates main"]


def test_no_sources_means_mmdebstrap_default(tmp_path: Path) -> None:
    assert images.debian_sources(tmp_path, env={}) == []


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_decode_server_info_wire_format() -> None:
    storage = _field(1, b"default") + bytes([2 << 3, 1, 3 << 3, 1]) + _field(4, b"ext4") + \
        _field(5, b"id-1")
    data = _field(1, b"16.0.0") + _field(2, b"2.39.5") + _field(3, storage)
    assert decode_server_info(data) == ServerInfo(
        "16.0.0", "2.39.5", (StorageStatus("default", True, True, "ext4", "id-1"),))
    assert decode_server_info(b"") == ServerInfo()


def test_gitaly_error_prints_like_rails() -> None:
    assert str(GitalyError("PERMISSION_DENIED", "permission denied")) == "7:permission denied"
    assert GitalyError("UNAVAILABLE", "x").code == 14
    assert GitalyError("UNAUTHENTICATED", "authentication required").code == 16


def test_prune_stale_keeps_current_and_in_use_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = {images.SIM_REPO: "gitlab-testlab/sim:new\ngitlab-testlab/sim:old\n"
                               "gitlab-testlab/sim:used\n",
              images.BASE_REPO: "gitlab-testlab/base:cur\ngitlab-testlab/base:<none>\n"}
    removed: list[str] = []

    def fake_run(cmd: list[str], **_: object) -> Result:
        if cmd[:3] == ["docker", "image", "ls"]:
            return Result(cmd, 0, listed[cmd[-1]], "")
        assert cmd[:2] == ["docker", "rmi"]
        assert "--force" not in cmd
        if cmd[2].endswith(":used"):  # a container still runs on it: Docker refuses
            return Result(cmd, 1, "", "conflict: image is being used")
        removed.append(cmd[2])
        return Result(cmd, 0, "", "")

    monkeypatch.setattr(images, "run", fake_run)
    got = images.prune_stale({"gitlab-testlab/sim:new", "gitlab-testlab/base:cur"})
    assert got == removed == ["gitlab-testlab/sim:old"]
