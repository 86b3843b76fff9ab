"""The image a lab runs, made present: the sim image built, another pulled."""

from __future__ import annotations

import time

from lab.engine import docker as dk
from lab.engine.image_catalogue import pull_image
from lab.engine.images import build_images
from lab.errors import EngineError, ImageMissing
from lab.lifecycle.readiness import Progress
from lab.model.labels import FLAVOR_LABEL
from lab.model.topology import Flavor, Lab
from lab.render.compose_file import omnibus_image


def ensure_image(lab: Lab, image: str, progress: Progress | None = None) -> None:
    """Make ``image`` present: build the sim image, else use local, else try a pull."""
    if dk.image_present(image):
        return
    note = progress.note if progress is not None else (lambda message: None)
    if lab.flavor is Flavor.SIM and lab.image is None:
        note(f"building the sim image {image} (once per checkout)")
        build_images(progress=note)
        return
    note(f"pulling {image}")
    started = time.monotonic()
    layer = "pulling image"
    if progress is not None:
        progress.layer_started(layer, [image])

    def pulled(so_far: str) -> None:
        if progress is not None:
            progress.layer_update(layer, {image: so_far}, time.monotonic() - started)

    try:
        pull_image(image, pulled)
        if progress is not None:
            progress.layer_done(layer, time.monotonic() - started)
    except EngineError as exc:
        official = image if lab.image else omnibus_image(lab)
        why = next(iter(exc.stderr.strip().splitlines()), "no answer")
        raise ImageMissing(
            f"image {image} is not present locally and pulling it failed ({why}). Get it "
            f"with `docker pull {official}` on a connected machine, or `lab images load "
            f"FILE.tar` (an archive made with `docker save {official}`), or use --flavor sim."
        ) from None


def sim_posing(lab: Lab, image: str) -> str:
    """What to say when the omnibus lab ``lab`` runs ``image`` and that image is the
    toolkit's sim (its label says so, whatever its tag): results are then the sim's, not
    GitLab's. "" otherwise. (CI tags the sim as gitlab/gitlab-ce on purpose to exercise the
    Omnibus code path; a user must never take it for GitLab.)"""
    if lab.flavor is not Flavor.OMNIBUS:
        return ""
    try:
        found = dk.image(image)
    except EngineError:
        return ""
    if found is None or found.labels.get(FLAVOR_LABEL) != "sim":
        return ""
    return (f"{image} is gitlab-testlab's sim image ({FLAVOR_LABEL}=sim), not GitLab: this "
            "omnibus lab runs the offline stand-in, and what it shows is the sim's behaviour. "
            f"Remove the tag (`docker rmi {image}`) and pull or load the real image")
