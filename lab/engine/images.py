"""Images: build the offline sim flavour (what is on the engine: lab.engine.image_catalogue).

The base image is a Debian bookworm root file system from mmdebstrap, imported
into the engine (`docker import`); the sim image adds ``images/sim`` on top with
the engine's classic builder (no network, no BuildKit frontend to pull). Every
engine call goes through ``lab.engine.docker``; mmdebstrap is a subprocess. Tags are content
hashes, so a changed input means a new tag and a rebuild, never a stale image.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import lab
from lab.engine import docker as dk
from lab.engine.image_catalogue import (
    BASE_REPO,
    SIM_REPO,
    SOURCE_LABEL,
    check_docker,
    image_exists,
    image_source,
    prune_stale,
)
from lab.engine.run import run
from lab.errors import ToolMissing
from lab.model.labels import FLAVOR_LABEL, LABEL_PREFIX
from lab.model.topology import Flavor, Lab
from lab.omnibus.release import omnibus_image_ref
from lab.resources import data_dir

SUITE = "bookworm"
#: Paths (shell globs, relative to the root) removed from the finished base file system.
BASE_DROP = (
    "usr/share/doc/*", "usr/share/man/*", "usr/share/locale/*", "usr/share/info/*",
    "usr/share/perl", "usr/lib/*/perl", "usr/lib/*/gconv", "usr/share/gitweb",
    "usr/bin/scalar", "usr/bin/git-shell", "usr/lib/git-core/scalar",
    "usr/lib/git-core/git-shell", "usr/lib/git-core/git-daemon",
    "usr/lib/git-core/git-http-push", "usr/lib/git-core/git-imap-send",
    # PostgreSQL's JIT (llvmjit.so, its bitcode) is the only user of LLVM and Z3 (about
    # 130 MB); the server runs without it (jit = off in the sim's postgresql.conf). Also
    # the "main" cluster the package's postinst makes, and locale sources (initdb -no-locale).
    "usr/lib/postgresql/*/lib/llvmjit*", "usr/lib/postgresql/*/lib/bitcode",
    "usr/lib/*/libLLVM-*", "usr/lib/*/libz3.so*", "var/lib/postgresql/*",
    "etc/postgresql/*", "usr/share/i18n", "usr/share/postgresql/*/man",
)
#: Everything about how the base is made besides the package list; part of its tag.
BASE_RECIPE = [
    "--variant=apt",
    # No fsync per file: a crash mid-build only loses a temporary tarball.
    "--dpkgopt=force-unsafe-io",
    "--aptopt=APT::Install-Recommends \"false\"",
    # What the sim never uses goes once every package is set up (usrmerge's setup
    # needs Perl). Deleted here rather than with dpkg's path-exclude, which makes
    # mmdebstrap pipe every essential package through a filter (14 s of a build).
    # Gone: docs, man pages, translations; the full Perl that git depends on for
    # its Perl commands only (dpkg and debconf use perl-base, which stays); iconv's
    # charset modules; git's extra programs. The image must stay under 250 MB.
    "--customize-hook=cd \"$1\" && rm -rf " + " ".join(BASE_DROP),
]
#: The sim image's settings, given to `docker import` with the base: in the sim's
#: Dockerfile each would be a step of the legacy builder (no BuildKit here), about a
#: second apiece of every cold build. Part of both tags.
BASE_CONFIG = (
    "ENV PATH=/opt/gitlab/bin:/opt/gitlab/embedded/bin:/usr/local/sbin:/usr/local/bin:"
    "/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV PYTHONPATH=/opt/gitlab/embedded/sim",
    "ENV PYTHONUNBUFFERED=1",
    "ENV LANG=C.UTF-8",
    "EXPOSE 80 8075 9999",
    'VOLUME ["/etc/gitlab", "/var/opt/gitlab", "/var/log/gitlab"]',
    'CMD ["/assets/wrapper"]',
)
BUILD_TIMEOUT = 1800.0

Progress = Callable[[str], None]


def images_dir() -> Path:
    return data_dir("images")


def _lab_dir() -> Path:
    return Path(lab.__file__).resolve().parent


def _labsim_dir() -> Path:
    # Beside lab/ in a checkout and in a wheel's install alike; found by path, not imported:
    # the toolkit never runs the sim's code.
    return _lab_dir().parent / "labsim"


#: The toolkit packages the sim image carries beside labsim, as ``lab.<name>``: what the
#: sim may import of the toolkit. The import contracts in pyproject.toml keep labsim to
#: these and these to the standard library and the image's packages; a test checks that
#: both say the same.
SIM_CARRIES = ("omnibus", "gitalypb")
#: Where the image keeps labsim and lab/ (the image's PYTHONPATH, BASE_CONFIG).
SIM_PYTHONPATH = "rootfs/opt/gitlab/embedded/sim"


def sim_context(images_root: Path | None = None, lab_dir: Path | None = None,
                labsim_dir: Path | None = None) -> list[tuple[str, Path]]:
    """(path in the build context, file) for everything the sim image is built from:
    images/sim (Dockerfile, scripts), the labsim package, lab/__init__.py and the toolkit
    packages of SIM_CARRIES."""
    images_root = images_root or images_dir()
    lab_dir = lab_dir or _lab_dir()
    labsim_dir = labsim_dir or _labsim_dir()
    files = list(_tree(images_root / "sim"))
    files += [(f"{SIM_PYTHONPATH}/labsim/{name}", path) for name, path in _tree(labsim_dir)]
    files.append((f"{SIM_PYTHONPATH}/lab/__init__.py", lab_dir / "__init__.py"))
    for package in SIM_CARRIES:
        files += [(f"{SIM_PYTHONPATH}/lab/{package}/{name}", path)
                  for name, path in _tree(lab_dir / package)]
    return files


def _hash_files(files: list[tuple[str, Path]], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for name, path in sorted(files):
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
        # The executable bit matters inside the image.
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
    return digest.hexdigest()[:12]


def _tree(root: Path) -> list[tuple[str, Path]]:
    return [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


def base_packages() -> list[str]:
    text = (images_dir() / "base" / "packages.txt").read_text()
    return [line.split("#")[0].strip() for line in text.splitlines()
            if line.split("#")[0].strip()]


# Image inputs do not change while a process runs, and every lab render asks for
# the sim tag, so each tree is hashed once per process (per directory).
@functools.cache
def _base_tag(packages: Path) -> str:
    return _hash_files([("packages.txt", packages)],
                       json.dumps([SUITE, *BASE_RECIPE, *BASE_CONFIG]))


@functools.cache
def _sim_tag(root: Path, lab_dir: Path, labsim_dir: Path) -> str:
    # The base's package list too: the sim is built on that base.
    files = [("base/packages.txt", root / "base" / "packages.txt"),
             *sim_context(root, lab_dir, labsim_dir)]
    return _hash_files(files, json.dumps([SUITE, *BASE_RECIPE, *BASE_CONFIG]))


def forget_image_refs() -> None:
    """Hash the image inputs again on the next call (for code that edits them)."""
    _base_tag.cache_clear()
    _sim_tag.cache_clear()


def base_image_ref() -> str:
    """Tag of the Debian base: a hash of its package list and build recipe. Pure."""
    return f"{BASE_REPO}:{_base_tag(images_dir() / 'base' / 'packages.txt')}"


def sim_image_ref() -> str:
    """Tag of the sim image: a hash over its build context (sim_context) and the base's
    package list and recipe. Pure."""
    return f"{SIM_REPO}:{_sim_tag(images_dir(), _lab_dir(), _labsim_dir())}"


def image_for(lab: Lab) -> str:
    """The image a lab's nodes run: the spec's, the sim tag of this checkout, or Omnibus'."""
    if lab.image:
        return lab.image
    if lab.flavor is Flavor.SIM:
        return sim_image_ref()
    return omnibus_image_ref(lab.edition.value, str(lab.version))


