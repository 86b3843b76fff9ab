"""``LabHandle``: what the rooms above need of a running lab.

``lab.lifecycle.handle.RunningLab`` is the real one; scenario, support and the
pytest plugin take this protocol, so their tests can hand them a fake.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lab.engine.redaction import Redaction
from lab.engine.run import Result
from lab.engine.snapshots import Container
from lab.model.topology import Lab
from lab.store.labdir import RenderedLab

if TYPE_CHECKING:
    from lab.client.gitlab import GitLab


class LabHandle(Protocol):
    name: str
    path: Path
    lab: Lab
    rendered: RenderedLab
    redactor: Redaction  # knows the lab's secrets and the shapes of others

    @property
    def http_url(self) -> str: ...

    @property
    def admin_token(self) -> str: ...

    @property
    def client(self) -> GitLab:
        """The lab's GitLab client (``.api``, ``.git``) as its admin."""

    def exec(self, node: str, cmd: list[str], *, check: bool = ...,
             timeout: float | None = ...) -> Result: ...

    def logs(self, node: str, *, tail: int = ..., since: str | None = ...) -> str: ...

    def container(self, node: str) -> Container: ...

    def act(self, node: str, verb: str) -> None:
        """Run a fault verb of ``lab.lifecycle.faults`` on ``node``."""

    def apply(self, new_lab: Lab, *, timeout: float | None = ..., progress: Any = ...,
              wait_gitaly: bool = ..., docker_health: bool = ...) -> list[str]: ...

    def wait_ready(self, *, timeout: float | None = ..., progress: Any = ...,
                   wait_gitaly: bool = ..., docker_health: bool = ...,
                   services_of: Collection[str] | None = ...,
                   setup_of: Collection[str] | None = ...,
                   app_of: Collection[str] | None = ...) -> Any: ...

    def status(self) -> Any: ...  # LabStatus: .nodes[i].node / .state / .ports, .to_json()

    def down(self, *, purge: bool = ...) -> None: ...
