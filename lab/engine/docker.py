"""The Docker Engine through its Python SDK: inspect, exec, logs, labels, faults.

Compose starts and removes labs (``lab.engine.compose``); everything that reads
a running lab or injures one on purpose goes through here. The SDK is untyped,
so its objects are ``Any`` and get translated to small dataclasses at this edge.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.engine.run import Result, redactor
from lab.errors import DockerUnavailable, EngineError

# Long enough for `gitlab-ctl reconfigure` run through exec; a hung engine is
# caught by the short ping first.
API_TIMEOUT = 3600
PING_TIMEOUT = 15
EXEC_TIMED_OUT = 124  # coreutils `timeout`

_clients: dict[str, Any] = {}


def _unavailable(exc: BaseException) -> DockerUnavailable:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return DockerUnavailable(
        f"Docker is not reachable at {host} ({exc}); start it (systemctl start docker) "
        "or set DOCKER_HOST to a reachable engine")


def client() -> Any:
    """A connected SDK client (one per DOCKER_HOST); DockerUnavailable if there is none."""
    import docker

    key = os.environ.get("DOCKER_HOST", "")
    if key in _clients:
        return _clients[key]
    try:
        cl = docker.from_env(timeout=PING_TIMEOUT)
        cl.ping()
    except Exception as exc:  # the SDK raises DockerException or raw requests/OS errors
        raise _unavailable(exc) from exc
    cl.api.timeout = API_TIMEOUT
    _clients[key] = cl
    return cl


def label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}


def containers(labels: Mapping[str, str]) -> list[Any]:
    # ignore_removed: another process may remove a container between list and inspect.
    return list(client().containers.list(all=True, filters=label_filters(labels),
                                         ignore_removed=True))


def networks(labels: Mapping[str, str]) -> list[Any]:
    return list(client().networks.list(filters=label_filters(labels)))


def volumes(labels: Mapping[str, str]) -> list[Any]:
    return list(client().volumes.list(filters=label_filters(labels)))


@dataclass(frozen=True)
class ContainerState:
    status: str  # created, running, paused, restarting, exited, dead
    exit_code: int
    health: str  # healthy, unhealthy, starting, or "" without a healthcheck
    oom_killed: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def gone(self) -> bool:
        """The container stopped on its own and will not come back (restart: no)."""
        return self.status in ("exited", "dead")


def state(container: Any, *, reload: bool = True) -> ContainerState:
    """The container's state, inspected afresh unless ``reload`` is False.

    ``containers()`` inspects each container it returns, so a just-listed object
    is already fresh and needs no second inspect.
    """
    if reload:
        try:
            container.reload()
        except Exception as exc:  # NotFound (removed meanwhile), APIError, connection errors
            raise _engine_error(exc, ["inspect", container.name]) from exc
    st = container.attrs.get("State", {})
    return ContainerState(
        status=str(st.get("Status", "")),
        exit_code=int(st.get("ExitCode", 0) or 0),
        health=str((st.get("Health") or {}).get("Status", "")),
        oom_killed=bool(st.get("OOMKilled", False)),
    )


def published_ports(container: Any) -> dict[str, str]:
    """'80/tcp' -> '127.0.0.1:49153' for every published port."""
    out: dict[str, str] = {}
    for port, binds in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).items():
        for b in binds or ():
            out[port] = f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}"
            break
    return out


def published_port(container: Any, port: int) -> int | None:
    addr = published_ports(container).get(f"{port}/tcp")
    return int(addr.rsplit(":", 1)[1]) if addr else None


def ip_address(container: Any) -> str | None:
    for net in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
        if net.get("IPAddress"):
            return str(net["IPAddress"])
    return None


def exec_in(container: Any, cmd: Sequence[str], *, check: bool = True,
            timeout: float | None = None, user: str = "") -> Result:
    """Run ``cmd`` in the container (no shell added); stdout and stderr kept apart."""
    argv = [str(c) for c in cmd]
    run_argv = argv
    if timeout is not None:
        # The engine cannot time out an exec, so the container's own `timeout` does.
        run_argv = ["timeout", "-k", "5", str(max(1, int(timeout))), *argv]
    shown = [redactor(a) for a in argv]
    try:
        code, (out, err) = container.exec_run(run_argv, demux=True, user=user)
    except Exception as exc:
        raise _engine_error(exc, ["exec", container.name, *shown]) from exc
    stdout = (out or b"").decode(errors="replace")
    stderr = (err or b"").decode(errors="replace")
    if timeout is not None and code == EXEC_TIMED_OUT:
        raise EngineError(["exec", container.name, *shown], code,
                          f"timed out after {timeout:g}s")
    if check and code != 0:
        raise EngineError(["exec", container.name, *shown], code, redactor(stderr or stdout))
    return Result(argv, int(code if code is not None else -1), stdout, stderr)


def _engine_error(exc: Exception, what: Sequence[str]) -> EngineError:
    return EngineError(list(what), -1, redactor(str(exc)))


_SINCE_RE = re.compile(r"^(\d+)([smhd])$")


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


def logs(container: Any, *, tail: int | None = 200, since: str | None = None,
         timestamps: bool = False) -> str:
    kwargs: dict[str, Any] = {"tail": "all" if tail is None else tail, "timestamps": timestamps}
    if since:
        kwargs["since"] = since_timestamp(since)
    try:
        data = container.logs(stdout=True, stderr=True, **kwargs)
    except Exception as exc:
        raise _engine_error(exc, ["logs", container.name]) from exc
    return redactor(bytes(data).decode(errors="replace"))


def follow_logs(container: Any, *, tail: int | None = 200,
                since: str | None = None) -> Iterator[str]:
    """Log lines as they come (redacted); ends when the container stops."""
    kwargs: dict[str, Any] = {"tail": "all" if tail is None else tail}
    if since:
        kwargs["since"] = since_timestamp(since)
    buf = b""
    # Whole lines only, so a secret split across two chunks is still redacted.
    for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True, **kwargs):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield redactor(line.decode(errors="replace"))
    if buf:
        yield redactor(buf.decode(errors="replace"))


def log_tail(container: Any, lines: int = 40) -> str:
    """The last lines of a container's log, or why they could not be read."""
    try:
        return logs(container, tail=lines)
    except EngineError as exc:
        return f"(logs unavailable: {exc.stderr})"


