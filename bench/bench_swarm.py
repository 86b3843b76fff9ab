"""The swarm engine next to Compose on one machine (prints numbers; not a timed test).

For the `scaled` sim lab, N rounds per engine of: `up` to ready (the same readiness
layers; on Swarm the first waits for each task), then `down`; and the memory of the
gateway container the swarm lab adds. The swarm is made for the run only if the
engine is in none, advertised on 127.0.0.1, and left as it was found
(``lab.engine.swarm.one_machine_swarm``). Run it alone on the machine (it changes
the engine's swarm state), under the Docker lock where others share the engine.
Usage: python bench/bench_swarm.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid

from lab.engine import docker as dk
from lab.engine import swarm as sw
from lab.lifecycle import handle
from lab.model.labels import GATEWAY_LABEL
from lab.spec.labspec import SpecRequest, resolve


def one_round(engine: str) -> tuple[float, float, int]:
    """Seconds to ready, seconds to down, gateway bytes (0 on Compose)."""
    lab = resolve(SpecRequest(topology="scaled", engine=engine,
                              name=f"bench-{engine}-{uuid.uuid4().hex[:4]}"))
    t0 = time.monotonic()
    running = handle.up(lab)
    ready = time.monotonic() - t0
    gateway = dk.containers({**running.labels, GATEWAY_LABEL: ""})
    mem = dk.memory_usage(gateway[0]) if gateway else 0
    t1 = time.monotonic()
    running.down(purge=True)
    return ready, time.monotonic() - t1, mem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-swarm-")
    os.environ["LAB_HOME"] = home
    load = os.getloadavg()[0]
    results: dict[str, list[tuple[float, float, int]]] = {}
    try:
        results["compose"] = [one_round("compose") for _ in range(args.rounds)]
        with sw.one_machine_swarm():
            results["swarm"] = [one_round("swarm") for _ in range(args.rounds)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"scaled sim lab, {args.rounds} rounds per engine, median (load average {load:.2f})")
    print(f"{'figure':<28}{'compose':>10}{'swarm':>10}{'swarm/compose':>15}")
    for i, figure in enumerate(("up to ready (s)", "down (s)")):
        c = statistics.median(r[i] for r in results["compose"])
        s = statistics.median(r[i] for r in results["swarm"])
        print(f"{figure:<28}{c:>10.2f}{s:>10.2f}{s / c:>15.2f}")
    gw = statistics.median(r[2] for r in results["swarm"]) / 2**20
    print(f"{'gateway memory (MiB)':<28}{'-':>10}{gw:>10.1f}")


if __name__ == "__main__":
    main()
