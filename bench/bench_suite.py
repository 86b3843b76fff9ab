"""Scenario suite timings on the sim flavour (prints numbers; not a timed test).

1. the whole built-in library, labs reused and mutated (what `lab run scenarios/` does),
   then the same library with a fresh lab per scenario, and the ratio of the two;
2. growth: N scenarios on one reused lab vs a fresh lab per scenario.

Usage: python bench/bench_suite.py [--sizes 1,3,6] [--fresh-sizes 1,3] [--skip-full]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lab.scenario.load import find_scenarios, load_scenario, resolve_labs
from lab.scenario.model import Scenario
from lab.scenario.runner import LabPool, ScenarioResult, Status, run_scenario, run_scenarios

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"


def _check(results: list[ScenarioResult]) -> str:
    bad = [r.name for r in results if r.status is not Status.PASSED]
    return "all passed" if not bad else f"NOT PASSED: {', '.join(bad)}"


def reused(scenarios: list[Scenario]) -> tuple[float, list[ScenarioResult]]:
    t0 = time.monotonic()
    results = run_scenarios(scenarios)
    return time.monotonic() - t0, results


def fresh(scenarios: list[Scenario]) -> tuple[float, list[ScenarioResult]]:
    t0 = time.monotonic()
    results = []
    for sc in scenarios:
        with LabPool() as pool:  # boots, runs one scenario, downs
            results.append(run_scenario(sc, resolve_labs(sc), pool))
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
        groups = len({resolve_labs(s).base.name for s in library})
        print(f"full library: {len(library)} scenarios, {groups} labs booted, "
              f"{seconds:.1f}s ({_check(results)})")
        for r in results:
            print(f"  {r.name:<28} {r.seconds:6.1f}s")
        fresh_seconds, fresh_results = fresh(library)
        print(f"full library, fresh lab per scenario: {fresh_seconds:.1f}s "
              f"({_check(fresh_results)})")
        print(f"ratio reused / fresh: {seconds / fresh_seconds:.2f}")
    # Growth uses scenarios on one base lab, so "reused" boots exactly once.
    first = resolve_labs(library[0]).base.name
    same = [s for s in library if resolve_labs(s).base.name == first]
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
