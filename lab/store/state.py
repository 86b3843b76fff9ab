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
import time
from pathlib import Path

from lab.errors import BadInput
from lab.store.layout import MANIFEST, PUBLIC, SPEC_FILE, UP_MARKER, write_file


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
    (a link is no lab folder: ``lab.store.ownership.is_own_folder`` refuses it)."""
    return labs_dir() / name


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
    write_file(path / UP_MARKER, f"{os.getpid()} {_start_time(os.getpid()) or '-'} {verb}\n",
               PUBLIC)


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

    # `lab list`, `lab gc` and `lab down` ask whether a lab is held by taking its lock for
    # a moment (``holder``); a start or a run that meets such a probe tries again before it
    # counts the lab as another's.
    PROBE_RETRIES = 5
    PROBE_PAUSE = 0.02

    def acquire(self, *, wait: bool, retries: int | None = None) -> bool:
        """Take the claim; without ``wait``, False if another process holds it."""
        if self._fd is not None:
            return True
        fd = self._open()
        for attempt in range(self.PROBE_RETRIES if retries is None else retries):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                time.sleep(self.PROBE_PAUSE * (attempt + 1))
        else:
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
        if not self.acquire(wait=False, retries=1):
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


class StartLock(LabClaim):
    """Held while one `lab up` starts the lab called ``name``: a second start says so at once."""

    suffix = "start"
