"""Scenario suite timings on the sim flavour (prints numbers; not a timed test).

1. the whole built-in library, labs reused and mutated (what `lab run scenarios/` does,
   independent labs side by side when the machine has room), then the same library
   with a fresh lab per scenario (booted straight into the scenario's state), and
   the ratio of the two;
2. pytest on the library, `-n 0` vs `-n 2` (pytest-xdist), and a release matrix
   (`--lab-version`, a few scenarios) the same two ways;
3. growth: N scenarios on one reused lab vs a fresh lab per scenario (--sizes).

Runs under a private LAB_HOME. Usage:
python bench/bench_suite.py [--skip-full] [--skip-fresh] [--skip-parallel] [--sizes 1,3,6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from table import BASELINES, Row, load_note, print_table

from lab.lifecycle.contract import LabHandle
from lab.model.topology import Lab
from lab.scenario.definition import Scenario, ScenarioLabs
from lab.scenario.load import find_scenarios, load_scenario, resolve_labs
from lab.scenario.pool import READY_TIMEOUT, LabPool, UpFn, wait_gitaly
from lab.scenario.results import ScenarioResult
from lab.scenario.runner import run_scenario, run_scenarios

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "scenarios"
FLAVOR = "sim"
MATRIX = "11.11.8,15.9.8,17.11.7,19.3.0"
MATRIX_SCENARIOS = ("shared-secrets-push-clone.yaml", "gitaly-own-secrets.yaml",
                    "tls-push.yaml")


def _check(results: list[ScenarioResult]) -> str:
    bad = [r.name for r in results if not r.ok]
    return "all passed" if not bad else f"NOT PASSED: {', '.join(bad)}"


def outside_steps(results: list[ScenarioResult]) -> tuple[float, float]:
    """Mean seconds per scenario spent outside its steps (booting or applying, undoing
    faults), and in them."""
    ran = [r for r in results if r.steps]
    steps = sum(s.seconds for r in ran for s in r.steps)
    total = sum(r.seconds for r in ran)
    n = max(1, len(ran))
    return (total - steps) / n, steps / n


def busiest_steps(results: list[ScenarioResult]) -> float:
    """Seconds of steps on the lab that ran the most of them (reuse's wall-time floor)."""
    per_lab: dict[str, float] = {}
    for r in results:
        per_lab[r.lab] = per_lab.get(r.lab, 0.0) + sum(s.seconds for s in r.steps)
    return max(per_lab.values(), default=0.0) or 0.01


def reused(scenarios: list[Scenario], jobs: int | None = None
           ) -> tuple[float, list[ScenarioResult]]:
    t0 = time.monotonic()
    results = run_scenarios(scenarios, flavor=FLAVOR, jobs=jobs)
    return time.monotonic() - t0, results


def pytest_run(args: list[str]) -> tuple[float, str]:
    """Seconds for a pytest run of scenarios (its summary line), as a user starts it."""
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *args], cwd=ROOT, capture_output=True, text=True, check=False)
    lines = res.stdout.strip().splitlines()
    return time.monotonic() - t0, lines[-1] if lines else res.stderr.strip()[-200:]


def parallel_rows() -> list[Row]:
    rows = []
    matrix = [f"scenarios/{n}" for n in MATRIX_SCENARIOS]
    for what, args in (("library", ["scenarios/"]),
                       (f"matrix {MATRIX} x {len(matrix)} scenarios",
                        [*matrix, "--lab-version", MATRIX])):
        timings = {}
        for n in ("0", "2"):
            seconds, summary = pytest_run([*args, "-n", n])
            timings[n] = seconds
            print(f"pytest {what} -n {n}: {seconds:.1f}s ({summary})")
        faster = min(timings, key=lambda k: timings[k])
        rows.append(Row(f"pytest {what}: -n 0 / -n 2",
                        f"{timings['0']:.1f} s / {timings['2']:.1f} s (-n {faster} faster)",
                        "-", "-"))
    return rows


