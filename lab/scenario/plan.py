"""The plan: which scenario runs on which lab for which release, in what order.

The one orchestration `lab run` and the pytest plugin share: each scenario is
expanded over the release matrix and its labs resolved once (``expand``); the
items are then ordered lab by lab, so each lab boots once (``order``). `lab run`
runs the plan group by group (``runner.run_plan``); the plugin makes a test
item of each plan item.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lab.errors import ReleaseTooOld, SpecError
from lab.model.needs import memory_needed
from lab.model.topology import Lab
from lab.scenario.definition import Scenario, ScenarioLabs
from lab.scenario.load import on_lab, resolve_labs
from lab.scenario.pool import lab_key
from lab.scenario.releases import release_name
from lab.spec.versions import DEFAULT_VERSION, Version


@dataclass(frozen=True)
class PlanItem:
    scenario: Scenario
    name: str  # the case name: the scenario's, with [release] in a release matrix
    release: str | None  # the release asked for (None: the default)
    labs: ScenarioLabs | None  # None: skipped (not for this flavour, or ``why_skipped``)
    why_skipped: str = ""  # said for a skipped item; "" = not for this run's flavour

    @property
    def group(self) -> str:
        """The lab it runs on ("" when skipped): items of one group share that lab."""
        return self.labs.base.name if self.labs is not None else ""


def _release_order(release: str | None) -> Version:
    """A matrix entry's release, for sorting (None: the default, the newest)."""
    return Version.parse(release or DEFAULT_VERSION)


def expand(scenario: Scenario, *, flavor: str,
           releases: Sequence[str | None] = (None,), engine: str = "compose") -> list[PlanItem]:
    """One item per release of the matrix; one item when the scenario pins its version
    or is not for ``flavor`` (then it has no labs: it is skipped, once).

    Raises the scenario's SpecError when a release cannot build its lab (a key that
    release does not have), before any lab boots.
    """
    releases = list(releases) or [None]
    if flavor not in scenario.flavors:
        # Resolved all the same, so a mistake in it is found in this run too: on the newest
        # release of the matrix that can build its lab (a cluster needs 13.3+, while the
        # matrix may start at the guide's 11.11).
        problems: list[SpecError] = []
        for r in sorted(releases, key=_release_order, reverse=True):
            try:
                resolve_labs(scenario, flavor=flavor, version=r, engine=engine)
                break
            except SpecError as exc:
                problems.append(exc)
        else:
            if not all(isinstance(p, ReleaseTooOld) for p in problems):
                raise next(p for p in problems if not isinstance(p, ReleaseTooOld))
        return [PlanItem(scenario, scenario.name, releases[0], None)]
    per_release = len(releases) > 1 and not scenario.version
    items = []
    for r in releases if per_release else releases[:1]:
        try:
            labs = resolve_labs(scenario, flavor=flavor, version=r, engine=engine)
        except ReleaseTooOld as exc:
            if scenario.version:
                raise  # the scenario pins a release its own lab can't have: its mistake
            # A library run at the guide's 11.11 goes on past the cluster scenarios.
            name = release_name(scenario.name, str(r)) if per_release else scenario.name
            items.append(PlanItem(scenario, name, r, None, why_skipped=str(exc)))
            continue
        except SpecError as exc:
            if not per_release:
                raise
            raise SpecError(f"{exc} (GitLab {r})") from None
        # Its expectations as written for the release its lab runs.
        items.append(PlanItem(scenario.at(labs.target.version),
                              release_name(scenario.name, str(r)) if per_release
                              else scenario.name, r, labs))
    return items


def order(items: Iterable[PlanItem]) -> list[PlanItem]:
    """Lab by lab: a lab of the most nodes first, each followed by one of the smaller labs
    while both last; labs of one size with the most scenarios first, then where their first
    item was; skipped items last.

    Where groups run side by side (`lab run`, pytest-xdist), the longest start first: the
    biggest labs, whose boots take longest, and of those the ones with the most scenarios
    (a scenario pinned to one release has a lab of its own). The big ones also mostly wait
    (a cluster's scenarios on Praefect's 10 s failover timeout), so each is handed out
    beside a small lab, whose boots and pushes use the CPUs meanwhile (with every cluster
    lab first, the seven-era run's CPUs were a fifth idle while four of them waited
    together; the commits that made this order say what it gained).

    Within a group, the items that run on the base state come first, then those that need
    the same changes one after another (``by_state``), so the lab changes once per distinct
    state rather than back and forth."""
    groups: dict[str, list[PlanItem]] = {}
    skipped: list[PlanItem] = []
    for item in items:
        if item.labs is None:
            skipped.append(item)
        else:
            groups.setdefault(item.group, []).append(item)

    def nodes(group: list[PlanItem]) -> int:
        return max(len(i.labs.base.nodes) for i in group if i.labs is not None)

    ranked = sorted(groups.values(), key=lambda group: (-nodes(group), -len(group)))
    most = nodes(ranked[0]) if ranked else 0
    biggest = [group for group in ranked if nodes(group) == most]
    smaller = ranked[len(biggest):]
    paired = [g for pair in itertools.zip_longest(biggest, smaller) for g in pair
              if g is not None]
    return [item for group in paired for item in by_state(group)] + skipped