# -- Debian sources -------------------------------------------------------------


def _deb822_entries(text: str) -> list[str]:
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                entries.append(f"deb {uri} {suite} {fields.get('components', 'main')}")
    return entries


def _one_line_entries(text: str) -> list[str]:
    entries = []
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words or words[0] != "deb":
            continue
        if words[1].startswith("["):  # drop [options]; mmdebstrap uses its own keyring
            while words and not words[1].endswith("]"):
                words.pop(1)
            words.pop(1)
        entries.append(" ".join(words))
    return entries


def debian_sources(apt_dir: Path = Path("/etc/apt"),
                   env: dict[str, str] | None = None) -> list[str]:
    """The host's own bookworm apt sources as one-line entries (``deb URL suite comps``).

    ``LAB_DEBIAN_MIRROR`` (a URL) wins; an empty list means mmdebstrap's default mirror.
    """
    env = dict(os.environ) if env is None else env
    mirror = env.get("LAB_DEBIAN_MIRROR", "").strip()
    if mirror:
        return [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]
    entries: list[str] = []
    one_line = apt_dir / "sources.list"
    if one_line.is_file():
        entries += _one_line_entries(one_line.read_text())
    folder = apt_dir / "sources.list.d"
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix == ".sources":
                entries += _deb822_entries(path.read_text())
            elif path.suffix == ".list":
                entries += _one_line_entries(path.read_text())
    # Only Debian's bookworm suites belong in the base (not third-party repositories).
    return [e for e in entries if len(e.split()) >= 4 and e.split()[2].startswith(SUITE)]


