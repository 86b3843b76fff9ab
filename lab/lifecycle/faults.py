"""Fault verbs: what each does to one node through the engine, and which verb undoes it.

The one table of them: ``RunningLab.act`` runs a verb, the scenario format takes its
step names (``stop: gitaly1``) and ``given.faults`` from here, and the runner undoes
a fault with the verb named here. A new verb is one entry in ``VERBS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lab.engine import docker as dk
from lab.engine.snapshots import Container, Network
from lab.errors import BadInput


@dataclass(frozen=True)
class NodeTarget:
    """What a verb acts on: one node's container, in its lab's network."""

    node: str
    container: Container | str  # a snapshot, or its id or name
    # A callable: only the network verbs look the network up.
    network: Callable[[], Network]


@dataclass(frozen=True)
class Verb:
    name: str
    run: Callable[[NodeTarget], None]  # the engine primitive it runs
    undo: str | None = None  # the verb that undoes it; None: it undoes another (a restore)
    # Whether the lab must be ready again before anything else runs on it.
    ready_after: bool = False

    @property
    def is_fault(self) -> bool:
        return self.undo is not None


VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("stop", lambda t: dk.stop(t.container), undo="start"),
    Verb("pause", lambda t: dk.pause(t.container), undo="unpause"),
    Verb("disconnect", lambda t: dk.disconnect(t.network(), t.container), undo="reconnect"),
    Verb("start", lambda t: dk.start(t.container), ready_after=True),
    Verb("unpause", lambda t: dk.unpause(t.container), ready_after=True),
    # Compose gave the node its name as an alias; without it no other node resolves it.
    Verb("reconnect", lambda t: dk.connect(t.network(), t.container, aliases=[t.node]),
         ready_after=True),
    Verb("restart", lambda t: dk.restart(t.container), ready_after=True),
)}


def faults(verbs: dict[str, Verb] = VERBS) -> tuple[str, ...]:
    """The verbs that injure a node (each has an undo)."""
    return tuple(name for name, v in verbs.items() if v.is_fault)


def verb(name: str, verbs: dict[str, Verb] = VERBS) -> Verb:
    try:
        return verbs[name]
    except KeyError:
        raise BadInput(f"unknown fault verb {name!r}; known: {', '.join(verbs)}") from None
