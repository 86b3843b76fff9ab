"""Scenario suite timings on the sim flavour (prints numbers; not a timed test).

1. the whole built-in library, labs reused and mutated (what `lab run scenarios/` does),
   then the same library with a fresh lab per scenario (booted straight into the
   scenario's state), and the ratio of the two;
2. growth: N scenarios on one reused lab vs a fresh lab per scenario.

Usage: python bench/bench_suite.py [--sizes 1,3,6] [--fresh-sizes 1,3] [--skip-full]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lab.model import Lab
from lab.scenario.load import find_scenarios, load_scenario, resolve_labs
from lab.scenario.model import Scenario, ScenarioLabs
from lab.scenario.runner import (
    READY_TIMEOUT,
    LabHandle,
    LabPool,
    ScenarioResult,
    UpFn,
    run_scenario,
    run_scenarios,
    wait_gitaly,
)

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"
FLAVOR = "sim"


def _check(results: list[ScenarioResult]) -> str:
    bad = [r.name for r in results if not r.ok]
    return "all passed" if not bad else f"NOT PASSED: {', '.join(bad)}"


def reused(scenarios: list[Scenario]) -> tuple[float, list[ScenarioResult]]:
    t0 = time.monotonic()
    results = run_scenarios(scenarios, flavor=FLAVOR)
    return time.monotonic() - t0, results


def _boot_target(labs: ScenarioLabs) -> UpFn:
    """Boot the scenario's own state at once (what a fresh lab per scenario costs)."""
    def up(base: Lab) -> LabHandle:
        from lab import lifecycle

        return lifecycle.up(labs.target, name=base.name, timeout=READY_TIMEOUT,
                            wait_gitaly=wait_gitaly(labs.base, labs.target))

    return up


def fresh(scenarios: list[Scenario]) -> tuple[float, list[ScenarioResult]]:
    t0 = time.monotonic()
    results = []
    for sc in scenarios:
        if FLAVOR not in sc.flavors:  # as run_scenarios skips it: not timed either way
            continue
        labs = resolve_labs(sc, flavor=FLAVOR)
        with LabPool(up=_boot_target(labs)) as pool:  # boots, runs one scenario, downs
            results.append(run_scenario(sc, labs, pool))
    return time.monotonic() - t0, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1,3,6")
    ap.add_argument("--fresh-sizes", default="1,3")
    ap.add_argument("--skip-full", action="store_true",
                    help="Skip the whole-library runs (reused and fresh).")
    args = ap.parse_args()
    library = [load_scenario(p) for p in find_scenarios([LIBRARY])]
    if not args.skip_full:
        seconds, results = reused(library)
        groups = len({resolve_labs(s, flavor=FLAVOR).base.name for s in library
                      if FLAVOR in s.flavors})
        print(f"full library: {len(library)} scenarios, {groups} labs booted, "
              f"{seconds:.1f}s ({_check(results)})")
        for r in results:
            print(f"  {r.name:<28} {r.seconds:6.1f}s")
        fresh_seconds, fresh_results = fresh(library)
        print(f"full library, fresh lab per scenario: {fresh_seconds:.1f}s "
              f"({_check(fresh_results)})")
        print(f"ratio reused / fresh: {seconds / fresh_seconds:.2f}")
    # Growth uses scenarios on one base lab, so "reused" boots exactly once.
    mine = [s for s in library if FLAVOR in s.flavors]
    first = resolve_labs(mine[0], flavor=FLAVOR).base.name
    same = [s for s in mine if resolve_labs(s, flavor=FLAVOR).base.name == first]
    for n in (int(x) for x in args.sizes.split(",")):
        seconds, results = reused(same[:n])
        print(f"reused lab, {n} scenarios: {seconds:.1f}s  ({seconds / n:.1f}s each; "
              f"{_check(results)})")
    for n in (int(x) for x in args.fresh_sizes.split(",") if x):
        seconds, results = fresh(same[:n])
        print(f"fresh lab per scenario, {n} scenarios: {seconds:.1f}s  ({seconds / n:.1f}s each; "
              f"{_check(results)})")


if __name__ == "__main__":
    main()
