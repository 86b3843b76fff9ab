"""The toolkit's one exception tree.

Everything a user can cause derives from ``LabError`` and is printed by the CLI
as one paragraph without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabError(Exception):
    """A problem the user can fix; the message says what to do."""


class SpecError(LabError):
    """A lab spec or scenario file is invalid."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None,
                 key: str = "") -> None:
        self.source = source
        self.line = line
        self.key = key
        where = source
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        prefix = f"{where}: " if where else ""
        if key:
            prefix += f"{key}: "
        super().__init__(prefix + message)


class EngineError(LabError):
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


class DockerUnavailable(LabError):
    """The Docker Engine or the Compose tool cannot be used."""


class ImageMissing(LabError):
    """An image the lab needs is not present and cannot be built or pulled."""


class NotReady(LabError):
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


class LabNotFound(LabError):
    """No lab of that name exists."""
