"""The plan: the release matrix, lab-by-lab order, and how many labs fit at once."""

from __future__ import annotations

import itertools

import pytest
from scenario_fakes import LIBRARY

from lab.errors import SpecError
from lab.scenario import plan, releases
from lab.scenario.load import load_scenario, parse_scenario, resolve_labs


def test_parse_versions() -> None:
    assert releases.parse_versions(None) == [None]
    assert releases.parse_versions("17.11.7") == ["17.11.7"]
    assert releases.parse_versions(" 15.9.8,17.11.7 ,15.9.8") == ["15.9.8", "17.11.7"]
    with pytest.raises(ValueError, match=r"'17\.11' is not a GitLab version"):
        releases.parse_versions("15.9.8,17.11")
    # Refused for the option (once), in words that fit `lab run` and pytest alike: neither
    # has the --force-version that a spec's own error suggests.
    with pytest.raises(ValueError, match=r"^GitLab 99\.0\.0 is newer than the newest release "
                       r"this toolkit knows \(19\.3\.0\); check the number$"):
        releases.parse_versions("19.3.0,99.0.0")
    with pytest.raises(ValueError, match=r"older than the oldest supported release 11\.11\.0"):
        releases.parse_versions("11.0.0")




def test_a_group_runs_its_base_state_first_then_each_state_once() -> None:
    """Each change of state is an apply (reconfigure, restart, readiness): in file order the
    library went base, changed, base, changed, ...; planned, each state is reached once."""
    def sc(name: str, given: str = "") -> object:
        return parse_scenario(f"name: {name}\nlab: {{topology: scaled}}\n{given}"
                              "steps: [{api: /x}]\n", f"{name}.yaml")

    own = "given: {set: {nodes.gitaly1.secrets: own}}\n"
    none = "given: {set: {nodes.gitaly1.secrets: none}}\n"
    tls = parse_scenario("name: tls\nlab: {topology: scaled, set: {nodes.gitaly1.tls: true}}\n"
                         "steps: [{api: /x}]\n", "tls.yaml")
    scenarios = [sc("own-1", own), sc("base-1"), tls, sc("none-1", none), sc("own-2", own),
                 sc("base-2"), sc("none-2", none)]
    items = plan.plan(scenarios, flavor="sim")  # type: ignore[arg-type]
    assert [i.name for i in items] == ["base-1", "base-2", "own-1", "own-2", "none-1", "none-2",
                                       "tls"]
    states = [i.labs.target for i in items]  # type: ignore[union-attr]
    changes = sum(a != b for a, b in itertools.pairwise(states))
    # base -> own -> none, then the TLS lab: the same lab (one family), TLS applied.
    assert changes == 3
    assert len({i.group for i in items}) == 1


def test_bases_go_where_the_fewest_nodes_are_created_anew() -> None:
    """A node installed the other way is removed and created again: after the Omnibus base,
    the TLS base (no node anew) comes before the source ones, whatever the file order, and
    each source base follows the one that differs from it in one node, not two."""
    def sc(name: str, app: str, gitaly: str, tls: bool = False) -> object:
        return parse_scenario(
            f"name: {name}\nlab: {{topology: scaled, set: {{nodes.gitlab.install: {app}, "
            f"nodes.gitaly1.install: {gitaly}, nodes.gitaly1.tls: {str(tls).lower()}}}}}\n"
            "steps: [{api: /x}]\n", f"{name}.yaml")

    scenarios = [sc("omnibus", "omnibus", "omnibus"), sc("app-src", "source", "omnibus"),
                 sc("gitaly-src", "omnibus", "source"), sc("tls", "omnibus", "omnibus", True),
                 sc("both-src", "source", "source")]
    items = plan.plan(scenarios, flavor="sim")  # type: ignore[arg-type]
    assert [i.name for i in items] == ["omnibus", "tls", "app-src", "both-src", "gitaly-src"]
    # In file order: omnibus, app-src, gitaly-src (two nodes anew), tls, both-src (two).
    anew = [plan._made_anew(a.labs.base, b.labs.base)  # type: ignore[union-attr]
            for a, b in itertools.pairwise(items)]
    assert anew == [0, 1, 1, 1]
    assert len({i.group for i in items}) == 1


def test_at_one_release_the_library_boots_one_lab_per_topology() -> None:
    """Every built-in scenario of a topology shares its lab at the default release: a
    pinned one is pinned to that release (a scenario pinned to another boots a lab of its
    own, five seconds of a cluster's boot in every `lab run scenarios/`)."""
    library = [load_scenario(p) for p in sorted(LIBRARY.glob("*.yaml"))]
    items = [i for i in plan.plan(library, flavor="sim") if i.labs is not None]
    groups = {(i.labs.base.topology, i.group) for i in items}  # type: ignore[union-attr]
    assert sorted(topology for topology, _ in groups) == ["cluster", "scaled"], sorted(
        (i.name, str(i.labs.base.version)) for i in items)  # type: ignore[union-attr]


