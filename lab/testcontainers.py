"""gitlab-testlab for testcontainers users: a Gitaly node and a whole lab in a ``with`` block.

``GitalyContainer`` is a testcontainers container running a Gitaly-only node
(sim or Omnibus image) configured by the toolkit's own renderer, so its
gitlab.rb is the one `lab render` writes for that version. It is ready when
``ServerInfo`` answers with its token; it then hands out its address, token and
(with TLS) the CA to trust. ``LabCompose`` is a whole lab (`lab up`) with the
interface of testcontainers' ``DockerCompose`` (``start``/``stop``,
``get_service_host``/``get_service_port``, ``get_container``,
``exec_in_container``), for any Compose tool, v1 included.

Ryuk, testcontainers' reaper, is an image from a registry: where it is not on
the engine already it is switched off (never pulled), and leftovers of a killed
run carry the toolkit's labels, which ``lab gc`` sweeps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from lab.client.gitaly import GitalyError, ServerInfo, server_info
from lab.client.gitlab import GitLab
from lab.engine import docker as dk
from lab.engine.images import image_for
from lab.engine.snapshots import Container
from lab.errors import BadInput, ImageMissing, LabError, NotReady
from lab.lifecycle.handle import RunningLab, up
from lab.lifecycle.timeouts import WAITS
from lab.model.labels import HOME_LABEL
from lab.model.topology import Lab
from lab.omnibus.release import VERSION_ENV
from lab.render.compose_file import labels
from lab.render.secrets import ensure_secrets
from lab.spec.labspec import SpecRequest, resolve
from lab.store import ownership, state
from lab.store.labdir import node_paths, render_files
from lab.store.layout import MANIFEST, write_file

RYUK_ENV = "TESTCONTAINERS_RYUK_DISABLED"
LOOPBACK = "127.0.0.1"  # where every published lab port binds
NODE = "gitaly1"


def ryuk_usable(image_present: Callable[[str], bool] = dk.image_present,
                env: dict[str, str] | None = None) -> bool:
    """Whether to let testcontainers start Ryuk: the user said so, or its image is here.

    Without the image testcontainers would pull it from a registry, which fails
    (or leaks traffic) on an air-gapped host, so Ryuk is off unless it is local.
    """
    env = dict(os.environ) if env is None else env
    said = env.get(RYUK_ENV, "").strip().lower()
    if said:
        return said not in ("1", "true", "yes", "on")
    return image_present(testcontainers_config.ryuk_image)


def configure_ryuk() -> bool:
    """Switch Ryuk off where it can't run; True if it stays on."""
    usable = ryuk_usable()
    if not usable:
        testcontainers_config.ryuk_disabled = True
    return usable


