"""``LabFolder``: one lab folder as the toolkit reads it: its paths, saved spec, secrets,
manifest and ids, and its deletion.

Written by ``lab.store.labdir.write_lab``; read here, every file without following a
link (``lab.store.layout.read_no_links``). Each secret is stored once, in
``.lab/secrets.json``: the saved spec (``.lab/spec.json``) says which tokens the spec
set, never their values.
"""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.errors import BadInput, Incomplete, SpecError
from lab.model.topology import Lab
from lab.render.secrets import LabSecrets
from lab.spec.labspec import build_lab, resolved_spec
from lab.spec.yamlfile import MAX_FILE_BYTES, Origins, user_text
from lab.store import ownership, state
from lab.store.layout import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SECRET,
    SECRETS_MAX_BYTES,
    SECRETS_STORE,
    SPEC_FILE,
    read_bytes_no_links,
    read_no_links,
    write_file,
)

if TYPE_CHECKING:
    from lab.spec.rb_reader import RbFile


@dataclass(frozen=True)
class LabFolder:
    """The lab folder at ``path`` (which may not exist yet)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, rel: str) -> Path:
        """The path of ``rel`` (a ``lab.store.layout`` name) in this folder."""
        return self.path / rel

    # --- ids and ownership ---
    @property
    def id(self) -> str | None:
        """The folder's random lab id (written at its first render), or None."""
        return ownership.lab_id(self.path)

    @property
    def owner(self) -> dict[str, str]:
        """Its ownership labels (``lab.store.ownership.lab_owner``)."""
        return ownership.lab_owner(self.path)

    # --- what it holds ---
    def manifest(self) -> dict[str, Any] | None:
        """manifest.json as a mapping; None when missing, too big or damaged."""
        try:
            data = json.loads(read_no_links(self.path, MANIFEST, limit=MAX_MANIFEST_BYTES))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def secrets(self) -> LabSecrets | None:
        """The lab's secrets (.lab/secrets.json); None when there are none yet."""
        path = self.file(SECRETS_STORE)
        if not (path.exists() or path.is_symlink()):
            return None
        try:
            return LabSecrets.from_json(json.loads(read_no_links(self.path, SECRETS_STORE,
                                                                limit=SECRETS_MAX_BYTES)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{path} is damaged ({exc}); render again with --regenerate to "
                           "make new secrets for this lab") from None

    def gitlab_rb(self, rel: str, omnibus_config: str = "") -> RbFile:
        """The gitlab.rb at ``rel`` (a node's: ``node_paths(node).gitlab_rb``), parsed
        statically and read without following a link: a node's folder is its container's
        /etc/gitlab, which may swap the file for a link to a host file."""
        # Imported here: the reader runs Ruby through lab.engine.run, which rendering (this
        # module's other users) never loads.
        from lab.spec.rb_reader import MAX_BYTES as RB_MAX_BYTES
        from lab.spec.rb_reader import parse_rb

        try:
            raw = read_bytes_no_links(self.path, rel, limit=RB_MAX_BYTES)
        except OSError as exc:
            raise self.unreadable(rel, exc) from None
        return parse_rb(raw, str(self.file(rel)), omnibus_config=omnibus_config)

    def node_text(self, rel: str, what: str) -> str:
        """The text of a node's file at ``rel`` that is not a gitlab.rb (a source node's
        config.toml, gitlab.yml, shell secret), read without following a link: a node's
        folder is mounted into its container, which may swap a file or folder there for a
        link to a host file. Refused as gitlab_rb refuses; ``what`` names it in errors.
        A missing file raises FileNotFoundError, for the callers to whom absence is a fact."""
        try:
            raw = read_bytes_no_links(self.path, rel, limit=MAX_FILE_BYTES)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self.unreadable(rel, exc) from None
        return user_text(raw, what, str(self.file(rel)))

    def unreadable(self, rel: str, exc: OSError) -> SpecError:
        """The one-paragraph refusal of a node's file ``rel`` that ``read_no_links`` could
        not read: which file, why, what to do."""
        # O_NOFOLLOW: a link as the file is ELOOP, a link as a folder on the way ENOTDIR.
        link = {errno.ELOOP: "it is a symbolic link",
                errno.ENOTDIR: "a folder on its path is a symbolic link, or not a folder"}
        if exc.errno in link:
            return SpecError(f"cannot be read ({link[exc.errno]}): the toolkit reads a lab "
                             "folder's files only as real files in it, never through a link (a "
                             "node's container can leave one there). Put the real file in its "
                             "place, or remove the link and render the lab again",
                             source=str(self.file(rel)))
        return SpecError(f"cannot be read ({exc.strerror or exc}); put the file back, or "
                         "render the lab again to write it", source=str(self.file(rel)))

    def save_spec(self, lab: Lab) -> None:
        """The lab as spec data that rebuilds the same ``Lab`` with ``lab`` (its tokens are
        in the secrets, see ``LabSecrets.spec_tokens``)."""
        write_file(self.file(SPEC_FILE), json.dumps(resolved_spec(lab), indent=2), SECRET)

    def lab(self) -> Lab:
        """The lab the saved spec and secrets describe."""
        spec_path = self.file(SPEC_FILE)
        damaged = (f"remove the lab with `lab down {self.name} --purge` and start it again")
        try:
            data = json.loads(read_no_links(self.path, SPEC_FILE))
            if not isinstance(data, dict):
                raise ValueError(f"holds {type(data).__name__}, not a lab spec")
        except (OSError, ValueError) as exc:
            raise BadInput(f"{spec_path} is missing or damaged ({exc}); {damaged}") from None
        # Accepted when the lab was made (maybe with --force-version): don't judge it again.
        try:
            lab = build_lab(data, Origins(), force_version=True)
        except BadInput as exc:
            raise BadInput(f"{spec_path} is damaged ({exc}); {damaged}") from None
        try:
            sec = self.secrets()
        except BadInput:
            return lab  # attach says what is wrong with the secrets
        return lab if sec is None else with_spec_tokens(lab, sec)

    # --- deletion ---
    def purge(self) -> None:
        """Delete the folder (links inside are removed, never followed); say what stayed.

        Only a folder the toolkit made in the state folder (``ownership.is_own_folder``):
        never a link, nor what it points to, nor a folder without the toolkit's marks."""
        path = self.path
        if not ownership.is_own_folder(path):
            raise BadInput(f"{path} is not a lab folder this toolkit made in "
                           f"{state.labs_dir()} (a symbolic link, or a folder without the lab "
                           "id a render writes); nothing was deleted. Remove it yourself if it "
                           "is yours to remove")
        failed: list[str] = []

        def note(func: Any, where: str, exc_info: Any) -> None:
            failed.append(f"{where}: {getattr(exc_info[1], 'strerror', None) or exc_info[1]}")

        shutil.rmtree(path, onerror=note)
        if not path.exists():
            ownership.made_record(path.name).unlink(missing_ok=True)
            return
        shown = "; ".join(failed[:3]) + (f" (and {len(failed) - 3} more)" if len(failed) > 3
                                         else "")
        raise Incomplete(f"the lab is down, but its folder {path} (with its secrets) could "
                         f"not be deleted: {shown or 'unknown reason'}. Delete it by hand "
                         f"(e.g. `sudo rm -rf {path}` if a container left root-owned files)")


def with_spec_tokens(lab: Lab, sec: LabSecrets) -> Lab:
    """``lab`` with the Gitaly tokens its spec set, from where they are kept: the secrets."""
    tokens = sec.spec_tokens
    if not tokens:
        return lab
    nodes = tuple(replace(n, gitaly_token=tokens[n.name]) if n.name in tokens else n
                  for n in lab.nodes)
    return replace(lab, nodes=nodes, gitaly_token=tokens.get("", lab.gitaly_token))
