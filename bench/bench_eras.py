"""Issue-25 speed figures, each beside its baseline, from one run (prints numbers; not a test).

1. per scenario outside its own steps with lab reuse (the built-in library on the sim,
   as `lab run scenarios/` runs it): with each group's boot shared out over its
   scenarios (the baseline's definition), and on a lab already up (applying the
   scenario's changes and undoing its faults only);
2. the whole library at one release per era, as CI runs it:
   `CI=true python3 -m pytest -q -p no:cacheprovider -n 4 scenarios --lab-version ...`;
3. `lab up scaled --flavor sim` against Compose's `up -d` plus the same readiness polling
   run as a command of its own (its own interpreter, as someone without `lab up` would run
   it): bench_up's rounds.

Runs under private LAB_HOMEs. Run it alone on the machine: the load average is printed.
Usage: python3 bench/bench_eras.py [--rounds 3] [--skip-library] [--skip-eras] [--skip-up]
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

from table import Row, cpu_busy, cpu_ticks, load_note, print_table

ROOT = Path(__file__).resolve().parent.parent
ERAS = "11.11.8,12.10.14,13.12.15,15.9.8,16.11.10,17.11.7,19.3.0"

# Measured before the issue-25 speed work (the text and the stop-22 note).
BASELINES = {
    "outside": "0.96 s",
    "eras": "121 s (CI, alone); 224 s (loaded)",
}


def library_rows() -> list[Row]:
    import bench_suite

    from lab.engine.images import build_images
    from lab.scenario.load import find_scenarios, load_scenario

    build_images()
    library = [load_scenario(p) for p in find_scenarios([bench_suite.LIBRARY])]
    print(f"library with reuse ({load_note()})")
    used = containers_cpu()
    seconds, results = bench_suite.reused(library)
    used_after = containers_cpu()
    ran = [r for r in results if r.steps]
    booted: set[str] = set()
    first: list[float] = []  # outside the steps: the scenario that booted its lab
    later: list[float] = []  # and the rest
    for r in ran:  # results come in plan order: a group's first scenario booted its lab
        outside = r.seconds - sum(s.seconds for s in r.steps)
        (later if r.lab in booted else first).append(outside)
        booted.add(r.lab)
    shared = (sum(first) + sum(later)) / max(1, len(ran))
    up_already = sum(later) / max(1, len(later))
    for r in results:
        print(f"  {r.name:<32} {r.seconds:6.2f}s  steps "
              f"{sum(s.seconds for s in r.steps):6.2f}s  {r.outcome.value}")
        if not r.ok:  # a rare failure is worth its reason: the run is not repeated
            missed = next((s for s in r.steps if not s.ok), None)
            print("    " + (f"step {missed.label} (line {missed.line}): {missed.problem}\n"
                           f"    output: {missed.output[-600:]}" if missed else r.message))
    print(f"  {len(ran)} scenarios on {len(booted)} labs in {seconds:.1f}s; boots "
          f"{', '.join(f'{b:.2f}s' for b in first)}; {bench_suite._check(results)}")
    return [
        Row("per scenario outside its steps, reuse, boots shared out",
            f"{shared:.2f} s", BASELINES["outside"], "<= 0.3 s", shared <= 0.3),
        Row("  per scenario outside its steps on a lab already up (applying, undoing)",
            f"{up_already:.2f} s over {len(later)}", "-", "<= 0.3 s", up_already <= 0.3),
        Row("  for information: the library with reuse (wall)", f"{seconds:.1f} s", "17.2 s",
            "-"),
        cpu_row(used, used_after),
    ]


def eras_row() -> list[Row]:
    home = Path(tempfile.mkdtemp(prefix="lab-bench-eras-")).resolve()
    env = {**os.environ, "CI": "true", "LAB_HOME": str(home)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "4",
           "scenarios", "--lab-version", ERAS]
    print(f"seven eras: {' '.join(cmd[1:])} ({load_note()})")
    cpu0, used = cpu_ticks(), containers_cpu()
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             check=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    seconds = time.monotonic() - t0
    busy, used_after = cpu_busy(cpu0, cpu_ticks()), containers_cpu()
    lines = res.stdout.strip().splitlines()
    summary = lines[-1] if lines else res.stderr.strip()[-300:]
    print(f"  {seconds:.1f}s: {summary} ({load_note()} after)")
    for line in lines:  # a rare failure is worth its name and reason: the run is not repeated
        if line.startswith(("FAILED", "ERROR")):
            print(f"    {line[:400]}")
    # The summary keeps a failure's first line only; its reason (a scenario's step, its
    # output, an error's message) is in pytest's failures section.
    for line in failures_section(lines)[:80]:
        print(f"    | {line[:300]}")
    return [Row(f"library at seven releases, pytest -n 4 ({summary})", f"{seconds:.1f} s",
                BASELINES["eras"], "<= 150 s", seconds <= 150 and res.returncode == 0),
            # Near 100 %, more workers do not help: the engine's execs and container starts
            # and the sim's processes are the work, and only less of it is faster. Well
            # below, the run waits (the cluster scenarios on Praefect's timeouts).
            Row("  for information: the machine's CPUs busy during it", f"{busy:.0f} %",
                "-", "-"),
            # The CPU work alone on these cores: no order of the groups, no number of
            # workers finishes sooner; only less work does. On this 2-core machine it was
            # 146 s of a 168 s run (stop 42): the target sits near this floor.
            Row("  for information: its CPU work over every core (wall x busy), the floor "
                "no schedule beats", f"{seconds * busy / 100:.1f} s", "-", "-"),
            cpu_row(used, used_after)]


def failures_section(lines: list[str]) -> list[str]:
    """The lines of pytest's "FAILURES" (and "ERRORS") sections of a `-q` run's output."""
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("=") and line.endswith("="):
            inside = " FAILURES " in line or " ERRORS " in line
            continue
        if inside:
            out.append(line)
    return out


# cgroup v1's Docker parent: every container's CPU time, charged as it is used (so what a
# removed container used stays counted). No such file (cgroup v2): not shown.
CONTAINERS_CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")


def containers_cpu() -> float | None:
    """CPU-seconds used in containers since the engine started (None: not known here).

    What the sim's processes cost, beside the wall time, which waits too. Both move with
    the machine's speed (on one day the same seven-era run took 162 to 236 s and used 193
    to 245 CPU-s here): compare changes back to back, A/B/A/B."""
    try:
        return int(CONTAINERS_CPUACCT.read_text()) / 1e9
    except (OSError, ValueError):
        return None


def cpu_row(before: float | None, after: float | None) -> Row:
    used = f"{after - before:.1f} CPU-s" if before is not None and after is not None else "-"
    return Row("  for information: CPU in the labs' containers during it", used, "-", "-")


def up_rows(rounds: int) -> list[Row]:
    import bench_up

    return bench_up.measure(rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of lab up (bench_up)")
    ap.add_argument("--skip-library", action="store_true")
    ap.add_argument("--skip-eras", action="store_true")
    ap.add_argument("--skip-up", action="store_true")
    args = ap.parse_args()
    rows: list[Row] = []
    old_home = os.environ.get("LAB_HOME")
    home = Path(tempfile.mkdtemp(prefix="lab-bench-lib-")).resolve()
    os.environ["LAB_HOME"] = str(home)
    try:
        if not args.skip_library:
            rows += library_rows()
    finally:
        if old_home is None:
            os.environ.pop("LAB_HOME", None)
        else:
            os.environ["LAB_HOME"] = old_home
        shutil.rmtree(home, ignore_errors=True)
    if not args.skip_eras:
        rows += eras_row()
    if not args.skip_up:
        rows += up_rows(args.rounds)
    print_table(rows, f"issue-25 figures ({load_note()})")


if __name__ == "__main__":
    main()
