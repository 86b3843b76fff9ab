"""Cold `lab images build`: base (mmdebstrap + docker import) and sim image, and their size.

Rebuilds this checkout's base and sim tags from scratch (``force``: the Docker
layer cache cannot help, since a new base import has a new id) with the apt
package cache as a user has it after one build (``--cold-cache`` empties a
private one first, for the very first build on a machine). Prints numbers; not a test.
Usage: python3 bench/bench_images.py [--cold-cache]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from table import BASELINES, Row, load_note, print_table


def image_mb(ref: str) -> float:
    from lab.engine.run import run

    out = run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], timeout=60).stdout
    return int(out.strip()) / 1e6  # Docker's own "MB" (10^6), as `docker images` shows


def measure(cold_cache: bool = False) -> list[Row]:
    from lab.engine import images

    if cold_cache:
        os.environ["LAB_APT_CACHE"] = tempfile.mkdtemp(prefix="lab-apt-cache-")
    cache = images.apt_cache_dir()
    warm = cache is not None and any(cache.glob("*.deb"))
    print(f"{load_note()}; apt package cache {cache} ({'warm' if warm else 'empty'})")
    steps: list[tuple[str, float]] = []
    last = [time.monotonic()]

    def progress(message: str) -> None:
        now = time.monotonic()
        steps.append((message, now - last[0]))
        last[0] = now
        print(f"  {now - t0:6.1f}s {message}")

    t0 = time.monotonic()
    ref = images.build_images(force=True, progress=progress)
    seconds = time.monotonic() - t0
    size = image_mb(ref)
    print(f"cold build: {seconds:.1f}s; {ref}: {size:.0f} MB")
    return [
        Row("cold `lab images build`" + (" (empty apt cache)" if not warm else ""),
            f"{seconds:.1f} s", BASELINES["cold_build"], "<= 40 s", seconds <= 40),
        # 200 MB until the sim carried Praefect's PostgreSQL (issue 26: under 250 MB).
        Row("sim image size", f"{size:.0f} MB", BASELINES["image_size"], "<= 250 MB",
            size <= 250),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cold-cache", action="store_true",
                    help="Start from an empty apt package cache (a first build).")
    args = ap.parse_args()
    print_table(measure(args.cold_cache))


if __name__ == "__main__":
    main()