def _boot_target(labs: ScenarioLabs) -> UpFn:
    """Boot the scenario's own state at once (what a fresh lab per scenario costs)."""
    def up(base: Lab) -> LabHandle:
        from lab.lifecycle import handle
        return handle.up(labs.target, name=base.name, timeout=READY_TIMEOUT,
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
    ap.add_argument("--sizes", default="")
    ap.add_argument("--fresh-sizes", default="")
    ap.add_argument("--skip-full", action="store_true",
                    help="Skip the whole-library runs (reused and fresh).")
    ap.add_argument("--skip-fresh", action="store_true",
                    help="Skip the fresh-lab-per-scenario run of the library.")
    ap.add_argument("--skip-parallel", action="store_true",
                    help="Skip the pytest -n 0 / -n 2 runs.")
    args = ap.parse_args()
    print_table(measure(full=not args.skip_full, fresh_too=not args.skip_fresh,
                        parallel=not args.skip_parallel, sizes=args.sizes,
                        fresh_sizes=args.fresh_sizes))


def measure(*, full: bool = True, fresh_too: bool = True, parallel: bool = True,
            sizes: str = "", fresh_sizes: str = "") -> list[Row]:
    home = Path(tempfile.mkdtemp(prefix="lab-bench-suite-")).resolve()
    old_home = os.environ.get("LAB_HOME")
    os.environ["LAB_HOME"] = str(home)
    try:
        return _measure(full, fresh_too, parallel, sizes, fresh_sizes)
    finally:
        if old_home is None:
            os.environ.pop("LAB_HOME", None)
        else:
            os.environ["LAB_HOME"] = old_home
        # The pools have downed their labs; only the folders (and the Compose cache) remain.
        shutil.rmtree(home, ignore_errors=True)


def _measure(full: bool, fresh_too: bool, parallel: bool, sizes: str,
             fresh_sizes: str) -> list[Row]:
    from lab.engine.images import build_images

    build_images()
    print(load_note())
    rows: list[Row] = []
    library = [load_scenario(p) for p in find_scenarios([LIBRARY])]
    if full:
        seconds, results = reused(library)
        groups = len({resolve_labs(s, flavor=FLAVOR).base.name for s in library
                      if FLAVOR in s.flavors})
        print(f"full library: {len(library)} scenarios, {groups} labs booted, "
              f"{seconds:.1f}s ({_check(results)})")
        for r in results:
            print(f"  {r.name:<28} {r.seconds:6.1f}s")
        rows.append(Row(f"built-in library ({len(library)} scenarios, {groups} labs) with reuse",
                        f"{seconds:.1f} s", BASELINES["library_reuse"], "<= 25 s",
                        seconds <= 25 and _check(results) == "all passed"))
        if fresh_too:
            fresh_seconds, fresh_results = fresh(library)
            print(f"full library, fresh lab per scenario: {fresh_seconds:.1f}s "
                  f"({_check(fresh_results)})")
            ratio = fresh_seconds / seconds
            rows.append(Row("fresh lab per scenario / reuse",
                            f"{fresh_seconds:.1f} / {seconds:.1f} = {ratio:.1f}x",
                            BASELINES["fresh_over_reuse"], ">= 4x", ratio >= 4))
            # What reuse saves is the boot: compare what each mode spends besides the steps.
            # Fresh runs one lab at a time, so its wall time holds the downs too.
            _, fresh_steps = outside_steps(fresh_results)
            fresh_out = fresh_seconds / max(1, len(fresh_results)) - fresh_steps
            reuse_out, reuse_steps = outside_steps(results)
            print(f"  per scenario: fresh {fresh_out:.2f}s up and down + {fresh_steps:.2f}s "
                  f"steps; reuse {reuse_out:.2f}s applying (its group's boot shared out) + "
                  f"{reuse_steps:.2f}s steps")
            rows.append(Row("  for information: per scenario outside its steps, fresh / reuse",
                            f"{fresh_out:.2f} s / {reuse_out:.2f} s = "
                            f"{fresh_out / max(reuse_out, 0.01):.1f}x", "-", "-"))
            # One lab serves each group, so no reuse can finish before its busiest lab has
            # run its scenarios' steps, even with a free boot and free applies.
            busiest = busiest_steps(results)
            print(f"  steps of the busiest reused lab: {busiest:.1f}s; fresh / that: "
                  f"{fresh_seconds / busiest:.1f}x is the most any reuse could reach")
            rows.append(Row("  for information: fresh / steps of the busiest reused lab "
                            "(the ratio's ceiling)",
                            f"{fresh_seconds:.1f} / {busiest:.1f} = "
                            f"{fresh_seconds / busiest:.1f}x", "-", "-"))
    if parallel:
        rows += parallel_rows()
    # Growth uses scenarios on one base lab, so "reused" boots exactly once.
    mine = [s for s in library if FLAVOR in s.flavors]
    first = resolve_labs(mine[0], flavor=FLAVOR).base.name
    same = [s for s in mine if resolve_labs(s, flavor=FLAVOR).base.name == first]
    for n in (int(x) for x in sizes.split(",") if x):
        seconds, results = reused(same[:n])
        print(f"reused lab, {n} scenarios: {seconds:.1f}s  ({seconds / n:.1f}s each; "
              f"{_check(results)})")
    for n in (int(x) for x in fresh_sizes.split(",") if x):
        seconds, results = fresh(same[:n])
        print(f"fresh lab per scenario, {n} scenarios: {seconds:.1f}s  ({seconds / n:.1f}s each; "
              f"{_check(results)})")
    return rows


if __name__ == "__main__":
    main()
