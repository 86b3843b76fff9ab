"""The image a lab runs, made present: the sim image built, another pulled."""

from __future__ import annotations

from lab.engine import docker as dk
from lab.engine.run import run
from lab.errors import ImageMissing
from lab.lifecycle.readiness import Progress
from lab.model.lab import Flavor, Lab
from lab.omnibus import node as omnibus
from lab.render.compose import omnibus_image


def ensure_image(lab: Lab, image: str, progress: Progress | None = None) -> None:
    """Make ``image`` present: build the sim image, else use local, else try a pull."""
    if dk.image_present(image):
        return
    note = progress.note if progress is not None else (lambda message: None)
    if lab.flavor is Flavor.SIM and lab.image is None:
        from lab.engine.images import build_images

        note(f"building the sim image {image} (once per checkout)")
        build_images(progress=note)
        return
    note(f"pulling {image}")
    res = run(["docker", "pull", image], check=False, timeout=3600)
    if res.returncode == 0:
        return
    official = image if lab.image else omnibus_image(lab)
    raise ImageMissing(
        f"image {image} is not present locally and `docker pull` failed"
        f" ({omnibus.failure_line(res)}). Get it with "
        f"`docker pull {official}` on a connected machine, or `lab images load FILE.tar` "
        f"(an archive made with `docker save {official}`), or use --flavor sim.")
