"""Whose a lab is: one module for the ids, the labels that carry them, the state folder's
marks on the folders it made, and the answers to "is this resource, this folder, this
lab ours?".

A lab is identified on the engine by its name and two random ids, never by a path
alone (a path means nothing in another mount namespace; a copied folder keeps its
id): the lab folder's id (``.lab/id``, made at its first render) and the id of the
state folder that started it (``labs/.home-id``). Every resource carries them as
labels (``lab.model.labels``). The state folder also records each lab folder it made
(``labs/.NAME.made``: the lab id, and whom the lab is for), outside the folder, so
neither a container nor a hand-deleted ``.lab/`` can forge or remove it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import threading
from pathlib import Path

from lab.errors import BadInput
from lab.model.labels import DIR_LABEL, HOME_LABEL, ID_LABEL
from lab.store.layout import LAB_HOME, LAB_ID, PUBLIC, read_no_links, write_file
from lab.store.state import LabClaim, StartLock, labs_dir

ID_RE = re.compile(r"^[0-9a-f]{16}\Z")


def new_id() -> str:
    return secrets.token_hex(8)


def _read_id(path: Path) -> str | None:
    try:
        text = read_no_links(path.parent.parent, f"{path.parent.name}/{path.name}",
                             limit=64).strip()
    except (OSError, ValueError):
        return None
    return text if ID_RE.match(text) else None


def lab_id(lab_dir: Path) -> str | None:
    """The folder's random lab id (written at its first render), or None."""
    return _read_id(lab_dir / LAB_ID)


def lab_owner(lab_dir: Path) -> dict[str, str]:
    """The ownership labels of the lab in ``lab_dir``: its id and its state folder's id.

    A lab is identified on the engine by its name and these, not by a path
    alone: a path means nothing in another mount namespace, and a copied folder
    keeps its id.
    """
    out: dict[str, str] = {}
    lid = lab_id(lab_dir)
    if lid:
        out[ID_LABEL] = lid
    home = _read_id(lab_dir / LAB_HOME)
    if home:
        out[HOME_LABEL] = home
    return out


def home_id(*, create: bool = True) -> str | None:
    """This state folder's random id, carried by its labs as a label (made on first use).

    `lab gc` sweeps only labs with this id, and a lab of the same name from
    another state folder (another user, checkout or container) is never taken
    over: a path alone can't tell them apart across mount namespaces.
    """
    path = labs_dir() / ".home-id"
    try:
        text = path.read_text().strip()
        if ID_RE.match(text):
            return text
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}; check the state folder "
                       "($LAB_HOME) is yours and readable") from None
    if not create:
        return None
    # Written whole under a private name, then linked into place: a second process
    # starting at the same moment (pytest -n 2 on a fresh folder, or labs booted side
    # by side in threads of one process) never reads the file empty, and the first
    # link wins for all. The private name is per process and thread.
    tmp = path.with_name(f".home-id.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_id() + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it just now
            os.link(tmp, path)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}; make the state folder "
                       "($LAB_HOME) writable by you") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return home_id(create=False)


def is_ours(lbl: dict[str, str], path: Path, owner: dict[str, str], home: str | None) -> bool:
    """Whether a resource with labels ``lbl`` belongs to the lab folder ``path``."""
    theirs_home = lbl.get(HOME_LABEL)
    if theirs_home and home and theirs_home != home:
        return False  # another state folder's lab, even at the same path
    if ID_LABEL in lbl and ID_LABEL in owner:
        return lbl[ID_LABEL] == owner[ID_LABEL]
    # No id on one side: a lab from before ids, or our own folder deleted by hand
    # (its leftovers carry our state folder's id and our path).
    return lbl.get(DIR_LABEL) == str(path) and (ID_LABEL not in lbl or theirs_home == home)


def started_here(lbl: dict[str, str], home: str | None, root: Path) -> bool:
    """A resource started from this state folder (older ones: by their folder's path)."""
    if HOME_LABEL in lbl:
        return home is not None and lbl[HOME_LABEL] == home
    return Path(lbl.get(DIR_LABEL, "")).parent == root


def made_record(name: str) -> Path:
    """Written by `lab up` when it makes ``labs/NAME``: the state folder's own mark of the
    folders it created (outside them, so a container or a deleted .lab/ can't remove it),
    with whom the lab is for (``FOR_*``)."""
    return labs_dir() / f".{name}.made"


# Whom a lab in the state folder is for, in its made record:
FOR_YOU = "you"  # started by `lab up` (or kept by `lab up --keep`): the user's own

FOR_START = "start"  # a `lab up` making a new folder, not finished yet: gone if it fails

FOR_RUN = "run"  # made by `lab run` / pytest for itself: removed when the run ends

FOR_KEPT = "kept"  # a run's lab left up on purpose (`lab run --keep`, `--lab-keep`)

PURPOSES = (FOR_YOU, FOR_START, FOR_RUN, FOR_KEPT)


def mark_made(name: str, lab_id: str, purpose: str = FOR_YOU) -> None:
    """Record that this state folder made ``labs/NAME`` (lab id ``lab_id``) for ``purpose``."""
    write_file(made_record(name), f"{lab_id}\n{purpose}\n", PUBLIC)


def _made(name: str) -> tuple[str, str] | None:
    """The made record of ``labs/NAME``: (lab id, purpose), or None (none, or not ours)."""
    path = made_record(name)
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        lines = path.read_text(errors="replace")[:200].split()
    except OSError:
        return None
    if not lines or not ID_RE.match(lines[0]):
        return None
    return lines[0], lines[1] if len(lines) > 1 and lines[1] in PURPOSES else FOR_YOU


def made_for(name: str) -> str:
    """Whom the lab ``name`` is for (``FOR_*``); a folder without a record is the user's."""
    found = _made(name)
    return FOR_YOU if found is None else found[1]


def set_purpose(name: str, purpose: str) -> None:
    """Change whom the lab ``name`` is for (it keeps its id); nothing without a record."""
    found = _made(name)
    if found is not None and found[1] != purpose:
        mark_made(name, found[0], purpose)


def keep_lab(name: str) -> None:
    """A run's lab left up on purpose (`lab run --keep`): `lab gc` keeps it, and says so."""
    set_purpose(name, FOR_KEPT)


def is_own_folder(path: Path) -> bool:
    """Whether ``path`` may be deleted as a lab folder: without following any link, a real
    folder directly in this state folder's labs/, carrying the toolkit's own marks (the lab
    id a render writes into .lab/, or the record `lab up` keeps beside it), never a
    manifest.json, which anyone can write."""
    root = labs_dir()
    try:
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or path.parent != root or path.name.startswith("."):
        return False
    if _made(path.name) is not None:
        return True
    with contextlib.suppress(OSError):
        mark = path / LAB_ID
        if stat.S_ISDIR(mark.parent.lstat().st_mode) and stat.S_ISREG(mark.lstat().st_mode):
            return bool(ID_RE.match(mark.read_text(errors="replace")[:100].strip()))
    return False


def held_by(name: str) -> tuple[str, int] | None:
    """Which process holds the lab ``name`` now: (what, PID; -1 when not written yet), or
    None. Asked of the locks (the kernel drops them when a process dies), not of a PID in
    a file."""
    for claim, what in ((StartLock(name), "`lab up`"), (LabClaim(name), "`lab run`")):
        holder = claim.holder()
        if holder is not None:
            return what, holder
    return None
