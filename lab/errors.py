"""The toolkit's one exception tree; the class says the exit code.

Everything a user can cause derives from ``LabError`` and is printed by the CLI
as one paragraph without a traceback, exiting with the class's ``exit_code``
(the README's "Exit codes" table); anything else is a bug and keeps its
traceback. Raise the most specific branch:

    LabError
      BadInput (2)         usage, files, names: what the user gave is wrong
        SpecError          a spec, scenario or gitlab.rb file, with file/line/key
        LabNotFound, LabOwnedElsewhere, LabBusy, LabAlreadyUp, PortInUse
      ToolMissing (5)      a host tool is not installed: ruby, Compose, mmdebstrap, docker
      EngineUnusable (3)   Docker, Compose or an image is not usable
        EngineError        a Docker or Compose command failed
        DockerUnavailable, ImageMissing
      LabFailing (4)       the lab did not become ready, or did not answer a call it must
        NotReady           (and the client's ApiError, GitalyError)
      Incomplete (1)       the main job was done, part of it failed (as a failed check)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

# Exit codes: the README's "Exit codes" table, and each class's ``exit_code``.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENGINE = 3
EXIT_NOT_READY = 4
EXIT_TOOL_MISSING = 5


class LabError(Exception):
    """A problem the user can fix; the message says what to do.

    Raise a branch below, not this class: the branch decides the exit code. A bare
    ``LabError`` counts as bad input, the commonest case, so that code not yet moved
    to a branch keeps the exit code it always had.
    """

    exit_code: ClassVar[int] = EXIT_USAGE


class BadInput(LabError):
    """What the user gave is wrong: an option, a file, a lab name, a port, a folder."""

    exit_code = EXIT_USAGE


class SpecError(BadInput):
    """A lab spec, scenario or gitlab.rb file is invalid."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None,
                 key: str = "") -> None:
        self.source = source
        self.line = line
        self.key = key
        where = source
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        prefix = f"{where}: " if where else ""
        # A command-line option names its key already: "--version: version: ..." was said.
        if key and source != f"--{key}":
            prefix += f"{key}: "
        super().__init__(prefix + message)


class ReleaseTooOld(SpecError):
    """The lab's topology does not exist in the release asked for (a Gitaly Cluster before
    13.3): a scenario library run at that release skips such a scenario, naming why,
    instead of failing the whole run."""


class LabNotFound(BadInput):
    """No lab of that name exists."""


class LabDamaged(BadInput):
    """The lab's folder no longer says what the lab is (its .lab/ damaged or deleted by
    hand); `lab down` still removes what carries its labels."""


class PortInUse(BadInput):
    """A fixed host port the spec publishes is taken."""


class LabAlreadyUp(BadInput):
    """A lab of that name is already running."""


class LabOwnedElsewhere(BadInput):
    """The engine holds a lab of that name that belongs to another folder."""


class LabBusy(BadInput):
    """Another process is starting or using the lab."""


class ToolMissing(LabError):
    """A program the toolkit runs on the host is not installed (ruby, a Compose tool,
    mmdebstrap, the docker CLI); the message says how to install it."""

    exit_code = EXIT_TOOL_MISSING

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        super().__init__(message)


class EngineUnusable(LabError):
    """Docker, Compose or an image is not usable."""

    exit_code = EXIT_ENGINE


class EngineError(EngineUnusable):
    """A Docker or Compose command failed."""

    def __init__(self, cmd: Sequence[str], returncode: int, stderr: str, hint: str = "") -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        msg = f"command failed (exit {returncode}): {' '.join(self.cmd)}"
        if tail:
            msg += f"\n{tail}"
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)


class DockerUnavailable(EngineUnusable):
    """The Docker Engine cannot be reached."""


class ImageMissing(EngineUnusable):
    """An image the lab needs is not present and cannot be built or pulled."""


class LabFailing(LabError):
    """The lab did not become ready, or did not answer a call it had to answer."""

    exit_code = EXIT_NOT_READY


class NotReady(LabFailing):
    """A lab did not become ready in time, or a node died while waiting."""

    def __init__(self, node: str, last_status: str, log_tail: str = "", hint: str = "") -> None:
        self.node = node
        self.last_status = last_status
        self.log_tail = log_tail
        msg = f"node {node!r} is not ready: {last_status}"
        if log_tail:
            msg += f"\n--- last log lines of {node} ---\n{log_tail.rstrip()}"
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)


class Incomplete(LabError):
    """The command did its main job but part of it failed (exit 1, like a failed check)."""

    exit_code = EXIT_FAILED
