"""The lab pool: running labs by name, each in a known state, claimed across processes.

Scenarios that share a base lab share one running lab. ``get`` puts it into
the state a scenario asks for with ``LabHandle.apply`` (only changed nodes are
reconfigured in place or restarted); the next scenario applies its own target, so
going from one mutation to the next changes the touched nodes once instead of twice (a
revert is just another apply, and a lab handed to anyone is first put back
into the state they asked for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lab.errors import Incomplete, LabError
from lab.lifecycle.contract import LabHandle
from lab.model.topology import Lab

UpFn = Callable[[Lab], LabHandle]
#: One line of what the pool (or a run) is doing, for a spinner or a log.
Say = Callable[[str], None]

# None: each wait uses the lab's flavour default (lab.lifecycle.timeouts), the same as
# `lab up`, so a scenario never gives an Omnibus boot less time than `lab up` does.
READY_TIMEOUT: float | None = None


class Claim(Protocol):
    """Exclusive use of a lab name across processes (see ``lab.store.state.LabClaim``)."""

    def acquire(self, *, wait: bool) -> bool: ...

    def release(self) -> None: ...


ClaimFn = Callable[[str], Claim]


def lab_key(lab: Lab) -> str:
    """Labs with the same key are the same state of a running lab (its name aside)."""
    return repr((str(lab.version), lab.edition.value, lab.flavor.value, lab.nodes,
                 lab.gitaly_token, lab.image, lab.engine.value, lab.swarm))


def family_key(lab: Lab) -> str:
    """Labs with the same family key share one running lab: the pool turns it from one into
    the other with ``apply`` (its nodes, their settings, tokens: reconfigured, restarted or
    recreated, as an admin changes a deployment; a node installed the other way is created
    anew, ``lab.lifecycle.node_actions``), which costs a node or two where a boot costs
    every container. A lab of another topology, release, edition, flavour, image or
    engine boots; so does one of no named topology (a spec of its own)."""
    if not lab.topology:
        return lab_key(lab)
    return repr((lab.topology, str(lab.version), lab.edition.value, lab.flavor.value,
                 lab.image, lab.engine.value, lab.swarm))


def group_name(lab: Lab) -> str:
    """A stable lab name per group (a lab family) and state folder, so `--keep` labs are
    found again by the next run, and two state folders (users, checkouts) never share a lab
    on one engine."""
    import hashlib

    from lab.store.state import labs_dir

    digest = hashlib.sha256(f"{family_key(lab)}\0{labs_dir()}".encode()).hexdigest()[:6]
    return f"sc-{lab.topology or 'custom'}-{lab.flavor.value}-{digest}"


def default_up(lab: Lab) -> LabHandle:
    # Imported late: the engine is only needed to boot.
    from lab.errors import LabAlreadyUp
    from lab.lifecycle.handle import attach, up

    try:
        # The run's own lab: `lab gc` removes it, folder and all, if the run dies with it.
        handle: LabHandle = up(lab, name=lab.name, timeout=READY_TIMEOUT, for_run=True)
    except LabAlreadyUp:
        # Left up by an earlier `--keep` run: the name encodes the lab, so reuse it.
        handle = attach(lab.name)
        # apply waits when it restarted something; otherwise the lab may still be starting.
        if not handle.apply(lab, timeout=READY_TIMEOUT):
            handle.wait_ready(timeout=READY_TIMEOUT)
    return handle


def wait_gitaly(base: Lab, target: Lab) -> bool:
    """Whether readiness may include the app's Gitaly check in state ``target``.

    A mutated lab is often meant to be broken between app and Gitaly (token, TLS
    trust): waiting for that check would time out.
    """
    return lab_key(target) == lab_key(base)


class LabPool:
    """Running labs by name, each in a known state; a context manager that downs them.

    ``max_labs`` bounds how many stay up at once (Omnibus nodes need 4+ GB).
    ``leave_at_base``: instead of downing a lab, put it back into its base state
    and leave it up (`--keep`), for the next run to reuse. ``borrowed``: the labs are
    not the pool's (`lab run --lab NAME`, ``up`` hands out a running lab): they are put
    back into their base state and never downed, not even when their state is unknown.
    A lab the pool downs goes with its folder (the pool made it for itself); ``on_kept``
    is told the name of each lab left up on purpose (``lab.store.ownership.keep_lab``).
    """

    def __init__(self, *, leave_at_base: bool = False, up: UpFn = default_up,
                 max_labs: int = 1, say: Say | None = None,
                 claim: ClaimFn | None = None, borrowed: bool = False,
                 on_kept: Callable[[str], None] | None = None) -> None:
        self.borrowed = borrowed
        self._on_kept = on_kept
        self.leave_at_base = leave_at_base or borrowed
        self._up = up
        self.max_labs = max_labs
        self._say_to = say
        # Real labs are claimed so that two runs never share one; fakes in tests need not.
        self._claim = claim
        self._claims: dict[str, Claim] = {}
        # name -> (lab, base, current state; None: unknown, so the next use re-applies)
        self._labs: dict[str, tuple[LabHandle, Lab, Lab | None]] = {}

    def __enter__(self) -> LabPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, text: str) -> None:
        if self._say_to:
            self._say_to(text)

    def get(self, base: Lab, target: Lab | None = None) -> LabHandle:
        """A running lab for ``base``, put into the state ``target`` (default: ``base``): the
        lab of its family (``family_key``) that runs already, or a new one booted as
        ``base``. A lab keeps the base it booted as (``release`` with ``leave_at_base``
        puts it back there)."""
        target = target or base
        entry = self._labs.get(base.name)
        if entry is not None and family_key(entry[1]) != family_key(base):
            self.release(base.name)  # same name, another family: not reusable
            entry = None
        if entry is None:
            while len(self._labs) >= self.max_labs:
                self.release(next(iter(self._labs)))
            self._take(base.name)
            self._say(f"booting lab {base.name}")
            try:
                running = self._up(base)
            except BaseException:
                self._let_go(base.name)
                raise
            # What ``up`` booted (a caller's ``up`` may boot the target state directly).
            entry = (running, base, running.lab)
            self._labs[base.name] = entry
        running, _, current = entry
        if current is None or lab_key(current) != lab_key(target):
            self._say(f"applying changes to lab {base.name}")
            # Recorded as unknown first: if apply fails half-way, the next get re-applies.
            self._labs[base.name] = (running, base, None)
            # A scenario needs the nodes serving, not Docker's first health check (5 s later).
            running.apply(target, timeout=READY_TIMEOUT, wait_gitaly=wait_gitaly(base, target),
                          docker_health=False)
            self._labs[base.name] = (running, base, target)
        return running

    def release(self, name: str) -> None:
        """Down a lab (or, with ``leave_at_base``, put it back to its base state and leave it)."""
        entry = self._labs.pop(name, None)
        if entry is None:
            return
        running, base, current = entry
        try:
            if self.leave_at_base:
                if current is None or lab_key(current) != lab_key(base):
                    running.apply(base, timeout=READY_TIMEOUT)
                if self._on_kept is not None and not self.borrowed:
                    self._on_kept(name)
                self._say(f"kept lab {name} ({running.path})")
                return
            self._say(f"removing lab {name}")
            running.down(purge=True)
        finally:
            self._let_go(name)

    def discard(self, name: str) -> None:
        """Down a lab whose state is unknown, whatever ``leave_at_base`` says (a borrowed
        lab is put back into its base state instead: it is someone's own lab)."""
        entry = self._labs.pop(name, None)
        try:
            if entry is not None and self.borrowed:
                try:
                    entry[0].apply(entry[1], timeout=READY_TIMEOUT)
                except LabError as exc:
                    raise Incomplete(f"could not put lab {name} back into the state it had "
                                     f"before the run: {exc}; `lab down {name}` and `lab up` "
                                     "start it afresh") from None
            elif entry is not None:
                entry[0].down(purge=True)
        finally:
            self._let_go(name)

    def _take(self, name: str) -> None:
        if self._claim is None:
            return
        claim = self._claim(name)
        if not claim.acquire(wait=False):
            # Never hold a lab while waiting for another: two runs (or pytest-xdist
            # workers) each holding what the other waits for would wait forever.
            for held in list(self._labs):
                self.release(held)
            self._say(f"waiting: another run is using lab {name}")
            claim.acquire(wait=True)
        self._claims[name] = claim

    def _let_go(self, name: str) -> None:
        claim = self._claims.pop(name, None)
        if claim is not None:
            claim.release()

    def names(self) -> list[str]:
        return list(self._labs)

    def running(self, name: str) -> LabHandle | None:
        """The lab called ``name`` as it is now (whatever state), if this pool has it."""
        entry = self._labs.get(name)
        return None if entry is None else entry[0]

    def close(self) -> None:
        errors: list[str] = []
        for name in list(self._labs):
            try:
                self.release(name)
            except LabError as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            raise Incomplete("could not clean up labs:\n" + "\n".join(errors))
