"""Labs' Docker resources found by label: sweep, gc, list; whose they are, who uses them.

Every resource a lab makes carries its labels (name, folder, owner ids); these
functions never touch a resource without them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.engine import docker as dk
from lab.engine.snapshots import Container
from lab.errors import BadInput, LabBusy, LabError, LabOwnedElsewhere
from lab.lifecycle.folder import load_lab
from lab.lifecycle.status import LabSummary
from lab.render.compose_file import DIR_LABEL, HOME_LABEL, ID_LABEL, LAB_LABEL
from lab.store import state
from lab.store.labdir import lab_owner, load_manifest


def is_ours(lbl: dict[str, str], path: Path, owner: dict[str, str], home: str | None) -> bool:
    """Whether a resource with labels ``lbl`` belongs to the lab folder ``path``."""
    theirs_home = lbl.get(HOME_LABEL)
    if theirs_home and home and theirs_home != home:
        return False  # another state folder's lab, even at the same path
    if ID_LABEL in lbl and ID_LABEL in owner:
        return lbl[ID_LABEL] == owner[ID_LABEL]
    # No id on one side: a lab from before ids, or our own folder deleted by hand
    # (its leftovers carry our state folder's id and our path).
    return lbl.get(DIR_LABEL) == str(path) and (ID_LABEL not in lbl or theirs_home == home)


def foreign_owners(name: str, path: Path) -> list[str]:
    """Folders of other labs called ``name`` on this engine (Compose projects are engine-wide)."""
    owner = lab_owner(path)
    home = state.home_id(create=False)
    others: set[str] = set()
    for kind in (dk.containers, dk.networks, dk.volumes):
        for obj in kind({LAB_LABEL: name}):
            lbl = obj.labels
            if not is_ours(lbl, path, owner, home):
                others.add(lbl.get(DIR_LABEL) or "(a folder it does not name)")
    return sorted(others)



def check_owner(name: str, path: Path) -> None:
    others = foreign_owners(name, path)
    if others:
        raise LabOwnedElsewhere(
            f"a lab named {name!r} on this Docker Engine belongs to another folder: "
            f"{', '.join(others)} (another state folder, user or container). Nothing was "
            f"touched. Pick another --name, or stop that lab from where it was started "
            f"(`lab down {name}` with its LAB_HOME)")


def check_not_in_use(name: str) -> None:
    """Refuse while another process starts the lab or a `lab run` holds it.

    Asked of the locks those processes hold (the kernel drops them when a process dies),
    not of the PID in an up-marker: a stale marker may name any process, PID 1 included
    (a run in a container, or a PID used again since)."""
    for claim, what in ((state.StartLock(name), "`lab up`"), (state.LabClaim(name), "`lab run`")):
        holder = claim.holder()
        if holder is not None:
            who = f"PID {holder}" if holder > 0 else "another process"
            raise LabBusy(f"lab {name!r} is in use by {what} ({who}); wait until it ends, or "
                          f"stop it (kill {holder if holder > 0 else 'PID'}), then try again")

def sweep(labels: dict[str, str], *, dry_run: bool = False) -> list[str]:
    """Remove every container, then network, then volume carrying ``labels``."""
    removed: list[str] = []
    found = dk.containers(labels)
    removed += [f"container {c.name}" for c in found]
    if found and not dry_run:
        # Concurrently: each removal waits for its container to die.
        with ThreadPoolExecutor(max_workers=len(found)) as pool:
            list(pool.map(dk.remove_container, found))
    for n in dk.networks(labels):
        removed.append(f"network {n.name}")
        if not dry_run:
            dk.remove_network(n)
    for v in dk.volumes(labels):
        removed.append(f"volume {v.name}")
        if not dry_run:
            dk.remove_volume(v)
    return removed


def _described(path: Path) -> tuple[str, str, str, int]:
    """Flavour, version, topology and node count of the lab in ``path``: from its manifest,
    or (that file damaged or deleted by hand) from its saved spec."""
    m = load_manifest(path)
    if m is not None:
        return (str(m.get("flavor", "")), str(m.get("version", "")),
                str((m.get("spec") or {}).get("topology", "")), len(m.get("nodes", {})))
    try:
        lab = load_lab(path)
    except BadInput:
        return "", "", "", 0
    return lab.flavor.value, str(lab.version), lab.topology or "", len(lab.nodes)


def list_labs() -> list[LabSummary]:
    """Every lab in the state folder with how many of its containers run."""
    names = state.lab_names()
    by_lab: dict[str, list[Container]] = {}
    docker_ok = True
    if names:
        try:
            for c in dk.containers({LAB_LABEL: ""}):
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
        elif state.up_marker_pid(path) is not None:
            st = "interrupted" if state.interrupted_up(path) else "starting"
        elif running_n and running_n >= total:
            st = "up"
        elif cs:
            st = "partial"
        else:
            st = "down"
        out.append(LabSummary(name, path, flavor, version, topology, total, running_n, st))
    return out


def _mine(lbl: dict[str, str], home: str | None, root: Path) -> bool:
    """A resource started from this state folder (older ones: by their folder's path)."""
    if HOME_LABEL in lbl:
        return home is not None and lbl[HOME_LABEL] == home
    return Path(lbl.get(DIR_LABEL, "")).parent == root


def gc(*, dry_run: bool = False, all_folders: bool = False) -> list[str]:
    """Remove labelled resources whose lab directory is gone or whose `up` was killed.

    Only labs started from this state folder count, unless ``all_folders``: a
    lab of another user or container may look orphaned from here while it runs.
    Only resources that also name their lab directory count: those come from a
    rendered lab; a resource with the lab label alone was made by hand, and
    we cannot tell whether it is still wanted.
    """
    home = state.home_id(create=False)
    root = state.labs_dir()
    groups: set[tuple[str, str, str, str]] = set()
    for kind in (dk.containers, dk.networks, dk.volumes):
        for obj in kind({LAB_LABEL: "", DIR_LABEL: ""}):
            lbl = obj.labels
            if all_folders or _mine(lbl, home, root):
                groups.add((lbl.get(LAB_LABEL, ""), lbl.get(DIR_LABEL, ""),
                            lbl.get(ID_LABEL, ""), lbl.get(HOME_LABEL, "")))
    removed: list[str] = []
    # A lab folder copied or moved (a copied state folder) keeps its id: its lab is alive
    # although the path in its labels is gone.
    ids_here = {lab_owner(state.lab_dir(n)).get(ID_LABEL) for n in state.lab_names()}
    for lab_name, d, lid, lhome in sorted(groups):
        path = Path(d)
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
        why = "lab directory gone" if gone else "its `lab up` was killed"
        which = {LAB_LABEL: lab_name, DIR_LABEL: d}
        which |= {k: v for k, v in ((ID_LABEL, lid), (HOME_LABEL, lhome)) if v}
        swept = sweep(which, dry_run=dry_run)
        removed += [f"{r} (lab {lab_name}: {why})" for r in swept]
        if killed and not dry_run:
            state.clear_up_marker(path)
    return removed