# -- Docker -----------------------------------------------------------------------


def _quiet(_: str) -> None:
    return None


def apt_cache_dir(env: dict[str, str] | None = None) -> Path | None:
    """Where base builds keep downloaded .debs between builds (outside the repo), or None.

    ``LAB_APT_CACHE`` (a folder; empty or ``off``: no cache), else
    ``$XDG_CACHE_HOME/gitlab-testlab/apt``, else ``~/.cache/gitlab-testlab/apt``.
    """
    env = dict(os.environ) if env is None else env
    if "LAB_APT_CACHE" in env:
        value = env["LAB_APT_CACHE"].strip()
        return None if value in ("", "off") else Path(value).expanduser().resolve()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (root / "gitlab-testlab" / "apt").resolve()


def apt_cache_args(cache: Path | None) -> list[str]:
    """mmdebstrap options that fill /var/cache/apt/archives from ``cache`` and back.

    The image never contains the .debs (mmdebstrap's cleanup empties the apt cache
    after the hooks), so the cache is not part of the base tag.
    """
    if cache is None or any(ch.isspace() for ch in str(cache)):
        return []  # mmdebstrap splits special hooks on whitespace: no cache then
    return [
        # Keep downloaded packages in the chroot's cache until the hook below copies them.
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
    ]


def prune_apt_cache(cache: Path) -> list[str]:
    """Keep the newest .deb of each package (a newer Debian point release leaves old ones)."""
    newest: dict[str, Path] = {}
    removed = []
    for deb in sorted(cache.glob("*.deb"), key=lambda p: p.stat().st_mtime):
        name = deb.name.split("_", 1)[0]
        if name in newest:
            removed.append(newest[name].name)
            newest[name].unlink()
        newest[name] = deb
    return removed


def build_base(progress: Progress = _quiet) -> str:
    ref = base_image_ref()
    if shutil.which("mmdebstrap") is None:
        raise ToolMissing("mmdebstrap", "mmdebstrap is missing: `apt-get install mmdebstrap` "
                          "(it builds the sim's Debian base image without a registry)")
    packages = base_packages()
    sources = debian_sources()
    cache = apt_cache_dir()
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    progress(f"building base {ref} with mmdebstrap ({len(packages)} packages"
             + (f"; package cache {cache})" if cache else ")"))
    with tempfile.TemporaryDirectory(prefix="lab-base-") as tmp:
        tarball = os.path.join(tmp, "rootfs.tar")
        run(["mmdebstrap", *BASE_RECIPE, *apt_cache_args(cache),
             "--include=" + ",".join(packages), SUITE, tarball, *sources],
            timeout=BUILD_TIMEOUT,
            hint="mmdebstrap failed: check the Debian mirror (LAB_DEBIAN_MIRROR) and disk space"
                 + (f"; LAB_APT_CACHE=off builds without the package cache {cache}"
                    if cache else ""))
        if cache is not None:
            prune_apt_cache(cache)
        progress(f"importing {ref}")
        changes = [f"LABEL {LABEL_PREFIX}=1", f"LABEL {FLAVOR_LABEL}=base",
                   f"LABEL {SOURCE_LABEL}={json.dumps(image_source())}", *BASE_CONFIG]
        dk.import_image(Path(tarball), ref, changes)
    return ref


def build_sim(base: str, progress: Progress = _quiet) -> str:
    ref = sim_image_ref()
    progress(f"building sim {ref}")
    with tempfile.TemporaryDirectory(prefix="lab-sim-") as tmp:
        context = Path(tmp) / "context"
        for name, path in sim_context():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / name)
        dk.build_image(context, ref, labels={LABEL_PREFIX: "1", FLAVOR_LABEL: "sim",
                                             SOURCE_LABEL: image_source()},
                       buildargs={"BASE": base})
    return ref


def build_images(*, force: bool = False, progress: Progress = _quiet) -> str:
    """Make sure the sim image for this checkout exists; return its ref.

    Returns at once when the tag is present (unless ``force``).
    """
    check_docker()
    ref = sim_image_ref()
    if not force and image_exists(ref):
        progress(f"{ref} is present")
        return ref
    base = base_image_ref()
    if force or not image_exists(base):
        build_base(progress)
    else:
        progress(f"{base} is present")
    build_sim(base, progress)
    progress(f"built {ref}")
    for old in prune_stale({ref, base}):
        progress(f"removed the outdated {old}")
    return ref

