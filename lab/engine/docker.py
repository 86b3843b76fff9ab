"""The Docker Engine through its Python SDK: list, inspect, exec, logs, faults, images.

Compose starts and removes labs (``lab.engine.compose``, the one subprocess);
everything else that talks to Docker goes through here. The SDK is untyped: its
objects stay inside this module, and callers get and give the frozen snapshots
of ``lab.engine.snapshots`` (or plain ids and names). Functions that show command
lines, output or errors take the lab's ``redact`` (``lab.engine.run.Redactor``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from lab.engine.run import Result, as_is
from lab.engine.snapshots import Container, Image, Network, Volume
from lab.errors import DockerUnavailable, EngineError, ToolMissing

# Long enough for `gitlab-ctl reconfigure` run through exec; a hung engine is
# caught by the short ping first.
API_TIMEOUT = 3600
PING_TIMEOUT = 15
EXEC_TIMED_OUT = 124  # coreutils `timeout`

Redact = Callable[[str], str]
ContainerRef = Container | str  # a snapshot, or a container's id or name

_clients: dict[str, Any] = {}


def _unavailable(exc: BaseException) -> DockerUnavailable:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return DockerUnavailable(
        f"Docker is not reachable at {host} ({exc}); start it (systemctl start docker) "
        "or set DOCKER_HOST to a reachable engine")


def _client() -> Any:
    """A connected SDK client (one per DOCKER_HOST); DockerUnavailable if there is none.

    Private: docker-py objects stay in lab.engine (``check_reachable`` asks for one; the
    engine's other modules use ``sdk_client``).
    """
    import docker
    from docker.transport import UnixHTTPAdapter

    key = os.environ.get("DOCKER_HOST", "")
    if key in _clients:
        return _clients[key]
    try:
        cl = docker.from_env(timeout=PING_TIMEOUT)
        cl.ping()
    except Exception as exc:  # the SDK raises DockerException or raw requests/OS errors
        raise _unavailable(exc) from exc
    cl.api.timeout = API_TIMEOUT
    if isinstance(cl.api.get_adapter(cl.api.base_url), UnixHTTPAdapter):
        # No proxy or netrc stands between a process and a local socket: without this,
        # requests reads the proxy variables from the environment for every call, ~1 ms
        # each, which a scenario run's 1,300 calls per lab feel.
        cl.api.trust_env = False
    _clients[key] = cl
    return cl


def sdk_client() -> Any:
    """The connected SDK client, for the engine's other modules that speak the Engine API
    (lab.engine.swarm); its objects stay inside lab.engine, callers outside get snapshots.
    Looked up at each call, so a test's stand-in for ``_client`` serves them too."""
    return _client()


def check_reachable() -> None:
    """DockerUnavailable, saying how to start Docker, unless the engine answers."""
    _client()


def version() -> str:
    """The engine's version (`docker version`'s Server.Version)."""
    with engine_call("version"):
        return str(_client().version().get("Version", "?"))


def _id(ref: ContainerRef) -> str:
    return ref.id if isinstance(ref, Container) else ref


def _shown(ref: ContainerRef) -> str:
    return ref.name if isinstance(ref, Container) else ref


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


@contextlib.contextmanager
def engine_call(*what: str, redact: Redact = as_is, missing_ok: bool = False) -> Iterator[None]:
    """Docker's errors as the toolkit's, in one place (as httpx's ``map_exceptions``).

    Inside the block, anything the SDK raises (its APIError and NotFound, raw
    requests or OS errors) becomes ``EngineError(what, -1, message)``, the message
    passed through ``redact``; with ``missing_ok`` a 404 (the object is gone) ends
    the block quietly. The toolkit's own DockerUnavailable and EngineError pass as
    they are.
    """
    try:
        yield
    except (DockerUnavailable, EngineError):
        raise
    except Exception as exc:
        if missing_ok and _not_found(exc):
            return
        raise EngineError(list(what), -1, redact(str(exc))) from exc


# -- listing and inspecting -------------------------------------------------------


def label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}


