"""Labs' Docker resources found by label: sweep, gc, list; whose they are, who uses them.

Every resource a lab makes carries its labels (name, folder, owner ids); these
functions never touch a resource without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.engine import docker as dk
from lab.engine.snapshots import Container
from lab.errors import BadInput, LabBusy, LabError, LabOwnedElsewhere
from lab.lifecycle import swarm_sweep
from lab.model.labels import GATEWAY_LABEL
from lab.render.compose_file import DIR_LABEL, HOME_LABEL, ID_LABEL, LAB_LABEL
from lab.store import ownership, state
from lab.store.lab_folder import LabFolder
from lab.store.ownership import is_ours, lab_owner, started_here

if TYPE_CHECKING:
    # Imported in list_labs: `lab up` loads this module before Compose starts.
    from lab.lifecycle.status import LabSummary


def named(name: str) -> list[Sequence[Any]]:
    """Everything on this engine carrying the lab name ``name``, one list per kind in
    ``_kinds``' order: containers, networks, volumes (then a swarm manager's services,
    secrets and configs)."""
    return [kind({LAB_LABEL: name}) for kind in _kinds()]


def foreign_owners(name: str, path: Path,
                   found: Sequence[Sequence[Any]] | None = None) -> list[str]:
    """Folders of other labs called ``name`` on this engine (Compose projects are engine-wide).
    ``found``: what ``named(name)`` listed, if that was asked already."""
    owner = lab_owner(path)
    home = ownership.home_id(create=False)
    others: set[str] = set()
    for objs in named(name) if found is None else found:
        for obj in objs:
            lbl = obj.labels
            if not is_ours(lbl, path, owner, home):
                others.add(lbl.get(DIR_LABEL) or "(a folder it does not name)")
    return sorted(others)


def check_owner(name: str, path: Path) -> list[Sequence[Any]]:
    """LabOwnedElsewhere if a lab called ``name`` belongs to another folder; else what
    carries that name (``named``), for the caller to look through instead of asking again."""
    found = named(name)
    others = foreign_owners(name, path, found)
    if others:
        raise LabOwnedElsewhere(
            f"a lab named {name!r} on this Docker Engine belongs to another folder: "
            f"{', '.join(others)} (another state folder, user or container). Nothing was "
            f"touched. Pick another --name, or stop that lab from where it was started "
            f"(`lab down {name}` with its LAB_HOME)")
    return found


def check_not_in_use(name: str) -> None:
    """Refuse while another process starts the lab or a `lab run` holds it.

    Asked of the locks those processes hold (the kernel drops them when a process dies),
    not of the PID in an up-marker: a stale marker may name any process, PID 1 included
    (a run in a container, or a PID used again since)."""
    held = ownership.held_by(name)
    if held is not None:
        what, holder = held
        who = f"PID {holder}" if holder > 0 else "another process"
        raise LabBusy(f"lab {name!r} is in use by {what} ({who}); wait until it ends, or "
                      f"stop it (kill {holder if holder > 0 else 'PID'}), then try again")


def _kinds() -> tuple[Callable[[dict[str, str]], Sequence[Any]], ...]:
    """What carries a lab's labels on this engine: a swarm manager also lists services,
    secrets and configs (``lab.lifecycle.swarm_sweep``)."""
    plain = (dk.containers, dk.networks, dk.volumes)
    if swarm_sweep.managed():
        return (*plain, *swarm_sweep.LISTERS)
    return plain


def sweep(labels: dict[str, str], *, dry_run: bool = False) -> list[str]:
    """Remove every container, then (on a swarm manager) service, then network, then
    volume, then secret and config carrying ``labels``."""
    removed: list[str] = []
    found = dk.containers(labels)
    removed += [f"container {c.name}" for c in found]
    if found and not dry_run:
        # Concurrently: each removal waits for its container to die.
        with ThreadPoolExecutor(max_workers=len(found)) as pool:
            list(pool.map(dk.remove_container, found))
    # A swarm lab's tasks are gone now (none restarts: restart_policy none); its services
    # would otherwise keep the network, volumes, secrets and configs in use.
    swarm = swarm_sweep.managed()
    if swarm:
        removed += swarm_sweep.remove_services(labels, dry_run=dry_run)
    if swarm and not dry_run:
        # A task Swarm was still starting or stopping when the containers were listed (a
        # node scaled down or up just before) outlives that listing and holds its volumes.
        swarm_sweep.settle(functools.partial(_remove_left_tasks, labels, removed))
    for n in dk.networks(labels):
        removed.append(f"network {n.name}")
        if not dry_run:
            if swarm:
                swarm_sweep.settle(functools.partial(dk.remove_network, n))
            else:
                dk.remove_network(n)
    if swarm and not dry_run:
        # The manager removes a swarm network at once, this engine's copy a moment later.
        swarm_sweep.settle(lambda: swarm_sweep.gone(dk.networks(labels), "network"))
    for v in dk.volumes(labels):
        removed.append(f"volume {v.name}")
        if not dry_run:
            if swarm:
                swarm_sweep.settle(functools.partial(dk.remove_volume, v))
            else:
                dk.remove_volume(v)
    if swarm:
        removed += swarm_sweep.remove_objects(labels, dry_run=dry_run)
    return removed


def _remove_left_tasks(labels: dict[str, str], removed: list[str]) -> None:
    """Remove the containers still carrying ``labels``; raise while any is listed."""
    for c in dk.containers(labels):
        if f"container {c.name}" not in removed:
            removed.append(f"container {c.name}")
        dk.remove_container(c)
    swarm_sweep.gone(dk.containers(labels), "container")


def _described(path: Path) -> tuple[str, str, str, int]:
    """Flavour, version, topology and node count of the lab in ``path``: from its manifest,
    or (that file damaged or deleted by hand) from its saved spec."""
    m = LabFolder(path).manifest()
    if m is not None:
        return (str(m.get("flavor", "")), str(m.get("version", "")),
                str((m.get("spec") or {}).get("topology", "")), len(m.get("nodes", {})))
    try:
        lab = LabFolder(path).lab()
    except BadInput:
        return "", "", "", 0
    return lab.flavor.value, str(lab.version), lab.topology or "", len(lab.nodes)


def list_labs() -> list[LabSummary]:
    """Every lab in the state folder with how many of its containers run."""
    from lab.lifecycle.status import LabSummary

    names = state.lab_names()
    by_lab: dict[str, list[Container]] = {}
    docker_ok = True
    if names:
        try:
            for c in dk.containers({LAB_LABEL: ""}):
                if GATEWAY_LABEL in c.labels:
                    continue  # a swarm lab's gateway to the host: no node of the lab
                by_lab.setdefault(c.labels.get(DIR_LABEL, ""), []).append(c)
        except LabError:
            docker_ok = False
    out = []
    for name in names:
        path = state.lab_dir(name)
        flavor, version, topology, total = _described(path)
        cs = by_lab.get(str(path), [])
        running_n = sum(1 for c in cs if c.status == "running")
        if not docker_ok:
            st = "unknown"
        elif (verb := state.marker_verb(path)) is not None:
            st = "interrupted" if state.interrupted_up(path) else \
                "starting" if verb == "up" else "stopping"
        elif running_n and running_n >= total:
            st = "up"
        elif cs:
            st = "partial"
        else:
            st = "down"
        held = ownership.held_by(name)
        out.append(LabSummary(name, path, flavor, version, topology, total, running_n, st,
                              ownership.made_for(name),
                              f"{held[0]} (PID {held[1]})" if held else ""))
    return out


@dataclass(frozen=True)
class GcReport:
    removed: list[str]  # what went (or would go), each with its lab and why
    kept: list[str]  # the toolkit's own labs left alone, each with why


def _toolkit_labs(dry_run: bool) -> tuple[list[str], list[str], set[str]]:
    """Labs the toolkit made for itself (a run's, a start's) whose process is gone: their
    resources and folders. Returns what went, what was kept and why, and their folders."""
    removed: list[str] = []
    kept: list[str] = []
    done: set[str] = set()
    for name in state.lab_names():
        purpose = ownership.made_for(name)
        if purpose == ownership.FOR_YOU:
            continue
        if purpose == ownership.FOR_KEPT:
            kept.append(f"lab {name}: kept on purpose by `lab run --keep` (or pytest "
                        f"--lab-keep); `lab down {name} --purge` removes it")
            continue
        held = ownership.held_by(name)
        if held is not None:
            kept.append(f"lab {name}: in use by {held[0]} (PID {held[1]})")
            continue
        path = state.lab_dir(name)
        verb = state.marker_verb(path) if state.interrupted_up(path) else None
        why = (f"its `lab {verb}` was killed" if verb else
               "its `lab run` ended without removing it" if purpose == ownership.FOR_RUN
               else "its `lab up` did not finish")
        owner = lab_owner(path)
        home = ownership.home_id(create=False)
        which = ({LAB_LABEL: name, **owner} if ID_LABEL in owner else
                 {LAB_LABEL: name, DIR_LABEL: str(path), **({HOME_LABEL: home} if home else {})})
        removed += [f"{r} (lab {name}: {why})" for r in sweep(which, dry_run=dry_run)]
        done.add(str(path))
        if not dry_run:
            try:
                LabFolder(path).purge()
            except LabError as exc:
                kept.append(f"lab {name}: its folder could not be deleted: {exc}")
                continue
        removed.append(f"folder {path} (lab {name}: {why})")
    return removed, kept, done


def gc(*, dry_run: bool = False, all_folders: bool = False) -> list[str]:
    """What ``collect_garbage`` removed (or would remove)."""
    return collect_garbage(dry_run=dry_run, all_folders=all_folders).removed


def collect_garbage(*, dry_run: bool = False, all_folders: bool = False) -> GcReport:
    """Remove what no lab needs any more: labs the toolkit made for itself whose process is
    gone (resources and folder, see ``_toolkit_labs``), and labelled resources whose lab
    directory is gone or whose `lab up` or `lab down` was killed.

    Only labs started from this state folder count, unless ``all_folders``: a
    lab of another user or container may look orphaned from here while it runs.
    Only resources that also name their lab directory count: those come from a
    rendered lab; a resource with the lab label alone was made by hand, and
    we cannot tell whether it is still wanted.
    """
    home = ownership.home_id(create=False)
    root = state.labs_dir()
    groups: set[tuple[str, str, str, str]] = set()
    for kind in _kinds():
        for obj in kind({LAB_LABEL: "", DIR_LABEL: ""}):
            lbl = obj.labels
            if all_folders or started_here(lbl, home, root):
                groups.add((lbl.get(LAB_LABEL, ""), lbl.get(DIR_LABEL, ""),
                            lbl.get(ID_LABEL, ""), lbl.get(HOME_LABEL, "")))
    removed, kept, done = _toolkit_labs(dry_run)
    # A lab folder copied or moved (a copied state folder) keeps its id: its lab is alive
    # although the path in its labels is gone.
    ids_here = {lab_owner(state.lab_dir(n)).get(ID_LABEL) for n in state.lab_names()}
    for lab_name, d, lid, lhome in sorted(groups):
        path = Path(d)
        if d in done:
            continue
        try:
            # A folder there with another id is another lab: this one's folder is gone.
            gone = not state.is_lab_dir(path) or bool(
                lid and lab_owner(path).get(ID_LABEL) not in (None, lid))
        except OSError:
            continue  # a folder we may not look into (another user's, --all): not ours to judge
        if gone and lid and lid in ids_here:
            continue
        killed = not gone and state.interrupted_up(path)
        if not (gone or killed):
            continue
        why = "lab directory gone" if gone else \
            f"its `lab {state.marker_verb(path) or 'up'}` was killed"
        which = {LAB_LABEL: lab_name, DIR_LABEL: d}
        which |= {k: v for k, v in ((ID_LABEL, lid), (HOME_LABEL, lhome)) if v}
        swept = sweep(which, dry_run=dry_run)
        removed += [f"{r} (lab {lab_name}: {why})" for r in swept]
        if killed and not dry_run:
            state.clear_up_marker(path)
    return GcReport(removed, kept)

