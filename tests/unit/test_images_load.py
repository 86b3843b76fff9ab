"""`lab images load`: a file that is no image tarball is bad input (exit 2), found before
Docker is asked; Docker finding no image in an archive is bad input too."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from lab.engine import image_catalogue
from lab.errors import BadInput


def _tar(path: Path, *, compress: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("content", [b"", b"hello\n", b"\x1f\x8b\x08garbage",
                                     b"\0" * 10240])
def test_a_file_that_is_no_tarball_is_bad_input(tmp_path: Path, content: bytes,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Path] = []
    monkeypatch.setattr(image_catalogue, "check_docker", lambda: None)
    monkeypatch.setattr(image_catalogue.dk, "load_images", lambda p: asked.append(p) or ["x:1"])
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    with pytest.raises(BadInput, match="not an image tarball"):
        image_catalogue.load_image(bad)
    assert not asked


def test_a_truncated_tarball_is_refused(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_catalogue, "check_docker", lambda: None)
    monkeypatch.setattr(image_catalogue.dk, "load_images", lambda p: ["x:1"])
    whole = _tar(tmp_path / "whole.tar").read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:300])
    with pytest.raises(BadInput):
        image_catalogue.load_image(cut)


@pytest.mark.parametrize("compress", [False, True])
def test_a_tarball_goes_to_docker_and_no_image_in_it_is_bad_input(
        tmp_path: Path, compress: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_catalogue, "check_docker", lambda: None)
    good = _tar(tmp_path / "t.tar", compress=compress)
    monkeypatch.setattr(image_catalogue.dk, "load_images",
                        lambda p: ["gitlab/gitlab-ce:17.0.0-ce.0"])
    assert image_catalogue.load_image(good) == "gitlab/gitlab-ce:17.0.0-ce.0"
    monkeypatch.setattr(image_catalogue.dk, "load_images", lambda p: [])
    with pytest.raises(BadInput, match="no image"):
        image_catalogue.load_image(good)


def test_a_tarball_path_that_cannot_be_written_is_bad_input_before_docker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc refuses new files, even to root: the path's fault (exit 2), not `docker save`'s.
    def no_docker() -> None:
        raise AssertionError("Docker asked before the path was checked")

    monkeypatch.setattr(image_catalogue, "check_docker", no_docker)
    with pytest.raises(BadInput, match="cannot write the tarball /proc/lab-images"):
        image_catalogue.save_images(["gitlab-testlab/sim:x"], "/proc/lab-images.tar")