def carries(have: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether an object labelled ``have`` passes ``label_filters(labels)``, as the engine
    decides it: every key present, with its value unless that is "" (any value)."""
    return all(k in have and (not v or have[k] == v) for k, v in labels.items())


def containers(labels: Mapping[str, str]) -> list[Container]:
    """Every container (running or not) carrying ``labels`` ("" value: any), as listed now;
    one not running also inspected (its exit code, OOM flag and start time, which a
    listing lacks). docker-py's own list inspects every container: one call per container
    per listing, where a lab's readiness and changes list its containers hundreds of times."""
    with engine_call("ps", "--all", "--filter", *label_filters(labels)["label"]):
        api = _client().api
        out: list[Container] = []
        for row in api.containers(all=True, filters=label_filters(labels)):
            c = Container.from_listing(row)
            if not c.state.running:
                try:
                    c = Container.from_attrs(api.inspect_container(c.id))
                except Exception as exc:
                    if _not_found(exc):  # removed since it was listed
                        continue
                    raise
            out.append(c)
        return out


def networks(labels: Mapping[str, str]) -> list[Network]:
    with engine_call("network", "ls", "--filter", *label_filters(labels)["label"]):
        return [Network.from_attrs(n.attrs)
                for n in _client().networks.list(filters=label_filters(labels))]


def volumes(labels: Mapping[str, str]) -> list[Volume]:
    with engine_call("volume", "ls", "--filter", *label_filters(labels)["label"]):
        return [Volume.from_attrs(v.attrs)
                for v in _client().volumes.list(filters=label_filters(labels))]


def inspect(ref: ContainerRef) -> Container:
    """The container as it is now (EngineError if it is gone)."""
    with engine_call("inspect", _shown(ref)):  # NotFound too: removed meanwhile
        return Container.from_attrs(_client().api.inspect_container(_id(ref)))


# -- exec and logs --------------------------------------------------------------------


def exec_in(container: ContainerRef, cmd: Sequence[str], *, check: bool = True,
            timeout: float | None = None, user: str = "", redact: Redact = as_is) -> Result:
    """Run ``cmd`` in the container (no shell added); stdout and stderr kept apart.

    The Result holds the output as the command printed it; what goes into an
    error (the command line, its output) passes ``redact`` first.
    """
    argv = [str(c) for c in cmd]
    run_argv = argv
    if timeout is not None:
        # The engine cannot time out an exec, so the container's own `timeout` does.
        run_argv = ["timeout", "-k", "5", str(max(1, int(timeout))), *argv]
    shown = ["exec", _shown(container), *(redact(a) for a in argv)]
    api = _client().api
    with engine_call(*shown, redact=redact):
        exec_id = api.exec_create(_id(container), run_argv, user=user)["Id"]
        out, err = api.exec_start(exec_id, demux=True)
        code = api.exec_inspect(exec_id).get("ExitCode")
    stdout = (out or b"").decode(errors="replace")
    stderr = (err or b"").decode(errors="replace")
    if timeout is not None and code == EXEC_TIMED_OUT:
        raise EngineError(shown, code, f"timed out after {timeout:g}s")
    if check and code != 0:
        raise EngineError(shown, int(code if code is not None else -1), redact(stderr or stdout))
    return Result(argv, int(code if code is not None else -1), stdout, stderr)


def exec_attached(container: ContainerRef, cmd: Sequence[str], *, tty: bool) -> NoReturn:
    """Replace this process with `docker exec -i [-t]`: the user's terminal runs ``cmd``.

    The one Docker CLI call: an interactive exec needs the terminal in raw mode,
    window resizes and signals passed on, and the command's exit code as ours,
    which the CLI does and the SDK leaves to its caller.
    """
    argv = ["docker", "exec", "-i", *(["-t"] if tty else []), _id(container), *cmd]
    try:
        os.execvp("docker", argv)
    except OSError as exc:  # the Engine answers through its API, but no docker CLI here
        raise ToolMissing("docker", f"cannot run the docker command ({exc.strerror}); an "
                          "interactive exec (`lab exec`) needs the Docker CLI on PATH") from None


_SINCE_RE = re.compile(r"^(\d+)([smhd])\Z")


def since_timestamp(since: str, now: float | None = None) -> int | float:
    """'10m', '2h', '30s' or a unix timestamp -> a unix timestamp for the logs API."""
    m = _SINCE_RE.match(since.strip())
    if m:
        seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return int((time.time() if now is None else now) - seconds)
    try:
        # Fractions kept: "since this container started" must not reach into its last run.
        value = float(since)
        if not math.isfinite(value):
            raise ValueError(since)
        return int(value) if value.is_integer() else value
    except ValueError:
        raise EngineError(["logs", "--since", since], 2,
                          "expected a duration such as 10m, 2h, 30s or a unix timestamp") from None


def logs(container: ContainerRef, *, tail: int | None = 200, since: str | None = None,
         timestamps: bool = False, redact: Redact = as_is) -> str:
    kwargs: dict[str, Any] = {"tail": "all" if tail is None else tail, "timestamps": timestamps}
    if since:
        kwargs["since"] = since_timestamp(since)
    with engine_call("logs", _shown(container), redact=redact):
        data = _client().api.logs(_id(container), stdout=True, stderr=True, **kwargs)
    return redact(bytes(data).decode(errors="replace"))


def follow_logs(container: ContainerRef, *, tail: int | None = 200, since: str | None = None,
                redact: Redact = as_is) -> Iterator[str]:
    """Log lines as they come (redacted); ends when the container stops."""
    kwargs: dict[str, Any] = {"tail": "all" if tail is None else tail}
    if since:
        kwargs["since"] = since_timestamp(since)
    buf = b""
    # Whole lines only, so a secret split across two chunks is still redacted.
    with engine_call("logs", "--follow", _shown(container), redact=redact):
        for chunk in _client().api.logs(_id(container), stream=True, follow=True, stdout=True,
                                       stderr=True, **kwargs):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield redact(line.decode(errors="replace"))
    if buf:
        yield redact(buf.decode(errors="replace"))


def log_tail(container: ContainerRef, lines: int = 40, *, redact: Redact = as_is) -> str:
    """The last lines of a container's log, or why they could not be read."""
    try:
        return logs(container, tail=lines, redact=redact)
    except EngineError as exc:
        return f"(logs unavailable: {exc.stderr})"


def memory_usage(container: ContainerRef) -> int:
    """Bytes of memory in use (as `docker stats` counts it, minus page cache)."""
    with engine_call("stats", _shown(container)):
        stats = _client().api.stats(_id(container), stream=False)
    mem = stats.get("memory_stats", {})
    usage = int(mem.get("usage", 0))
    inner = mem.get("stats", {})
    cache = int(inner.get("inactive_file", inner.get("total_inactive_file", 0)))
    return max(0, usage - cache)


# -- faults and removal ----------------------------------------------------------------


def _act(what: str, shown: Sequence[str], call: Callable[[Any], object]) -> None:
    with engine_call(what, *shown):
        call(_client().api)


def stop(container: ContainerRef, timeout: int | None = None) -> None:
    # None: the container's own stop timeout (compose's stop_grace_period).
    _act("stop", [_shown(container)], lambda api: api.stop(_id(container), timeout=timeout))


def start(container: ContainerRef) -> None:
    _act("start", [_shown(container)], lambda api: api.start(_id(container)))


def restart(container: ContainerRef, timeout: int | None = None) -> None:
    # None: the SDK's default (10 s), as before.
    kwargs = {} if timeout is None else {"timeout": timeout}
    _act("restart", [_shown(container)], lambda api: api.restart(_id(container), **kwargs))


def pause(container: ContainerRef) -> None:
    _act("pause", [_shown(container)], lambda api: api.pause(_id(container)))


def unpause(container: ContainerRef) -> None:
    _act("unpause", [_shown(container)], lambda api: api.unpause(_id(container)))


def disconnect(network: Network, container: ContainerRef) -> None:
    _act("network", ["disconnect", network.name, _shown(container)],
         lambda api: api.disconnect_container_from_network(_id(container), network.id))


def connect(network: Network, container: ContainerRef, aliases: Sequence[str]) -> None:
    # Compose gave the node an alias; without it the other nodes cannot resolve it.
    _act("network", ["connect", network.name, _shown(container)],
         lambda api: api.connect_container_to_network(_id(container), network.id,
                                                      aliases=list(aliases)))


def remove_container(container: ContainerRef) -> None:
    with engine_call("rm", "--force", _shown(container), missing_ok=True):
        _client().api.remove_container(_id(container), force=True, v=True)


def remove_network(network: Network) -> None:
    with engine_call("network", "rm", network.name, missing_ok=True):
        _client().api.remove_network(network.id)


def remove_volume(volume: Volume) -> None:
    with engine_call("volume", "rm", volume.name, missing_ok=True):
        _client().api.remove_volume(volume.name, force=True)


# -- images ---------------------------------------------------------------------------


def image(ref: str) -> Image | None:
    """The image ``ref`` on this engine, or None if it is not here."""
    with engine_call("image", "inspect", ref, missing_ok=True):
        return Image.from_attrs(_client().api.inspect_image(ref))
    return None


def image_present(ref: str) -> bool:
    return image(ref) is not None


def images(repository: str) -> list[Image]:
    """Every image of ``repository`` (any tag) on this engine."""
    with engine_call("image", "ls", repository):
        rows = _client().api.images(name=repository)
    # The listing's rows carry all we show; no inspect per image.
    return [Image(str(row.get("Id", "")), tuple(str(t) for t in row.get("RepoTags") or ()),
                  {str(k): str(v) for k, v in (row.get("Labels") or {}).items()},
                  int(row.get("Size", 0) or 0), _rfc3339(row.get("Created")))
            for row in rows]


def _rfc3339(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return str(epoch or "")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def remove_image(ref: str) -> bool:
    """Untag/remove ``ref``; False when the engine refuses (a container still uses it)."""
    try:
        with engine_call("rmi", ref):
            # Without force, the engine refuses to remove an image a container uses.
            _client().api.remove_image(ref)
    except EngineError:  # 409 (in use), 404 (gone meanwhile)
        return False
    return True


class PullProgress:
    """What a pull has done so far, from the engine's progress events (one per layer step):
    bytes downloaded of the layers' sizes and layers finished, as one short line."""

    def __init__(self) -> None:
        self.sizes: dict[str, tuple[int, int]] = {}  # layer id -> (downloaded, total)
        self.done: set[str] = set()
        self.layers: set[str] = set()

    def feed(self, event: Mapping[str, Any]) -> str:
        layer = str(event.get("id") or "")
        status = str(event.get("status") or "")
        if layer and not status.startswith("Pulling from"):  # that one's id is the tag
            self.layers.add(layer)
            detail = event.get("progressDetail") or {}
            if status == "Downloading" and detail.get("total"):
                self.sizes[layer] = (int(detail.get("current") or 0), int(detail["total"]))
            elif status in ("Download complete", "Pull complete", "Already exists"):
                self.done.add(layer)
                if layer in self.sizes:
                    self.sizes[layer] = (self.sizes[layer][1], self.sizes[layer][1])
        return self.line()

    def line(self) -> str:
        got = sum(c for c, _ in self.sizes.values())
        total = sum(t for _, t in self.sizes.values())
        size = f"{got / 1e9:.2f} of {total / 1e9:.2f} GB, " if total else ""
        return f"{size}{len(self.done)}/{len(self.layers)} layers"


def pull(ref: str, progress: Callable[[str], None] | None = None) -> None:
    """Pull ``ref`` from its registry (EngineError with the registry's answer if it fails);
    ``progress`` is told what is done so far (a multi-GB Omnibus pull takes minutes)."""
    repository, _, tag = ref.rpartition(":")
    if not repository or "/" in tag:  # no tag: a registry port, not a tag, follows ":"
        repository, tag = ref, "latest"
    counted = PullProgress()
    with engine_call("pull", ref):  # ImageNotFound, APIError, connection errors
        for event in _client().api.pull(repository, tag=tag, stream=True, decode=True):
            if event.get("error"):
                raise EngineError(["pull", ref], -1, str(event["error"]))
            if progress is not None:
                progress(counted.feed(event))


def import_image(tarball: Path, ref: str, changes: Sequence[str]) -> None:
    """`docker import`: a root file system tarball as image ``ref``, with Dockerfile ``changes``."""
    repository, _, tag = ref.rpartition(":")
    with engine_call("import", str(tarball), ref):
        _client().api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                            changes=list(changes))


def build_image(context: Path, ref: str, *, labels: Mapping[str, str],
                buildargs: Mapping[str, str]) -> None:
    """Build ``context`` (a Dockerfile folder) as ``ref`` with the classic builder.

    The Engine API builds with the classic builder unless asked for BuildKit, so
    nothing is pulled for a frontend; intermediate containers go even on failure.
    """
    shown = ["build", "-t", ref, str(context)]
    log: list[str] = []
    with engine_call(*shown):
        for chunk in _client().api.build(path=str(context), tag=ref, labels=dict(labels),
                                        buildargs=dict(buildargs), rm=True, forcerm=True,
                                        decode=True):
            if "error" in chunk:
                raise EngineError(shown, 1, "".join(log[-20:]) + str(chunk["error"]))
            log.append(str(chunk.get("stream", "")))


def load_images(tarball: Path) -> list[str]:
    """`docker load`: the images in ``tarball`` (from `docker save`); the refs loaded."""
    loaded: list[str] = []
    with engine_call("load", str(tarball)), tarball.open("rb") as data:
        for chunk in _client().api.load_image(data):
            if "error" in chunk:
                raise EngineError(["load", str(tarball)], 1, str(chunk["error"]))
            text = str(chunk.get("stream", ""))
            for prefix in ("Loaded image:", "Loaded image ID:"):
                if text.startswith(prefix):
                    loaded.append(text[len(prefix):].strip())
    return loaded


def save_images(refs: Sequence[str], target: Path) -> None:
    """`docker save`: ``refs`` into one tarball at ``target`` (written as it streams)."""
    api = _client().api
    with engine_call("save", "-o", str(target), *refs):
        # GET /images/get?names=... is the multi-image export; docker-py wraps only the
        # single-image form (get_image), so its request helpers are used directly.
        res = api._get(api._url("/images/get"), params={"names": list(refs)}, stream=True)
        api._raise_for_status(res)
        with target.open("wb") as out:
            for chunk in res.iter_content(chunk_size=2 << 20):
                out.write(chunk)


# -- a container of our own ------------------------------------------------------------

def chown_tree(image: str, host_dir: str, uid: int, gid: int, labels: Mapping[str, str]) -> None:
    """Give ``host_dir`` (recursively) back to ``uid:gid`` from a throwaway root container.

    A rootful engine writes bind mounts as root (Omnibus chowns /etc/gitlab and
    leaves root-owned files in it); a non-root user can then neither re-render nor
    delete the folder. The lab's own image has ``chown``, so nothing is pulled.
    """
    shown = ["run", "--rm", image, "chown", "-R", f"{uid}:{gid}", host_dir]
    with engine_call(*shown):  # ImageNotFound, APIError
        # Not run(remove=True): docker-py then removes the container without its
        # anonymous volumes (the image declares three), which would be left dangling.
        container = _client().containers.create(
            image, ["-R", f"{uid}:{gid}", "/lab-dir"], entrypoint=["chown"], user="0",
            volumes={host_dir: {"bind": "/lab-dir", "mode": "rw"}}, labels=dict(labels),
            network_mode="none")
    try:
        with engine_call(*shown):
            container.start()
            code = int(container.wait().get("StatusCode", -1))
            if code != 0:
                out = container.logs(stdout=True, stderr=True).decode(errors="replace")
                raise EngineError(shown, code, out)
    finally:
        with contextlib.suppress(Exception):  # already gone: nothing is left to clean up
            container.remove(force=True, v=True)


_infos: dict[str, dict[str, Any]] = {}


def info() -> dict[str, Any]:
    """`docker info` of the engine (asked once per DOCKER_HOST: it does not change)."""
    key = os.environ.get("DOCKER_HOST", "")
    if key not in _infos:
        with engine_call("info"):
            _infos[key] = dict(_client().info())
    return _infos[key]
