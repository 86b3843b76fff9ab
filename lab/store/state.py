"""The per-user state folder: where `lab up` keeps each lab's directory.

``$LAB_HOME`` wins (tests point it at a temporary folder), then
``$XDG_STATE_HOME/gitlab-testlab``, then ``~/.local/state/gitlab-testlab``.
Read at call time, never at import, so a changed environment is honoured.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
from pathlib import Path

from lab.errors import BadInput
from lab.store.labdir import ID_RE, LAB_ID, MANIFEST, STATE_DIR, new_id

UP_MARKER = f"{STATE_DIR}/up-in-progress"
SPEC_FILE = f"{STATE_DIR}/spec.json"


def state_home() -> Path:
    if os.environ.get("LAB_HOME"):
        return Path(os.environ["LAB_HOME"]).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "gitlab-testlab"


def labs_dir() -> Path:
    # Resolved: a lab's resources are labelled with its resolved directory
    # (``write_lab``), so a symlinked state home must still find them.
    return (state_home() / "labs").resolve()


def lab_dir(name: str) -> Path:
    """Where the lab ``name`` lives: ``labs/NAME`` itself, never where a link there points
    (a link is no lab folder: ``is_own_folder`` refuses it)."""
    return labs_dir() / name


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


def is_lab_dir(path: Path) -> bool:
    """A folder `lab up` rendered: its manifest.json, or (that file deleted by hand) its
    saved spec, which is all a handle on the lab needs (lab.lifecycle.handle.attach)."""
    return (path / MANIFEST).is_file() or (path / SPEC_FILE).is_file()


def _state_error(path: Path, exc: OSError) -> BadInput:
    return BadInput(f"cannot read the state folder {path}: {exc.strerror}; make it readable "
                    "and searchable by you (chmod u+rwx), or set LAB_HOME to a folder of yours")


def lab_names() -> list[str]:
    """Labs that have a directory (rendered by `lab up`), sorted; a link is no lab."""
    root = labs_dir()
    try:
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir()
                      if not p.name.startswith(".") and not p.is_symlink() and is_lab_dir(p))
    except OSError as exc:
        raise _state_error(root, exc) from None


def is_link(name: str) -> bool:
    """Whether ``labs/NAME`` is a symbolic link (never a lab folder, whatever it points to)."""
    try:
        return lab_dir(name).is_symlink()
    except OSError as exc:
        raise _state_error(labs_dir(), exc) from None


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
    path = made_record(name)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{lab_id}\n{purpose}\n")
    os.replace(tmp, path)


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


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None (no such process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot), or "" where /proc can't say: with
    the PID it names one process, never a later one that got the same number, nor PID 1 of
    another PID namespace (a run in a container sharing the state folder)."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def write_up_marker(path: Path, verb: str = "up") -> None:
    """Mark ``path`` as being brought up (``verb`` "up") or taken down ("down") by this
    process, by PID and start time, before its first resource is made or removed; cleared
    only when the job is done. If we die in between, `lab gc` sweeps what is left. Never
    written through a link left in its place."""
    marker = path / UP_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()} {_start_time(os.getpid()) or '-'} {verb}\n")
    os.replace(tmp, marker)


def clear_up_marker(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        (path / UP_MARKER).unlink()


def _up_marker(path: Path) -> tuple[int, str, str] | None:
    """(PID, its start time or "", verb) of the marker in ``path``; None without one."""
    marker = path / UP_MARKER
    try:
        if marker.is_symlink():
            return (0, "", "up")  # not one we wrote: nobody's
        words = marker.read_text(errors="replace")[:200].split()
        started = words[1] if len(words) > 1 and words[1] != "-" else ""
        verb = words[2] if len(words) > 2 and words[2] in ("up", "down") else "up"
        return (int(words[0]), started, verb) if words else (0, "", "up")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return (0, "", "up")  # there, but damaged: stands for a process that is gone


def marker_verb(path: Path) -> str | None:
    """What the process that left the marker in ``path`` was doing: "up", "down" or None."""
    found = _up_marker(path)
    return None if found is None else found[2]


def up_marker_pid(path: Path) -> int | None:
    """The PID in the up-marker (0: a marker no process of ours could have written)."""
    found = _up_marker(path)
    return None if found is None else found[0]


def pid_alive(pid: int, started: str = "") -> bool:
    """Whether ``pid`` runs (and, given ``started``, is the process that started then)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc to ask: trust the signal
    # A zombie (killed child not yet reaped) is dead for our purposes.
    if fields[0] == "Z":
        return False
    return not started or len(fields) <= 19 or fields[19] == started


def interrupted_up(path: Path) -> bool:
    """True if an `lab up` of this lab directory was killed before it finished."""
    found = _up_marker(path)
    return found is not None and not pid_alive(found[0], found[1])


class LabClaim:
    """This process's exclusive use of the lab called ``name`` (a lock file in the state folder).

    Scenario labs keep one name per base lab, so a kept lab is found again; two
    runs at once would otherwise reconfigure and tear down each other's lab. The
    lock is an flock: the kernel drops it when the process dies, so a killed run
    never leaves a lab claimed. The holder writes its PID into the file, so
    `lab down` can say which process uses the lab.
    """

    suffix = "lock"

    def __init__(self, name: str) -> None:
        self.name = name
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return labs_dir() / f".{self.name}.{self.suffix}"

    def acquire(self, *, wait: bool) -> bool:
        """Take the claim; without ``wait``, False if another process holds it."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def _open(self) -> int:
        """The lock file, made if missing; a link in its place (not ours: nothing in the state
        folder is made as a link) is removed, never followed."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
            self.path.unlink()  # the link itself, not what it names
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                           0o600)
        except OSError as exc:
            raise BadInput(f"cannot use the lock file {self.path}: {exc.strerror}; it is the "
                           "toolkit's own file: remove whatever is there by hand (when no "
                           "`lab` command runs), or set LAB_HOME to a folder of yours") from None

    def holder(self) -> int | None:
        """The PID of another process holding the claim now, else None."""
        if self._fd is not None or not (self.path.is_file() or self.path.is_symlink()):
            return None
        if not self.acquire(wait=False):
            try:
                return int(self.path.read_text().strip()[:20] or 0) or -1
            except (OSError, ValueError):
                return -1  # held, but the PID is not written yet
        self.release()
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def keep_lab(name: str) -> None:
    """A run's lab left up on purpose (`lab run --keep`): `lab gc` keeps it, and says so."""
    set_purpose(name, FOR_KEPT)


def held_by(name: str) -> tuple[str, int] | None:
    """Which process holds the lab ``name`` now: (what, PID; -1 when not written yet), or
    None. Asked of the locks (the kernel drops them when a process dies), not of a PID in
    a file."""
    for claim, what in ((StartLock(name), "`lab up`"), (LabClaim(name), "`lab run`")):
        holder = claim.holder()
        if holder is not None:
            return what, holder
    return None


class StartLock(LabClaim):
    """Held while one `lab up` starts the lab called ``name``: a second start says so at once."""

    suffix = "start"
