"""Pure parts of the image engine and the host Gitaly client (no Docker)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from lab.cli.images import ago, human_size, short_id
from lab.client.gitaly import GitalyError, ServerInfo, StorageStatus, decode_server_info
from lab.engine import image_catalogue, images
from lab.engine.snapshots import Image
from lab.errors import ImageMissing


def test_refs_are_content_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = (images.sim_image_ref(), images.base_image_ref())
    assert re.fullmatch(r"gitlab-testlab/sim:[0-9a-f]{12}", checkout[0])
    assert re.fullmatch(r"gitlab-testlab/base:[0-9a-f]{12}", checkout[1])
    assert "python3-grpcio" in images.base_packages()

    root, lab_copy, sim_copy = tmp_path / "images", tmp_path / "lab", tmp_path / "labsim"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(images.images_dir(), root, ignore=ignore)
    shutil.copytree(images._labsim_dir(), sim_copy, ignore=ignore)
    # Of the toolkit, only what the image carries.
    lab_copy.mkdir()
    shutil.copy2(images._lab_dir() / "__init__.py", lab_copy)
    for package in images.SIM_CARRIES:
        shutil.copytree(images._lab_dir() / package, lab_copy / package, ignore=ignore)
    monkeypatch.setattr(images, "images_dir", lambda: root)
    monkeypatch.setattr(images, "_lab_dir", lambda: lab_copy)
    monkeypatch.setattr(images, "_labsim_dir", lambda: sim_copy)

    def refs() -> tuple[str, str]:
        images.forget_image_refs()
        return images.sim_image_ref(), images.base_image_ref()

    # Same content, same tags: where the tree lies does not matter.
    assert refs() == checkout
    assert refs() == checkout

    sim, base = checkout
    script = next(p for p in sorted((root / "sim").rglob("*")) if p.is_file())
    content, mode = script.read_bytes(), script.stat().st_mode
    script.write_bytes(content + b"\n")
    changed = refs()
    assert changed[0] != sim
    assert changed[1] == base  # the base depends on its package list only
    script.write_bytes(content)
    assert refs() == checkout
    script.chmod(mode ^ 0o111)  # the executable bit matters inside the image
    assert refs()[0] != sim
    script.chmod(mode)
    assert refs() == checkout

    # The sim's code and the toolkit packages the image carries are part of its tag: auth,
    # dialects, key data, Gitaly's protocol.
    for carried in (sim_copy / "gitaly" / "gitaly_server.py", sim_copy / "common" / "evaluate.rb",
                    *(lab_copy / name for name in (
                        "omnibus/auth.py", "omnibus/dialect.py", "omnibus/data/keys-19.3.0.txt",
                        "gitalypb/server_pb2.py"))):
        name = str(carried)
        before = carried.read_text()
        carried.write_text(before + "# changed\n")
        changed = refs()
        assert changed[0] != sim, name
        assert changed[1] == base
        carried.write_text(before)
    assert refs() == checkout

    # The rest of the toolkit is not in the image: it leaves the tag alone.
    (lab_copy / "engine").mkdir()
    (lab_copy / "engine" / "docker.py").write_text("# not carried\n")
    assert refs() == checkout

    packages = root / "base" / "packages.txt"
    packages.write_text(packages.read_text() + "extra-package\n")
    assert refs()[1] != base


def test_refs_are_hashed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "images"
    shutil.copytree(images.images_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(images, "images_dir", lambda: root)
    images.forget_image_refs()
    first = images.sim_image_ref()
    (root / "sim" / "new-file").write_text("x")
    assert images.sim_image_ref() == first
    images.forget_image_refs()
    assert images.sim_image_ref() != first


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


def test_prune_stale_keeps_current_and_in_use_tags_and_other_checkouts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours = {image_catalogue.SOURCE_LABEL: "/here/lab"}
    theirs = {image_catalogue.SOURCE_LABEL: "/there/lab"}
    listed = {image_catalogue.SIM_REPO: [Image("sha256:1", ("gitlab-testlab/sim:new",), ours),
                                Image("sha256:2", ("gitlab-testlab/sim:old",
                                                   "other/repo:keep"), ours),
                                Image("sha256:3", ("gitlab-testlab/sim:used",), ours),
                                # Another checkout's current tag, and one built before labels.
                                Image("sha256:6", ("gitlab-testlab/sim:theirs",), theirs),
                                Image("sha256:7", ("gitlab-testlab/sim:unlabelled",))],
              image_catalogue.BASE_REPO: [Image("sha256:4", ("gitlab-testlab/base:cur",), ours),
                                 Image("sha256:8", ("gitlab-testlab/base:theirs",), theirs),
                                 Image("sha256:5", ("<none>:<none>",), ours)]}
    asked: list[str] = []
    removed: list[str] = []

    def remove(ref: str) -> bool:
        asked.append(ref)
        if ref.endswith(":used"):  # a container still runs on it: the engine refuses
            return False
        removed.append(ref)
        return True

    monkeypatch.setattr(images.dk, "images", lambda repo: listed[repo])
    monkeypatch.setattr(images.dk, "remove_image", remove)
    got = image_catalogue.prune_stale({"gitlab-testlab/sim:new", "gitlab-testlab/base:cur"},
                             source="/here/lab")
    assert got == removed == ["gitlab-testlab/sim:old"]
    # Another repository's tag of the same image, untagged images and images another
    # checkout built (or that carry no source) are not ours.
    assert asked == ["gitlab-testlab/sim:old", "gitlab-testlab/sim:used"]


def test_both_builds_label_their_image_with_this_checkout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the label, prune_stale would never remove this checkout's old tags.
    import json

    source = str(Path(images.lab.__file__).resolve().parent)
    assert image_catalogue.image_source() == source
    seen: dict[str, object] = {}

    def build_image(context: Path, ref: str, *, labels: dict[str, str],
                    buildargs: dict[str, str]) -> None:
        seen["sim"] = labels

    def import_image(tarball: Path, ref: str, changes: list[str]) -> None:
        seen["base"] = changes

    monkeypatch.setattr(images.dk, "build_image", build_image)
    monkeypatch.setattr(images.dk, "import_image", import_image)
    monkeypatch.setattr(images.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(images, "run", lambda *a, **kw: None)  # no mmdebstrap here
    monkeypatch.setenv("LAB_APT_CACHE", "off")
    images.build_sim("gitlab-testlab/base:x")
    images.build_base()
    assert seen["sim"] == {images.LABEL_PREFIX: "1", f"{images.LABEL_PREFIX}.flavor": "sim",
                           image_catalogue.SOURCE_LABEL: source}
    assert f"LABEL {image_catalogue.SOURCE_LABEL}={json.dumps(source)}" in seen["base"]  # type: ignore[operator]


def test_save_writes_through_a_partial_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], Path]] = []

    def fake_save(refs: list[str], target: Path) -> None:
        calls.append((list(refs), target))
        target.write_bytes(b"tar")

    monkeypatch.setattr(image_catalogue, "check_docker", lambda: None)
    monkeypatch.setattr(image_catalogue, "image_exists", lambda ref: True)
    monkeypatch.setattr(image_catalogue.dk, "save_images", fake_save)
    out = tmp_path / "sim.tar"
    assert image_catalogue.save_images(["gitlab-testlab/sim:x"], out) == ["gitlab-testlab/sim:x"]
    assert calls == [(["gitlab-testlab/sim:x"], tmp_path / ".sim.tar.partial")]
    assert out.read_bytes() == b"tar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.tar"]


def test_save_refuses_missing_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_catalogue, "check_docker", lambda: None)
    monkeypatch.setattr(image_catalogue, "image_exists",
                        lambda ref: ref != "gitlab/gitlab-ce:1.2.3-ce.0")
    with pytest.raises(ImageMissing, match=r"gitlab/gitlab-ce:1\.2\.3-ce\.0.*lab images list"):
        image_catalogue.save_images(["gitlab/gitlab-ce:1.2.3-ce.0"], tmp_path / "x.tar")
    assert list(tmp_path.iterdir()) == []


def test_shell_completion_lists_subcommands() -> None:
    from click.testing import CliRunner

    from lab.cli.main import cli

    result = CliRunner().invoke(cli, [], prog_name="lab", env={
        "_LAB_COMPLETE": "bash_complete", "COMP_WORDS": "lab images s", "COMP_CWORD": "2"})
    assert result.exit_code == 0
    assert result.output.split() == ["plain,save"]


def test_apt_cache_dir_lives_outside_the_repo(tmp_path: Path) -> None:
    assert images.apt_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == \
        (tmp_path / "gitlab-testlab" / "apt").resolve()
    assert images.apt_cache_dir({"LAB_APT_CACHE": str(tmp_path / "c")}) == (tmp_path / "c")
    assert images.apt_cache_dir({"LAB_APT_CACHE": "off"}) is None
    assert images.apt_cache_dir({"LAB_APT_CACHE": ""}) is None
    home = images.apt_cache_dir({})
    assert home is not None
    assert home.is_relative_to(Path.home())


def test_apt_cache_args_sync_debs_in_and_out(tmp_path: Path) -> None:
    cache = tmp_path / "apt"
    args = images.apt_cache_args(cache)
    assert "--skip=essential/unlink" in args
    assert f"--setup-hook=sync-in {cache} /var/cache/apt/archives/" in args
    assert args[-1] == f"--customize-hook=sync-out /var/cache/apt/archives {cache}"
    assert images.apt_cache_args(None) == []
    assert images.apt_cache_args(tmp_path / "with space") == []  # mmdebstrap splits hooks
    # The cache never changes what is built, so never the base tag.
    assert not set(args) & set(images.BASE_RECIPE)


def test_prune_apt_cache_keeps_the_newest_of_each_package(tmp_path: Path) -> None:
    import os

    for i, name in enumerate(["git_1%3a2.39.2-1.1_amd64.deb", "git_1%3a2.39.5-0+deb12u1_amd64.deb",
                              "ruby_1%3a3.1_all.deb"]):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert images.prune_apt_cache(tmp_path) == ["git_1%3a2.39.2-1.1_amd64.deb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "git_1%3a2.39.5-0+deb12u1_amd64.deb", "ruby_1%3a3.1_all.deb"]


def test_host_client_signs_even_with_an_empty_token() -> None:
    """As Rails does: a forgotten token is "7:permission denied", not "16:authentication
    required" (lib/gitlab/gitaly_client.rb authorization_token)."""
    from lab.client.gitaly import auth_metadata
    from lab.omnibus.auth import AuthOutcome, check_gitaly_auth

    ((key, value),) = auth_metadata("")
    assert key == "authorization"
    assert re.fullmatch(r"Bearer v2\.[0-9a-f]{64}\.\d+", value)
    assert check_gitaly_auth("the-real-token", value).outcome is AuthOutcome.PERMISSION_DENIED


def test_image_rows_read_as_docker_image_ls_shows_them() -> None:
    assert short_id("sha256:0123456789abcdef0123") == "0123456789ab"
    assert human_size(999) == "999B"
    assert human_size(183_456_789) == "183MB"
    assert human_size(1_234_567_890) == "1.23GB"
    assert human_size(4_321_000_000_000) == "4321GB"
    now = 1_796_000_000.0  # 2026-11-30T00:53:20Z
    assert ago("2026-11-30T00:53:00.123456789Z", now) == "less than a minute ago"
    assert ago("2026-11-29T23:50:00Z", now) == "1 hour ago"
    assert ago("2026-11-27T00:00:00Z", now) == "3 days ago"
    assert ago("not a time", now) == ""
