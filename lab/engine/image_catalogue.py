"""The image catalogue: what is on the engine (the sim, its base, local GitLab images), and
moving images between engines (`docker save` / `docker load`) and registries (pull).

Building the sim image is lab.engine.images; formatting rows for people is the CLI's.
Every engine call goes through lab.engine.docker.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lab
from lab.engine import docker as dk
from lab.errors import BadInput, ImageMissing
from lab.model.labels import LABEL_PREFIX

SIM_REPO = "gitlab-testlab/sim"
BASE_REPO = "gitlab-testlab/base"
# The toolkit that built an image (see image_source): a build prunes only its own old tags.
SOURCE_LABEL = f"{LABEL_PREFIX}.source"
OMNIBUS_REPOS = ("gitlab/gitlab-ce", "gitlab/gitlab-ee")


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    image_id: str
    size: int  # bytes
    created: str  # RFC 3339, as the engine says
    kind: str  # "sim", "base" or "omnibus"
    current: bool  # the tag this checkout would use (sim/base only)


def check_docker() -> None:
    """DockerUnavailable, saying how to start Docker, unless the engine answers."""
    dk.check_reachable()


def image_exists(ref: str) -> bool:
    return dk.image_present(ref)


def pull_image(ref: str, progress: Callable[[str], None] | None = None) -> None:
    """Pull ``ref`` from its registry; EngineError with the registry's answer if that fails.
    ``progress`` hears how far it got (bytes and layers)."""
    dk.pull(ref, progress)


def image_source() -> str:
    """Which toolkit built an image: its package folder (a checkout's lab/ or a wheel's)."""
    return str(Path(lab.__file__).resolve().parent)


def prune_stale(keep: set[str], source: str | None = None) -> list[str]:
    """Remove sim/base tags other than ``keep`` that this toolkit built.

    Every change to the image inputs makes new tags, so without this each
    checkout would leave a few hundred MB behind. Only images labelled with
    ``source`` (this checkout or install) go: another checkout on the same
    engine builds other tags and still uses them. A tag a container uses stays.
    """
    source = image_source() if source is None else source
    removed = []
    for repo in (SIM_REPO, BASE_REPO):
        for ref in _refs(repo, source):
            # The engine refuses to remove an image a container uses.
            if ref not in keep and dk.remove_image(ref):
                removed.append(ref)
    return removed


def _refs(repo: str, source: str) -> list[str]:
    """``repo:tag`` of each tagged image of ``repo`` that ``source`` built."""
    return [t for img in dk.images(repo) if img.labels.get(SOURCE_LABEL) == source
            for t in img.tags if t.rpartition(":")[0] == repo]


def list_images(current: set[str]) -> list[ImageInfo]:
    """The sim and base images (any tag) and local gitlab/gitlab-ce|ee images; ``current``:
    the tags this checkout would use."""
    check_docker()
    kinds = {SIM_REPO: "sim", BASE_REPO: "base"} | {r: "omnibus" for r in OMNIBUS_REPOS}
    found = []
    for repo, kind in kinds.items():
        for img in dk.images(repo):
            for ref in img.tags:
                if ref.rpartition(":")[0] != repo:
                    continue
                found.append(ImageInfo(ref=ref, image_id=img.id, size=img.size,
                                       created=img.created, kind=kind,
                                       current=ref in current))
    return found


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # docker load reads it; Python's tarfile (3.11) cannot


def check_tarball(path: Path) -> None:
    """Refuse (exit 2) a file that is no tar archive, plain or compressed: Docker's answer
    for one ("open .../repositories: no such file", "unexpected EOF") read as an engine
    failure (exit 3). Only the first member is read, so a big tarball costs nothing."""
    not_tar = f"{path}: not an image tarball (expected `docker save` output, plain or compressed)"
    try:
        with path.open("rb") as fh:
            if fh.read(4) == ZSTD_MAGIC:
                return
        with tarfile.open(path, "r:*") as tar:
            if tar.next() is None:
                raise BadInput(not_tar + ": the archive is empty")
    except (tarfile.TarError, EOFError):
        # tarfile's message lists every compression it tried: not worth showing.
        raise BadInput(not_tar + (": the file is empty" if path.stat().st_size == 0
                                  else "")) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_image(path: str | Path) -> str:
    """``docker load -i`` a tarball (air-gapped hosts); return the loaded ref."""
    if not Path(path).is_file():
        raise BadInput(f"{path}: no such file (expected an image tarball from `docker save`)")
    check_tarball(Path(path))
    check_docker()
    loaded = dk.load_images(Path(path))
    if not loaded:
        # Docker accepted the archive and found no image in it: the file is at fault.
        raise BadInput(f"{path}: no image in this tarball (expected `docker save` output)")
    return loaded[-1]


def save_images(refs: list[str], path: str | Path) -> list[str]:
    """``docker save`` ``refs`` into one tarball for `lab images load` on a host without a
    registry; return the refs saved."""
    target = Path(path)
    if not target.parent.is_dir():
        raise BadInput(f"{target.parent}: no such directory for the tarball")
    # Written beside the target and renamed: a failed save leaves no half tarball behind.
    partial = target.with_name(f".{target.name}.partial")
    # Tried before Docker streams into it: a folder that can't be written is the path's
    # fault (exit 2), not a failed `docker save` (exit 3).
    try:
        partial.open("wb").close()
        partial.unlink()
    except OSError as exc:
        raise BadInput(f"cannot write the tarball {target}: {exc.strerror or exc}; choose "
                       "another -o") from None
    check_docker()
    missing = [r for r in refs if not image_exists(r)]
    if missing:
        raise ImageMissing(f"not on this engine: {', '.join(missing)} (`lab images list` shows "
                           "what is; `lab images build` makes the sim image)")
    try:
        dk.save_images(refs, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return refs
