"""Run every external command through one place: argument lists, redaction, errors."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lab.errors import EngineError, ToolMissing

log = logging.getLogger("lab.engine")

REDACTED = "[REDACTED]"


@dataclass
class Redactor:
    """Replaces known secret values with a marker in anything shown to a user.

    One per lab (``RunningLab.redactor``, seeded with its secrets), or per client
    with its token: never process-wide, so one lab's values neither leak into nor
    pile up in another's.
    """

    secrets: set[str] = field(default_factory=set)

    def add(self, values: Iterable[str]) -> None:
        # Short values would redact innocent substrings; our secrets are long.
        self.secrets.update(v for v in values if v and len(v) >= 8)

    def __call__(self, text: str) -> str:
        for value in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


def as_is(text: str) -> str:
    """The redaction of a caller that knows no secrets."""
    return text


def shell_cmd_redacted(cmd: Sequence[str], redact: Callable[[str], str] = as_is) -> str:
    return redact(" ".join(cmd))


@dataclass(frozen=True)
class Result:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    cmd: Sequence[str],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    hint: str = "",
    redact: Callable[[str], str] = as_is,
) -> Result:
    """Run ``cmd`` (never through a shell); raise EngineError on failure if ``check``."""
    argv = [str(c) for c in cmd]
    log.debug("run: %s", shell_cmd_redacted(argv, redact))
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            argv, input=data, capture_output=True, env=dict(env) if env is not None else None,
            cwd=cwd, timeout=timeout, check=False,
        )
    except FileNotFoundError as exc:
        if cwd is not None and exc.filename == cwd:
            raise EngineError(argv, 127, f"{cwd}: no such directory", hint) from exc
        raise ToolMissing(argv[0], f"`{argv[0]}` is not installed (command not found); "
                          "install it, or put it on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise EngineError(argv, -1, f"timed out after {timeout}s", hint) from exc
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise EngineError([redact(a) for a in argv], proc.returncode, redact(err or out), hint)
    return Result(argv, proc.returncode, out, err)
