"""The per-user state folder: where `lab up` keeps each lab's directory.

``$LAB_HOME`` wins (tests point it at a temporary folder), then
``$XDG_STATE_HOME/gitlab-testlab``, then ``~/.local/state/gitlab-testlab``.
Read at call time, never at import, so a changed environment is honoured.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from lab.errors import BadInput
from lab.store.labdir import ID_RE, MANIFEST, STATE_DIR, new_id

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
    return (labs_dir() / name).resolve()


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


def lab_names() -> list[str]:
    """Labs that have a directory (rendered by `lab up`), sorted."""
    root = labs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if is_lab_dir(p))


def write_up_marker(path: Path) -> None:
    """Mark ``path`` as being brought up by this process; `lab gc` sweeps it if we die."""
    marker = path / UP_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{os.getpid()}\n")


def clear_up_marker(path: Path) -> None:
    (path / UP_MARKER).unlink(missing_ok=True)


def up_marker_pid(path: Path) -> int | None:
    try:
        return int((path / UP_MARKER).read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    # A zombie (killed child not yet reaped) is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def interrupted_up(path: Path) -> bool:
    """True if an `lab up` of this lab directory was killed before it finished."""
    pid = up_marker_pid(path)
    return pid is not None and not pid_alive(pid)


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The PID of another process holding the claim now, else None."""
        if self._fd is not None or not self.path.is_file():
            return None
        if not self.acquire(wait=False):
            try:
                return int(self.path.read_text().strip() or 0) or -1
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