def by_state(group: Sequence[PlanItem]) -> list[PlanItem]:
    """One group's items base lab by base lab (a group is a lab family, ``family_key``):
    the first item's base first, then each time the base that the fewest nodes must be
    created anew to reach (``_made_anew``), of equals the one that first appears first;
    within a base, its own state first, then each other state's items together, states in
    the order they first appear (a stable sort: items of one state keep their order).

    Every change of state costs an apply (reconfigure, restart, readiness); in file order a
    library alternating base and changed scenarios reverts to the base before each base one.
    Of those applies a node installed the other way costs most: its container is removed
    and created again (the one-release library's scaled bases in file order made four of
    them, where three do).
    """
    def keys(item: PlanItem) -> tuple[str, str]:
        assert item.labs is not None  # a group holds planned items only
        # The keys LabPool tells states apart by.
        return lab_key(item.labs.base), lab_key(item.labs.target)

    first_seen: dict[str, Lab] = {}
    states: dict[str, int] = {}
    for item in group:
        assert item.labs is not None
        base, target = keys(item)
        first_seen.setdefault(base, item.labs.base)
        states.setdefault(target, -1 if target == base else len(states))
    order: list[str] = []
    left = list(first_seen)  # from the first item's base
    while left:
        came_from = first_seen[order[-1]] if order else None
        nearest = min(left, key=lambda base: 0 if came_from is None
                      else _made_anew(came_from, first_seen[base]))
        order.append(nearest)
        left.remove(nearest)
    bases = {base: i for i, base in enumerate(order)}
    return sorted(group, key=lambda item: (bases[keys(item)[0]], states[keys(item)[1]]))


def _made_anew(here: Lab, there: Lab) -> int:
    """How many nodes turning ``here`` into ``there`` creates anew: those installed the other
    way (``lab.lifecycle.node_actions``: their mounts differ, so their containers are
    removed first) and those only ``there`` has."""
    installs = {node.name: node.install for node in here.nodes}
    return sum(installs.get(node.name) is not node.install for node in there.nodes)


def plan(scenarios: Iterable[Scenario], *, flavor: str,
         versions: Sequence[str | None] = (None,), engine: str = "compose") -> list[PlanItem]:
    """Every scenario over the release matrix ``versions``, ordered lab by lab."""
    return order(item for sc in scenarios for item in expand(sc, flavor=flavor,
                                                              releases=versions, engine=engine))


def plan_on(scenarios: Iterable[Scenario], lab: Lab) -> list[PlanItem]:
    """The plan for running ``scenarios`` on the existing ``lab`` (`lab run --lab NAME`): its
    release and flavour; each scenario's ``given`` applied to that lab and undone. A
    scenario whose base lab is another lab is skipped, saying why; SpecError when no
    scenario fits the lab (every reason said)."""
    items: list[PlanItem] = []
    refused: list[str] = []
    for item in plan(scenarios, flavor=lab.flavor.value, versions=(str(lab.version),),
                     engine=lab.engine.value):
        if item.labs is None:
            items.append(item)
            continue
        try:
            items.append(dataclasses.replace(item, labs=on_lab(item.scenario, item.labs, lab)))
        except SpecError as exc:
            refused.append(str(exc))
            items.append(dataclasses.replace(item, labs=None, why_skipped=str(exc)))
    if refused and all(item.labs is None for item in items):
        raise SpecError("\n".join(refused))
    return order(items)


def room_for(labs: Sequence[Lab], *, cpus: int | None = None,
             available: int | None = None) -> int:
    """How many of ``labs`` this machine can run at once (at least 1).

    One per core (a lab's boot and restarts are CPU work), and only as many as
    fit in the memory available now (``lab.model.needs``, as doctor reckons: 4+ GB for an
    Omnibus app node, so Omnibus groups mostly run one after another).
    """
    from lab.engine.host import mem_available

    if len(labs) <= 1:
        return 1
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    available = available if available is not None else mem_available()
    room = min(len(labs), cpus)
    if available is not None:
        fits, used = 0, 0
        for lab in sorted(labs, key=memory_needed):
            used += memory_needed(lab)
            if used > available:
                break
            fits += 1
        room = min(room, fits)
    return max(1, room)