def _act(container: Any, what: str, **kwargs: Any) -> None:
    try:
        getattr(container, what)(**kwargs)
    except Exception as exc:
        raise _engine_error(exc, [what, container.name]) from exc


def stop(container: Any, timeout: int | None = None) -> None:
    # None: the container's own stop timeout (compose's stop_grace_period).
    _act(container, "stop", **({} if timeout is None else {"timeout": timeout}))


def start(container: Any) -> None:
    _act(container, "start")


def restart(container: Any, timeout: int | None = None) -> None:
    # None: the container's own stop timeout (compose's stop_grace_period).
    _act(container, "restart", **({} if timeout is None else {"timeout": timeout}))


def pause(container: Any) -> None:
    _act(container, "pause")


def unpause(container: Any) -> None:
    _act(container, "unpause")


def disconnect(network: Any, container: Any) -> None:
    try:
        network.disconnect(container)
    except Exception as exc:
        raise _engine_error(exc, ["network", "disconnect", network.name, container.name]) from exc


def connect(network: Any, container: Any, aliases: Sequence[str]) -> None:
    # Compose gave the node an alias; without it the other nodes cannot resolve it.
    try:
        network.connect(container, aliases=list(aliases))
    except Exception as exc:
        raise _engine_error(exc, ["network", "connect", network.name, container.name]) from exc


def remove_container(container: Any) -> None:
    try:
        container.remove(force=True, v=True)
    except Exception as exc:
        if getattr(exc, "status_code", None) != 404:
            raise _engine_error(exc, ["rm", "--force", container.name]) from exc


def remove_network(network: Any) -> None:
    try:
        network.remove()
    except Exception as exc:
        if getattr(exc, "status_code", None) != 404:
            raise _engine_error(exc, ["network", "rm", network.name]) from exc


def remove_volume(volume: Any) -> None:
    try:
        volume.remove(force=True)
    except Exception as exc:
        if getattr(exc, "status_code", None) != 404:
            raise _engine_error(exc, ["volume", "rm", volume.name]) from exc


def image_present(ref: str) -> bool:
    import docker

    try:
        client().images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def memory_usage(container: Any) -> int:
    """Bytes of memory in use (as `docker stats` counts it, minus page cache)."""
    stats = container.stats(stream=False)
    mem = stats.get("memory_stats", {})
    usage = int(mem.get("usage", 0))
    inner = mem.get("stats", {})
    cache = int(inner.get("inactive_file", inner.get("total_inactive_file", 0)))
    return max(0, usage - cache)


def chown_tree(image: str, host_dir: str, uid: int, gid: int, labels: Mapping[str, str]) -> None:
    """Give ``host_dir`` (recursively) back to ``uid:gid`` from a throwaway root container.

    A rootful engine writes bind mounts as root (Omnibus chowns /etc/gitlab and
    leaves root-owned files in it); a non-root user can then neither re-render nor
    delete the folder. The lab's own image has ``chown``, so nothing is pulled.
    """
    shown = ["run", "--rm", image, "chown", "-R", f"{uid}:{gid}", host_dir]
    try:
        # Not run(remove=True): docker-py then removes the container without its
        # anonymous volumes (the image declares three), which would be left dangling.
        container = client().containers.create(
            image, ["-R", f"{uid}:{gid}", "/lab-dir"], entrypoint=["chown"], user="0",
            volumes={host_dir: {"bind": "/lab-dir", "mode": "rw"}}, labels=dict(labels),
            network_mode="none")
    except Exception as exc:  # ImageNotFound, APIError
        raise _engine_error(exc, shown) from exc
    try:
        container.start()
        code = int(container.wait().get("StatusCode", -1))
        if code != 0:
            out = container.logs(stdout=True, stderr=True).decode(errors="replace")
            raise EngineError(shown, code, redactor(out))
    except EngineError:
        raise
    except Exception as exc:  # APIError
        raise _engine_error(exc, shown) from exc
    finally:
        with contextlib.suppress(Exception):  # already gone: nothing is left to clean up
            container.remove(force=True, v=True)


_infos: dict[str, dict[str, Any]] = {}


def info() -> dict[str, Any]:
    """`docker info` of the engine (asked once per DOCKER_HOST: it does not change)."""
    key = os.environ.get("DOCKER_HOST", "")
    if key not in _infos:
        try:
            _infos[key] = dict(client().info())
        except DockerUnavailable:
            raise
        except Exception as exc:
            raise _engine_error(exc, ["info"]) from exc
    return _infos[key]
