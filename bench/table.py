"""The issue-15 table: each figure beside its baseline (measured before) and its target.

Baselines are the numbers measured on 2 cores before the speed work (issue 15);
every bench script prints its own rows with this, and ``bench_all.py`` prints
them all together from one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    figure: str
    now: str
    baseline: str
    target: str
    met: bool | None = None  # None: no target to meet (information only)


BASELINES = {
    "up": "7.74 s",
    "up_ratio": "1.12",
    "up_cmd_ratio": "1.11 (issue 25)",
    "down_ratio": "1.94 s / 1.11 s = 1.75",
    "library_reuse": "42.5 s",
    "fresh_over_reuse": "114.8 / 42.5 = 2.7x",
    "cold_build": "48 s",
    "image_size": "275 MB",
    # No `cluster` topology before issue 26: nothing measured before to compare with.
    "cluster_ratio": "- (new, issue 26)",
}


def print_table(rows: list[Row], title: str = "issue-15 figures") -> None:
    head = ("figure", "now", "baseline", "target", "met")
    cells = [head] + [(r.figure, r.now, r.baseline, r.target,
                       "-" if r.met is None else ("yes" if r.met else "NO")) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    print(f"\n{title}")
    for n, c in enumerate(cells):
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def load_note() -> str:
    """The machine's load when measuring (others may share the cores)."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min), {five:.2f} (5 min)"


def cpu_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU since boot, from /proc/stat ((0, 0) elsewhere)."""
    try:
        # user nice system idle iowait irq softirq steal; guest time is inside user already
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        idle = fields[3] + fields[4]  # idle and iowait
    except (OSError, ValueError, IndexError):
        return 0, 0
    return sum(fields) - idle, sum(fields)


def cpu_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Percent of the CPUs' time busy between two ``cpu_ticks``."""
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total > 0 else 0.0


def busy_seconds(before: tuple[int, int], after: tuple[int, int]) -> float:
    """CPU-seconds the machine's CPUs were busy between two ``cpu_ticks``, every process's
    (the engine's and the containers' included)."""
    return (after[0] - before[0]) / os.sysconf("SC_CLK_TCK")