class GitalyContainer(DockerContainer):
    """A Gitaly-only node in a container, configured as `lab render` would.

    >>> with GitalyContainer(tls=True) as gitaly:          # doctest: +SKIP
    ...     info = gitaly.server_info()
    ...     print(gitaly.address, info.storage_statuses[0].storage_name)

    ``flavor`` is ``sim`` (the offline image, built if missing) or ``omnibus``
    (``gitlab/gitlab-ce:<version>-ce.0``, which must be on the engine: it is never
    pulled). ``prepare`` may edit the node's /etc/gitlab folder before it starts.
    The node calls back an app node named ``gitlab`` that does not exist here, so
    RPCs that need GitLab's internal API (push hooks) fail; ServerInfo, repository
    creation and reads work.
    """

    def __init__(self, image: str | None = None, *, flavor: str = "sim",
                 version: str | None = None, tls: bool = False,
                 storages: Sequence[str] = ("default",), token: str | None = None,
                 timeout: float | None = None,
                 prepare: Callable[[Path], None] | None = None, **kwargs: Any) -> None:
        sets = [f"nodes.{NODE}.storages=[{', '.join(storages)}]", f"tls={str(tls).lower()}"]
        if token is not None:
            sets.append(f"gitaly_token={token}")
        self.lab: Lab = resolve(SpecRequest(topology="scaled", flavor=flavor, version=version,
                                            sets=tuple(sets),
                                            name=f"tc-{uuid.uuid4().hex[:8]}"))
        self._explicit_image = image
        super().__init__(image or "gitlab-testlab/unresolved", **kwargs)
        self.tls = tls
        self._secrets = ensure_secrets(self.lab, None)
        self.token: str = self._secrets.gitaly_token
        self.ca_pem: bytes | None = self._secrets.tls["ca.crt"].encode() if tls else None
        # The certificate names the node: clients must ask for it by that name.
        self.server_name = NODE
        self.timeout = timeout if timeout is not None else WAITS[self.lab.flavor].gitaly_node
        self.info: ServerInfo | None = None
        # Edits the node's /etc/gitlab folder before the container starts (a broken file).
        self.prepare = prepare
        self._etc: Path | None = None
        self._root: Path | None = None

    @property
    def node(self) -> Any:
        return self.lab.node(NODE)

    @property
    def port(self) -> int:
        return int(self.node.gitaly_port)

    @property
    def address(self) -> str:
        """``tcp://127.0.0.1:<port>`` or ``tls://…``, for ``lab.client.gitaly`` or any client."""
        scheme = "tls" if self.tls else "tcp"
        return f"{scheme}://{self.get_container_host_ip()}:{self.get_exposed_port(self.port)}"

    def get_container_host_ip(self) -> str:
        """Always loopback: the port is published on 127.0.0.1 only, as every lab port.
        (testcontainers' own answer, the bridge gateway when run inside a container or
        the Docker host's name, would not reach it.)"""
        return LOOPBACK

    def get_exposed_port(self, port: int) -> int:
        """The host port ``port`` is published on (on 127.0.0.1)."""
        container = self._inspect()
        host_ip, _, host_port = container.ports.get(f"{port}/tcp", "").rpartition(":")
        if host_ip != LOOPBACK or not host_port:
            raise BadInput(f"port {port} of the Gitaly node is not published on {LOOPBACK} "
                           f"(container {container.status}; Gitaly listens on {self.port})")
        return int(host_port)

    def _inspect(self) -> Container:
        """The container as the engine sees it now (lab.engine's snapshot, not the SDK's)."""
        return dk.inspect(self.get_wrapped_container().id)

    def server_info(self, timeout: float = 5) -> ServerInfo:
        return server_info(self.address, self.token, ca_pem=self.ca_pem,
                           server_name_override=self.server_name, timeout=timeout)

    def _image(self) -> str:
        if self._explicit_image:
            ref = self._explicit_image
        elif self.lab.flavor.value == "sim":
            from lab.engine.images import build_images

            return build_images()
        else:
            ref = image_for(self.lab)
        if not dk.image_present(ref):
            raise ImageMissing(f"image {ref} is not on this engine (it is never pulled here): "
                               f"`lab images load FILE.tar` (made with `lab images save {ref}` "
                               "on a connected host), or use flavor='sim'")
        return ref

    def _write_config(self, image: str) -> Path:
        """A lab folder holding this node's files and the manifest; returns the node's folder.

        The folder is what the containers' folder label names. Its up-marker carries
        this process's id, so `lab gc` leaves the node alone while we live and sweeps
        it after a killed run (Ryuk's job, where Ryuk can't run).
        """
        root = Path(tempfile.mkdtemp(prefix="lab-gitaly-"))
        self._root = root
        wanted = (node_paths(NODE).dir + "/", MANIFEST)
        for f in render_files(self.lab, self._secrets, image, str(root)):
            if f.path.startswith(wanted):
                write_file(root / f.path, f.content, f.mode)
        state.write_up_marker(root)
        etc = root / node_paths(NODE).dir
        for sub in ("", "trusted-certs", "ssl"):
            if (etc / sub).is_dir():
                os.chmod(etc / sub, 0o755)  # Gitaly runs as `git` inside
        return etc

    def start(self) -> GitalyContainer:
        configure_ryuk()
        image = self._image()
        self.image = image
        self._etc = self._write_config(image)
        if self.prepare is not None:
            self.prepare(self._etc)
        # The state folder's id: plain `lab gc` (not only --all) counts the node as its own.
        owner = {HOME_LABEL: home} if (home := ownership.home_id()) else {}
        mine = labels(self.lab, str(self._root), self.node, owner)
        extra = dict(self._kwargs)
        self._kwargs = {"hostname": NODE, "shm_size": "256m", **extra,
                        "labels": {**mine, **(extra.get("labels") or {})}}
        self.with_volume_mapping(str(self._etc), "/etc/gitlab", "rw")
        # The release the node plays, as the lab's compose file tells every node: without it
        # the sim plays the newest release whatever ``version`` rendered its gitlab.rb.
        self.with_env(VERSION_ENV, str(self.lab.version))
        # Loopback only, as every published lab port: never reachable from the network.
        # (docker-py takes a one-element tuple as "this host address, any free port").
        cast(dict[str, Any], self.ports)[str(self.port)] = (LOOPBACK,)
        try:
            super().start()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        last = "not started"
        while True:
            container = self._inspect()
            if container.status in ("exited", "dead"):
                raise NotReady(NODE, f"container {container.status}", self._log_tail(),
                               "the node's gitlab.rb or image is broken; see the log above")
            try:
                self.info = self.server_info(timeout=2)
                return
            except (GitalyError, LabError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise NotReady(NODE, f"ServerInfo: {last}", self._log_tail(),
                               f"Gitaly did not answer within {self.timeout:.0f}s")
            time.sleep(0.5)

    def _log_tail(self) -> str:
        with contextlib.suppress(Exception):
            return dk.log_tail(self.get_wrapped_container().id, 30)
        return ""

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        with contextlib.suppress(Exception):
            if self._container is not None:
                super().stop(force=force, delete_volume=delete_volume)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = self._etc = None


class LabCompose:
    """A whole lab (`lab up`) with the interface of testcontainers' ``DockerCompose``:
    ``start``/``stop``, ``get_service_host``/``get_service_port``/
    ``get_service_host_and_port``, ``get_container``/``get_containers``,
    ``exec_in_container``, ``get_logs`` and ``wait_for`` (what builds, pulls, env files
    and profiles are about does not apply: the toolkit renders the Compose file).

    >>> with LabCompose("scaled") as lab:                  # doctest: +SKIP
    ...     url = f"http://{lab.get_service_host('gitlab', 80)}:"
    ...           f"{lab.get_service_port('gitlab', 80)}"

    Works with Compose v2 or v1 (the toolkit's own engine, not testcontainers'
    compose module, which drives only the v2 plugin). ``stop`` removes the lab
    and its folder.
    """

    def __init__(self, topology: str | None = "scaled", *, spec_file: Path | None = None,
                 flavor: str = "sim", version: str | None = None, sets: Sequence[str] = (),
                 name: str | None = None, timeout: float | None = None) -> None:
        self.request = SpecRequest(topology=topology, file=spec_file, sets=tuple(sets),
                                   version=version, flavor=flavor)
        self.name = name or f"tc-{uuid.uuid4().hex[:8]}"
        self.timeout = timeout  # None: the flavour's own (lab.lifecycle.timeouts), as `lab up`
        self._running: RunningLab | None = None

    @property
    def running(self) -> RunningLab:
        if self._running is None:
            raise BadInput(f"lab {self.name!r} is not started; call start() or use `with`")
        return self._running

    def start(self) -> LabCompose:
        configure_ryuk()  # nothing here uses Ryuk; keeps mixed suites from pulling it
        self._running = up(resolve(self.request), name=self.name,
                                     timeout=self.timeout)
        return self

    def stop(self, down: bool = True) -> None:
        if self._running is not None and down:
            self._running.down(purge=True)
            self._running = None

    def __enter__(self) -> LabCompose:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def get_container(self, service_name: str) -> Container:
        """The node's container as the toolkit sees it (id, name, state, ports, address)."""
        return self.running.container(service_name)

    def get_containers(self, include_all: bool = False) -> list[Container]:
        """Every node's container that runs (``include_all``: also stopped or paused ones)."""
        out = []
        for node in self.running.lab.nodes:
            try:
                container = self.running.container(node.name)
            except LabError:  # removed by hand: not there to list
                continue
            if include_all or container.status == "running":
                out.append(container)
        return out

    def get_service_host(self, service_name: str | None = None, port: int | None = None) -> str:
        return LOOPBACK  # every published lab port binds to loopback

    def get_service_host_and_port(self, service_name: str, port: int) -> tuple[str, int]:
        return self.get_service_host(service_name, port), self.get_service_port(service_name,
                                                                                port)

    def get_service_port(self, service_name: str, port: int) -> int:
        bound = self.get_container(service_name).published_port(port)
        if bound is None:
            raise BadInput(f"node {service_name!r} publishes no port {port}; add `publish:` to "
                           "it in the spec (e.g. sets=['nodes.gitaly1.publish.gitaly=0'])")
        return bound

    def exec_in_container(self, command: list[str], service_name: str) -> tuple[str, str, int]:
        res = self.running.exec(service_name, command, check=False)
        return res.stdout, res.stderr, res.returncode

    def get_logs(self, *services: str, tail: int = 1000) -> tuple[str, str]:
        """(stdout, stderr) as DockerCompose gives them: each node's container log (secrets
        redacted), every line prefixed with ``NODE | ``, as Compose does; every node when
        ``services`` is empty. stderr is empty: the log already holds both streams."""
        names = services or tuple(n.name for n in self.running.lab.nodes)
        lines = [f"{name} | {line}" for name in names
                 for line in self.running.logs(name, tail=tail).splitlines()]
        return "".join(line + "\n" for line in lines), ""

    def wait_for(self, url: str, timeout: float = 120,
                 headers: dict[str, str] | None = None) -> LabCompose:
        """Wait until ``url`` answers with a status below 400 (as DockerCompose.wait_for);
        ``headers``, e.g. ``{"PRIVATE-TOKEN": lab.admin_token}`` for the API."""
        import requests

        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                answer = requests.get(url, timeout=2, headers=headers)
                if answer.status_code < 400:
                    return self
                last = f"HTTP {answer.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() > deadline:
                raise NotReady(url, last, "", f"{url} did not answer within {timeout:.0f}s")
            time.sleep(1)

    @property
    def client(self) -> GitLab:
        """The lab's GitLab client (``.api``, ``.git``) as its admin."""
        return self.running.client

    @property
    def http_url(self) -> str:
        return self.running.http_url

    @property
    def admin_token(self) -> str:
        return self.running.admin_token
