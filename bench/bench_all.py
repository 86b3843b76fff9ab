"""Every issue-15 figure from one run, as one table (prints numbers; not a test).

Runs bench_images (cold build, size), bench_up (lab up/down vs Compose) and
bench_suite (library reuse vs fresh, pytest -n 0 vs -n 2, release matrix).
Takes about 10 minutes on 2 cores. Usage: python3 bench/bench_all.py
"""

from __future__ import annotations

import bench_images
import bench_suite
import bench_up
from table import load_note, print_table


def main() -> None:
    print(load_note())
    rows = bench_images.measure()
    rows += bench_up.measure(5)
    rows += bench_suite.measure()
    print_table(rows, f"issue-15 figures ({load_note()})")


if __name__ == "__main__":
    main()
