"""The lab folder's layout: where each file lives, and how the toolkit reads one.

One place for the names a lab folder is made of (``LabFolder`` in
``lab.store.lab_folder`` gives them a folder), and ``read_no_links``, the only way a
file of a lab folder is read: a node's folder is its container's /etc/gitlab, so any
part of a path there may be a link a container left.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from lab.errors import BadInput

MANIFEST = "manifest.json"

STATE_DIR = ".lab"

SECRETS_STORE = f"{STATE_DIR}/secrets.json"
# The lab as spec data (tokens left out: they are secrets, kept once, in SECRETS_STORE).
SPEC_FILE = f"{STATE_DIR}/spec.json"
# Written by `lab up` and `lab down` before their first change to the engine (see
# lab.store.state.write_up_marker).
UP_MARKER = f"{STATE_DIR}/up-in-progress"
# Where `lab run` leaves its last results for a lab, for `lab collect` to bundle.
LAST_RUN_JSON = f"{STATE_DIR}/last-run.json"

LAST_RUN_XML = f"{STATE_DIR}/last-run.xml"

# The lab folder's random id and the id of the state folder that started it: the
# labels that say who owns the lab's containers on a shared engine.
LAB_ID = f"{STATE_DIR}/id"

LAB_HOME = f"{STATE_DIR}/home"

# Every file a render wrote into the folder, recorded as it writes them: a later render
# removes only those (never a file of the user's in a folder given with --force, whatever
# a manifest.json there names).
WRITTEN = f"{STATE_DIR}/written.json"

# A manifest is a few KiB; a bigger one was not written by a render.
MAX_MANIFEST_BYTES = 1024 * 1024

# A gitlab-secrets.json is a few KB; anything far larger is not one.
SECRETS_MAX_BYTES = 1 << 20

ADMIN_TOKEN = "admin-token"

CA_FILE = "lab-ca.crt"

SECRET = 0o600
PUBLIC = 0o644


def read_no_links(root: Path, rel: str, *, limit: int | None = None) -> str:
    """The text of regular file ``root/rel``, opened without following a symbolic link in
    any part of ``rel``: a container may swap a file or folder of its /etc/gitlab for a link
    to a host file between the listing and the read."""
    return read_bytes_no_links(root, rel, limit=limit).decode()


def read_bytes_no_links(root: Path, rel: str, *, limit: int | None = None) -> bytes:
    """``read_no_links``, as bytes."""
    *dirs, name = rel.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in dirs:
            sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
        # O_NONBLOCK: a FIFO put there must not hang the collect.
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{rel}: not a regular file")
        data = fh.read() if limit is None else fh.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise OSError(f"{rel}: larger than {limit} bytes")
        return data


def write_file(path: Path, content: str, mode: int) -> None:
    """Atomically, with ``mode`` from the start: a secret is never readable by others.

    The temporary file is created fresh (never through a link someone left in
    its place), and the rename replaces a link at ``path`` instead of writing
    where it points.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
        os.fchmod(fh.fileno(), mode)  # the file we made, whatever is at its name by now
    os.replace(tmp, path)


def chmod_folder(path: Path, mode: int) -> None:
    """chmod a folder, never what a link in its place points to: a node's folder is
    mounted into its container, which can swap a folder for a link after ``inside``
    looked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise BadInput(f"{path} is no longer a folder ({exc.strerror}; a node's container can "
                       "change it): a lab folder holds only real files and folders. Remove "
                       "what is there and render again") from None
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
