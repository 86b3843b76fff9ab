"""The lab folder as a running lab needs it: the saved spec, files a container took, purging."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from lab.engine import docker as dk
from lab.errors import BadInput, Incomplete
from lab.model.topology import Lab
from lab.spec.labspec import build_lab, resolved_spec
from lab.spec.yamlfile import Origins
from lab.store import state
from lab.store.labdir import SECRET, read_no_links, write_file


def _spec_data(lab: Lab) -> dict[str, Any]:
    """The lab as spec data that rebuilds the same ``Lab`` (tokens included; kept 0600)."""
    data = resolved_spec(lab)
    if lab.gitaly_token is not None:
        data["gitaly_token"] = lab.gitaly_token
    for node in lab.nodes:
        if node.gitaly_token is not None:
            data["nodes"][node.name]["gitaly_token"] = node.gitaly_token
    return data


def save_spec(lab: Lab, path: Path) -> None:
    write_file(path / state.SPEC_FILE, json.dumps(_spec_data(lab), indent=2), SECRET)


def load_lab(path: Path) -> Lab:
    spec_path = path / state.SPEC_FILE
    try:
        data = json.loads(read_no_links(path, state.SPEC_FILE))
        if not isinstance(data, dict):
            raise ValueError(f"holds {type(data).__name__}, not a lab spec")
    except (OSError, ValueError) as exc:
        raise BadInput(f"{spec_path} is missing or damaged ({exc}); remove the lab with "
                       f"`lab down {path.name} --purge` and start it again") from None
    # Accepted when the lab was made (maybe with --force-version): don't judge it again.
    try:
        return build_lab(data, Origins(), force_version=True)
    except BadInput as exc:
        raise BadInput(f"{spec_path} is damaged ({exc}); remove the lab with "
                       f"`lab down {path.name} --purge` and start it again") from None


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
    for root, dirs, files in os.walk(nodes):
        out += [Path(root, n) for n in (*dirs, *files) if Path(root, n).lstat().st_uid != uid]
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



def purge_folder(path: Path) -> None:
    """Delete a lab folder (links inside are removed, never followed); say what stayed.

    Only a folder the toolkit made in the state folder (``state.is_own_folder``): never
    a link, nor what it points to, nor a folder without the toolkit's marks."""
    if not state.is_own_folder(path):
        raise BadInput(f"{path} is not a lab folder this toolkit made in {state.labs_dir()} "
                       "(a symbolic link, or a folder without the lab id a render writes); "
                       "nothing was deleted. Remove it yourself if it is yours to remove")
    failed: list[str] = []

    def note(func: Any, where: str, exc_info: Any) -> None:
        failed.append(f"{where}: {getattr(exc_info[1], 'strerror', None) or exc_info[1]}")

    shutil.rmtree(path, onerror=note)
    if not path.exists():
        state.made_record(path.name).unlink(missing_ok=True)
    if path.exists():
        shown = "; ".join(failed[:3]) + (f" (and {len(failed) - 3} more)" if len(failed) > 3
                                         else "")
        raise Incomplete(f"the lab is down, but its folder {path} (with its secrets) could not "
                         f"be deleted: {shown or 'unknown reason'}. Delete it by hand "
                         f"(e.g. `sudo rm -rf {path}` if a container left root-owned files)")
