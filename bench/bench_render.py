"""Render time: how long `lab render` takes per topology, pure and with disk writes.

Prints numbers; it is not a test. Run: python3 bench/bench_render.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lab.render.secrets import ensure_secrets
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import render_files, write_lab

ROUNDS = 20


# Rendering takes the image as data; the name does not matter here.
IMAGE = "bench:render"

def timed(func: object, rounds: int = ROUNDS) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, max(samples) * 1000


def main() -> None:
    print(f"{'case':<34} {'median ms':>10} {'max ms':>8}")
    for topology, sets in (("single", ()), ("scaled", ()), ("sharded", ("tls=true",))):
        lab = resolve(SpecRequest(topology=topology, flavor="omnibus", sets=sets))
        sec = ensure_secrets(lab)
        med, worst = timed(lambda lab=lab, sec=sec: render_files(lab, sec, "img", "/x"))
        print(f"{topology + ' render_files (pure)':<34} {med:>10.2f} {worst:>8.2f}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "lab"
            med, worst = timed(lambda lab=lab, out=out: write_lab(lab, out, image=IMAGE), rounds=1)
            print(f"{topology + ' first write (new secrets)':<34} {med:>10.2f} {worst:>8.2f}")
            med, worst = timed(lambda lab=lab, out=out: write_lab(lab, out, image=IMAGE))
            print(f"{topology + ' re-render (secrets kept)':<34} {med:>10.2f} {worst:>8.2f}")


if __name__ == "__main__":
    main()