def test_room_for_counts_cores_and_memory() -> None:
    sim = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml")).base
    omni = resolve_labs(load_scenario(LIBRARY / "gitaly-own-secrets.yaml"), flavor="omnibus").base
    gib = 2**30
    assert plan.room_for([sim, sim, sim], cpus=2, available=8 * gib) == 2
    assert plan.room_for([sim, sim], cpus=1, available=8 * gib) == 1
    assert plan.room_for([sim, sim], cpus=8, available=None) == 2
    assert plan.room_for([omni, omni], cpus=8, available=8 * gib) == 1  # 4+ GB per app node
    assert plan.room_for([omni, omni], cpus=8, available=64 * gib) == 2
    assert plan.room_for([omni], cpus=8, available=0) == 1




def test_plan_expands_the_matrix_and_orders_lab_by_lab() -> None:
    tls = load_scenario(LIBRARY / "tls-push.yaml")
    plain = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    pinned = parse_scenario("lab: {topology: scaled, version: '16.11.10'}\n"
                            "steps: [{api: /x}]\n", "pinned.yaml")
    omni = parse_scenario("flavors: [omnibus]\nlab: {topology: scaled}\nsteps: [{api: /x}]\n",
                          "omni.yaml")
    items = plan.plan([omni, plain, tls, pinned], flavor="sim", versions=["15.9.8", "19.3.0"])
    # The TLS lab is the plain one with TLS applied (one lab family per topology and
    # release): each release's plain and TLS scenarios share a lab.
    assert [i.name for i in items] == ["gitaly-own-secrets[15.9.8]", "tls-push[15.9.8]",
                                       "gitaly-own-secrets[19.3.0]", "tls-push[19.3.0]",
                                       "pinned", "omni"]
    assert items[-1].labs is None  # not for this flavour: skipped, last, once
    assert items[-1].group == ""
    assert items[0].group == items[1].group != items[2].group == items[3].group
    assert len({i.group for i in items[:5]}) == 3  # a lab per topology and release
    assert str(items[4].labs.base.version) == "16.11.10"  # type: ignore[union-attr]


def test_a_scenario_for_another_flavour_is_checked_on_the_newest_release_first() -> None:
    # Not run here, but resolved all the same: its mistake is said, not the older
    # release's "no Gitaly Cluster before 13.3", whatever order the matrix was given in.
    omni = parse_scenario("flavors: [omnibus]\nlab: {topology: cluster}\n"
                          "steps: [{exec: {node: nosuch, cmd: ['true']}}]\n", "omni.yaml")
    for versions in (["19.3.0", "11.11.8"], ["11.11.8", "19.3.0"]):
        with pytest.raises(SpecError, match="nosuch"):
            plan.plan([omni], flavor="sim", versions=versions)


def test_the_biggest_labs_run_first() -> None:
    """Groups side by side (`lab run`, xdist) start with the longest: a cluster's six nodes
    before the scaled lab's two, though its file comes later."""
    plain = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    cluster = load_scenario(LIBRARY / "cluster-push-clone.yaml")
    tls = load_scenario(LIBRARY / "tls-push.yaml")
    items = plan.plan([plain, cluster, tls], flavor="sim")
    assert [i.name for i in items] == ["cluster-push-clone", "gitaly-own-secrets", "tls-push"]


def test_each_big_lab_is_handed_out_beside_a_small_one() -> None:
    """Side by side, a cluster lab that waits on Praefect runs beside a scaled lab that
    computes: big and small alternate while both last, each size in matrix order."""
    plain = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    cluster = load_scenario(LIBRARY / "cluster-push-clone.yaml")
    items = plan.plan([plain, cluster], flavor="sim",
                      versions=["13.12.15", "15.9.8", "19.3.0", "12.10.14"])
    # 12.10.14 has no Gitaly Cluster: its cluster item is skipped, last.
    assert [i.name for i in items] == [
        "cluster-push-clone[13.12.15]", "gitaly-own-secrets[13.12.15]",
        "cluster-push-clone[15.9.8]", "gitaly-own-secrets[15.9.8]",
        "cluster-push-clone[19.3.0]", "gitaly-own-secrets[19.3.0]",
        "gitaly-own-secrets[12.10.14]", "cluster-push-clone[12.10.14]"]
    assert items[-1].labs is None
    assert plan.order([]) == []


def test_of_the_big_labs_the_one_with_more_scenarios_goes_first() -> None:
    """A cluster scenario pinned to a release of its own has a lab for itself: handed out
    first, it would hold back the library's cluster lab, the longest group, until done."""
    pinned = parse_scenario("name: cluster-database-stopped\nlab: {topology: cluster, "
                            "version: '16.11.10'}\nsteps: [{api: /x}]\n", "pinned.yaml")
    plain = load_scenario(LIBRARY / "gitaly-own-secrets.yaml")
    clone = load_scenario(LIBRARY / "cluster-push-clone.yaml")
    token = load_scenario(LIBRARY / "cluster-external-token-mismatch.yaml")
    items = plan.plan([pinned, plain, clone, token], flavor="sim")
    assert [i.name for i in items] == ["cluster-push-clone", "cluster-external-token-mismatch",
                                       "gitaly-own-secrets", "cluster-database-stopped"]
    assert items[0].group == items[1].group != items[3].group
