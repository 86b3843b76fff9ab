"""The Compose tool: which one exists, and the exact argument lists we give it.

Both the v2 plugin (``docker compose``) and the v1 tool (``docker-compose``)
take the same flags for everything used here, so one set of builders serves
both; only the leading words differ. Builders are pure (tests assert the exact
lists); ``Compose.run`` sends them through ``lab.engine.run.run``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.engine.run import Result, run
from lab.errors import DockerUnavailable, EngineError

COMPOSE_FILE = "docker-compose.yml"
V2 = ("docker", "compose")
V1 = ("docker-compose",)
# Stop timeout: Omnibus needs a few seconds to stop its services cleanly, and a
# lab is disposable, so we do not wait the default 10 s per container longer.
STOP_TIMEOUT = 10

Runner = Callable[..., Result]


@dataclass(frozen=True)
class ComposeTool:
    argv: tuple[str, ...]
    version: str

    @property
    def name(self) -> str:
        return " ".join(self.argv)


def _probe(argv: tuple[str, ...], runner: Runner) -> str | None:
    try:
        res = runner([*argv, "version", "--short"], check=False, timeout=30)
    except EngineError:  # not installed
        return None
    out = res.stdout.strip()
    # Docker without the plugin answers `docker compose` with usage text and exit 1.
    if res.returncode != 0 or not out or not out[0].lstrip("v")[:1].isdigit():
        return None
    return out.lstrip("v")


_detected: dict[str, ComposeTool] = {}


def detect(runner: Runner = run) -> ComposeTool:
    """The Compose tool to use: ``$LAB_COMPOSE`` if set, else v2 plugin, else v1."""
    forced = os.environ.get("LAB_COMPOSE", "")
    key = forced or "auto"
    if runner is run and key in _detected:
        return _detected[key]
    candidates = [tuple(forced.split())] if forced else [V2, V1]
    for argv in candidates:
        version = _probe(argv, runner)
        if version is not None:
            tool = ComposeTool(argv, version)
            if runner is run:
                _detected[key] = tool
            return tool
    tried = " and ".join(f"`{' '.join(c)}`" for c in candidates)
    raise DockerUnavailable(
        f"no Docker Compose tool found (tried {tried}); install the Compose plugin "
        "(package docker-compose-plugin) or docker-compose, or set LAB_COMPOSE to the command")


@dataclass(frozen=True)
class Compose:
    """Argument lists for one lab's Compose project."""

    tool: ComposeTool
    project: str
    directory: Path

    @property
    def file(self) -> Path:
        return self.directory / COMPOSE_FILE

    def base(self) -> list[str]:
        return [*self.tool.argv, "--project-name", self.project, "--file", str(self.file)]

    def up_cmd(self, services: Sequence[str] = (), *, no_deps: bool = False) -> list[str]:
        # --no-build: images are ours to provide; --remove-orphans: a node dropped
        # from the spec must not linger after `apply`.
        cmd = [*self.base(), "up", "--detach", "--no-build", "--remove-orphans"]
        if no_deps:
            cmd.append("--no-deps")
        return [*cmd, *services]

    def down_cmd(self, *, timeout: int = STOP_TIMEOUT) -> list[str]:
        # --volumes: a lab's data is disposable and must not outlive it (labels sweep).
        return [*self.base(), "down", "--volumes", "--remove-orphans", "--timeout", str(timeout)]

    def restart_cmd(self, services: Sequence[str], *, timeout: int = STOP_TIMEOUT) -> list[str]:
        return [*self.base(), "restart", "--timeout", str(timeout), *services]

    def run(self, cmd: Sequence[str], *, timeout: float | None = None, check: bool = True,
            runner: Runner = run) -> Result:
        return runner(cmd, cwd=str(self.directory), timeout=timeout, check=check,
                      hint=f"(Compose project {self.project} in {self.directory})")
