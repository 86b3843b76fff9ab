"""The per-user state folder: where `lab up` keeps each lab's directory.

``$LAB_HOME`` wins (tests point it at a temporary folder), then
``$XDG_STATE_HOME/gitlab-testlab``, then ``~/.local/state/gitlab-testlab``.
Read at call time, never at import, so a changed environment is honoured.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lab.render.labdir import MANIFEST, STATE_DIR

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


def lab_names() -> list[str]:
    """Labs that have a directory (rendered by `lab up`), sorted."""
    root = labs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file())


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
    never leaves a lab claimed.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return labs_dir() / f".{self.name}.lock"

    def acquire(self, *, wait: bool) -> bool:
        """Take the claim; without ``wait``, False if another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
