"""A booted lab's folder: the files its containers made root's, given back before a render
or a purge (the lab folder itself is ``lab.store.lab_folder.LabFolder``)."""

from __future__ import annotations

import os
from pathlib import Path

from lab.engine import docker as dk
from lab.errors import BadInput
from lab.spec.yamlfile import files_below


def foreign_entries(lab_dir: Path) -> list[Path]:
    """What under the lab's nodes/ this user does not own: written by a rootful engine.

    Omnibus chowns /etc/gitlab to root unless `manage_etc` is off, and in any release
    writes root-owned files there (ssh host keys, initial_root_password from
    lab.omnibus.release.INITIAL_ROOT_PASSWORD, a generated gitlab-secrets.json). Root owns
    everything anyway: nothing to do then.
    """
    nodes = lab_dir / "nodes"
    uid = os.getuid()
    if uid == 0 or not nodes.is_dir():
        return []
    out = [nodes] if nodes.lstat().st_uid != uid else []
    # Not os.walk: it recurses (3.11), and a container can nest folders 1,000 deep here.
    out += [p for p in files_below(nodes, "nodes/", folders=True, skip_deeper=True)
            if p.lstat().st_uid != uid]
    return out


def reclaim(lab_dir: Path, image: str, labels: dict[str, str]) -> None:
    """Give the lab's node folders back to this user before re-rendering or removing them."""
    foreign = foreign_entries(lab_dir)
    if not foreign:
        return
    if not dk.image_present(image):
        raise BadInput(f"{foreign[0]} and {len(foreign) - 1} more under {lab_dir / 'nodes'} "
                       f"belong to another user (root, from a container) and the lab's image "
                       f"{image} is gone; run `sudo chown -R {os.getuid()}:{os.getgid()} "
                       f"{lab_dir}` and try again")
    dk.chown_tree(image, str(lab_dir / "nodes"), os.getuid(), os.getgid(), labels)


