"""A lab's swarm resources found by label: services, secrets, configs (``lab.lifecycle.gc``).

A lab on a swarm also leaves services (the manager knows them all, on every machine)
and the secrets and configs its files travelled as. ``gc.sweep`` removes these with
the containers, networks and volumes it removes for every lab; on an engine in no
swarm (or a worker, which cannot list them) there are none to remove here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from lab.engine import swarm as sw
from lab.errors import EngineError

# After its services are gone, Swarm detaches their tasks from the overlay network a
# moment later; removing the network sooner says "has active endpoints".
SETTLE_SECONDS = 10.0
SETTLE_STEP = 0.2
# What lists a lab's swarm resources by label (each carries ``.labels``).
LISTERS = (sw.services, sw.objects)


def managed() -> bool:
    """Whether this engine can list swarm services (a manager)."""
    return sw.is_manager()


def remove_services(labels: Mapping[str, str], *, dry_run: bool = False) -> list[str]:
    found = sw.services(labels)
    if not dry_run:
        for svc in found:
            sw.remove_service(svc)
    return [f"service {s.name}" for s in found]


def remove_objects(labels: Mapping[str, str], *, dry_run: bool = False) -> list[str]:
    found = sw.objects(labels)
    if not dry_run:
        for obj in found:
            sw.remove_object(obj)
    return [f"{o.kind} {o.name}" for o in found]


def gone(still: Sequence[object], what: str) -> None:
    """Raise while ``still`` lists something (for ``settle`` to ask again)."""
    if still:
        raise EngineError([what, "ls"], 1, f"{len(still)} {what}(s) still listed after removal")


def settle(remove: Callable[[], None], *, sleep: Callable[[float], None] = time.sleep,
           now: Callable[[], float] = time.monotonic) -> None:
    """Run ``remove`` (of an overlay network, a volume, a task) until Swarm has let go.

    Only the engine's refusal is asked again; anything else (Docker gone, a bug) is
    raised at once, not after ``SETTLE_SECONDS`` of retries."""
    deadline = now() + SETTLE_SECONDS
    while True:
        try:
            remove()
            return
        except EngineError:
            if now() >= deadline:
                raise
            sleep(SETTLE_STEP)
