"""A lab directory: every rendered file of a lab, in one folder a user can read and run.

``render_files`` is pure; ``write_lab`` puts its result on disk, keeping the lab's
secrets from an earlier render unless asked to regenerate them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lab import __version__
from lab.errors import BadInput
from lab.model.topology import Lab, Node, SecretsPolicy
from lab.omnibus import praefect as pf
from lab.render.compose_file import render_compose
from lab.render.gitlab_rb import render_gitlab_rb, token_of
from lab.render.secrets import (
    LabSecrets,
    dump_secrets_json,
    ensure_secrets,
    fingerprint,
    merge_written_back,
    shell_secret,
)
from lab.render.source import source_files
from lab.spec.labspec import NODE_RE, resolved_spec
from lab.store.lab_folder import LabFolder
from lab.store.layout import (
    ADMIN_TOKEN,
    CA_FILE,
    LAB_HOME,
    LAB_ID,
    LAST_RUN_JSON,
    LAST_RUN_XML,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    PUBLIC,
    SECRET,
    SECRETS_MAX_BYTES,
    SECRETS_STORE,
    STATE_DIR,
    WRITTEN,
    chmod_folder,
    read_no_links,
    write_file,
)
from lab.store.ownership import new_id


@dataclass(frozen=True)
class NodePaths:
    """Where one node's files live, relative to the lab directory."""

    name: str

    @property
    def dir(self) -> str:
        return f"nodes/{self.name}"

    @property
    def gitlab_rb(self) -> str:
        return f"{self.dir}/gitlab.rb"

    @property
    def secrets(self) -> str:
        return f"{self.dir}/gitlab-secrets.json"

    @property
    def trusted_certs(self) -> str:
        return f"{self.dir}/trusted-certs"

    @property
    def ca(self) -> str:
        return f"{self.trusted_certs}/{CA_FILE}"

    @property
    def ssl(self) -> str:
        return f"{self.dir}/ssl"

    @property
    def cert(self) -> str:
        return f"{self.ssl}/{self.name}.crt"

    @property
    def key(self) -> str:
        return f"{self.ssl}/{self.name}.key"

    @property
    def managed(self) -> tuple[str, ...]:
        """Files a render removes when it no longer writes them (the secrets file has its
        own rule)."""
        return (self.gitlab_rb, self.ca, self.cert, self.key)


def node_paths(node: Node | str) -> NodePaths:
    return NodePaths(node if isinstance(node, str) else node.name)


@dataclass(frozen=True)
class RenderedFile:
    path: str  # relative to the lab directory
    content: str
    mode: int


def manifest(lab: Lab, sec: LabSecrets, image: str) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for node in lab.nodes:
        data = sec.for_node(node)
        entry: dict[str, Any] = {
            "roles": [r.value for r in node.roles],
            "secrets_policy": node.secrets.value,
            "secrets_file": node_paths(node).secrets if data else None,
            "secrets_file_sha256": fingerprint(dump_secrets_json(data)) if data else None,
            "shell_secret_sha256": fingerprint(shell_secret(data)) if data else None,
            "gitaly_token_sha256": fingerprint(token_of(lab, sec, node)),
        }
        if node.is_gitaly:
            entry["storages"] = {s.name: s.repositories_path for s in node.storages}
            if node.gitaly_only:
                entry["gitaly_address"] = node.gitaly_address
            entry["tls"] = node.tls
        if node.is_praefect:
            # What the three sides must agree on, as hashes: the app's token and this
            # external one; this internal one and each Gitaly node's token; storage names.
            entry.update(
                gitaly_address=node.gitaly_address, tls=node.tls,
                virtual_storages={s.name: list(node.backends) for s in node.storages},
                replication_factor=node.replicas,
                internal_token_sha256=fingerprint(sec.praefect_token),
                database=f"{lab.postgres_node.name if lab.postgres_node else ''}:{pf.DB_PORT}")
        nodes[node.name] = entry
    return {
        "toolkit": f"gitlab-testlab {__version__}",
        "name": lab.name,
        "project": lab.project_name,
        "version": str(lab.version),
        "edition": lab.edition.value,
        "flavor": lab.flavor.value,
        "dialect": lab.dialect.name,
        "image": image,
        "app": lab.app.name,
        "spec": resolved_spec(lab),
        "nodes": nodes,
    }


def render_files(lab: Lab, sec: LabSecrets, image: str, lab_dir: str,
                 owner: Mapping[str, str] | None = None) -> list[RenderedFile]:
    """Every file of the lab directory, as data (``owner``: extra labels, see
    ``lab.store.ownership.lab_owner``)."""
    files = [
        RenderedFile("docker-compose.yml", render_compose(lab, image, lab_dir, owner), PUBLIC),
        RenderedFile(".env", f"COMPOSE_PROJECT_NAME={lab.project_name}\n", PUBLIC),
        RenderedFile(MANIFEST, json.dumps(manifest(lab, sec, image), indent=2) + "\n", PUBLIC),
        RenderedFile(ADMIN_TOKEN, sec.admin_token + "\n", SECRET),
    ]
    for node in lab.nodes:
        paths = node_paths(node)
        files.append(RenderedFile(paths.gitlab_rb,
                                  render_gitlab_rb(lab, node, sec.gitaly_token, sec), SECRET))
        data = sec.for_node(node)
        if data is not None:
            files.append(RenderedFile(paths.secrets, dump_secrets_json(data), SECRET))
        if lab.any_tls and node.trust_ca:
            files.append(RenderedFile(paths.ca, sec.tls["ca.crt"], PUBLIC))
        if node.tls:
            files.append(RenderedFile(paths.cert, sec.tls[f"{node.name}.crt"], PUBLIC))
            # Gitaly reads its key as the `git` user, whose id the host does not
            # know; the lab directory itself (0700) keeps other host users out.
            files.append(RenderedFile(paths.key, sec.tls[f"{node.name}.key"], PUBLIC))
    # Nodes installed from source: config.toml / gitlab.yml and the shell secret beside
    # the gitlab.rb they would have had on Omnibus.
    files += [RenderedFile(path, text, SECRET) for path, text in source_files(lab, sec).items()]
    return files


def _with_written_back(out_dir: Path, rel: str, rendered: str) -> str:
    """``rendered`` merged with the sections a node's reconfigure wrote into ``rel``, read
    without following a link (the node's container writes there, and every section of
    the file read is copied into the one written back)."""
    path = out_dir / rel
    try:
        on_disk = json.loads(read_no_links(out_dir, rel, limit=SECRETS_MAX_BYTES))
    except PermissionError:
        raise BadInput(f"{path} is not readable by this user (written by a container as "
                       f"root?); run `sudo chown -R {os.getuid()}:{os.getgid()} {path.parent}` "
                       "or re-render through `lab up`, which does that itself") from None
    except (OSError, ValueError):
        return rendered  # damaged or vanished: the rendered file replaces it
    return dump_secrets_json(merge_written_back(json.loads(rendered), on_disk))


@dataclass(frozen=True)
class RenderedLab:
    lab: Lab
    path: Path
    secrets: LabSecrets
    image: str
    files: tuple[str, ...]
    owner: dict[str, str] = field(default_factory=dict)  # lab.store.ownership.lab_owner
    #: Each file as rendered, by path (a node's gitlab-secrets.json before what its
    #: reconfigure wrote back is merged in); empty for a lab attached without a render.
    contents: dict[str, str] = field(default_factory=dict)


def is_lab_folder(path: Path) -> bool:
    """A folder a render made: the lab id a render writes first, or a render's manifest.

    Not any manifest.json or .lab/: a project folder may have its own (a web app's
    manifest.json beside its docker-compose.yml and .env, which a render would replace).
    """
    folder = LabFolder(path)
    if folder.id is not None:
        return True
    toolkit = (folder.manifest() or {}).get("toolkit")
    return isinstance(toolkit, str) and toolkit.startswith("gitlab-testlab ")


def inside(out_dir: Path, rel: str) -> Path:
    """``out_dir/rel``, refusing a path whose parts leave the folder or are symbolic links.

    A node's folder is its container's /etc/gitlab, so a container can leave a
    link there; following it would write or delete outside the lab folder.
    """
    target = out_dir
    for part in PurePosixPath(rel).parts:
        if part in ("/", ".", ".."):
            raise BadInput(f"{rel!r} leaves the lab folder {out_dir}; refusing to touch it")
        target = target / part
        if target.is_symlink():
            raise BadInput(f"{target} is a symbolic link (a node's container can make one "
                           "there); a lab folder holds only real files and folders. Remove the "
                           "link and render again")
    return target


def _old_nodes(out_dir: Path, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The previous render's nodes, every name checked before anything is removed."""
    nodes = (previous or {}).get("nodes") or {}
    where = out_dir / MANIFEST
    if not isinstance(nodes, dict):
        raise BadInput(f"{where}: nodes: expected a mapping of node names; the manifest was "
                       f"changed by hand. Remove {out_dir} (or choose another -o) and render again")
    for name, entry in nodes.items():
        if not isinstance(name, str) or not NODE_RE.match(name) or not isinstance(entry, dict):
            raise BadInput(f"{where}: nodes.{name}: not a node this toolkit renders (node names "
                           "are lower-case letters, digits and -); the manifest was changed by "
                           f"hand. Remove {out_dir} (or choose another -o) and render again")
    return nodes


def written_files(out_dir: Path) -> frozenset[str]:
    """The files earlier renders wrote into ``out_dir`` (``WRITTEN``); empty for a folder
    no render wrote."""
    try:
        data = json.loads(read_no_links(out_dir, WRITTEN, limit=MAX_MANIFEST_BYTES))
    except (OSError, ValueError):
        data = None
    if isinstance(data, list):
        return frozenset(x for x in data if isinstance(x, str))
    if LabFolder(out_dir).id is None:
        return frozenset()
    # A lab folder from before the record (its lab id says a render made it): what a
    # render of the manifest's nodes writes.
    nodes = (LabFolder(out_dir).manifest() or {}).get("nodes")
    return frozenset(rel for name in (nodes if isinstance(nodes, dict) else {})
                     if isinstance(name, str) and NODE_RE.match(name)
                     for p in (node_paths(name),) for rel in (*p.managed, p.secrets))


def _remove_node(out_dir: Path, name: str, owned: frozenset[str]) -> None:
    """Delete the files a render wrote for a node that is gone, then its empty folders."""
    paths = node_paths(name)
    for rel in (*paths.managed, paths.secrets):
        target = inside(out_dir, rel)
        if rel in owned and target.is_file():
            target.unlink()
    for rel in (paths.trusted_certs, paths.ssl, paths.dir):
        with contextlib.suppress(OSError):  # not empty: the node's own files stay
            inside(out_dir, rel).rmdir()


def check_output_file(path: Path, *, force: bool = False) -> None:
    """The one rule for every -o that names a file (a spec, a bundle): a file already there
    is replaced only with ``force``, a folder never, and a path that can't be looked at is
    bad input, not a traceback."""
    try:
        there = path.exists() or path.is_symlink()
        if path.is_dir() and not path.is_symlink():
            raise BadInput(f"{path} is a folder; give a file name for -o")
    except OSError as exc:
        raise BadInput(f"cannot use {path} for -o: {exc.strerror or exc}; choose a path in a "
                       "folder you can search and write") from None
    if there and not force:
        raise BadInput(f"{path} exists; choose another -o, or pass --force to overwrite it")


def check_output_dir(out_dir: Path, *, force: bool = False) -> Path:
    """The resolved lab folder for ``out_dir``, refusing one a render must not write into."""
    try:
        if out_dir.is_symlink():
            raise BadInput(f"{out_dir} is a symbolic link; give the folder itself "
                           f"(-o {out_dir.resolve()}) so nothing is written where a link points")
        resolved = out_dir.resolve()
        if resolved.exists() and not resolved.is_dir():
            raise BadInput(f"{resolved} exists and is not a directory; choose another -o")
        if resolved.is_dir() and not force and not is_lab_folder(resolved) \
                and any(resolved.iterdir()):
            raise BadInput(f"{resolved} is not empty and is not a lab folder; a render would "
                           "overwrite files there. Choose an empty or new folder, or pass "
                           "--force to write into it anyway (files of the same names are "
                           "replaced)")
    except OSError as exc:
        raise BadInput(f"cannot use {out_dir} as the lab folder: {exc.strerror or exc} "
                       f"({exc.filename or out_dir}); choose a folder you can read, search and "
                       "write (-o)") from None
    return resolved


def write_lab(lab: Lab, out_dir: Path, *, image: str, regenerate: bool = False,
              force: bool = False, home: str | None = None) -> RenderedLab:
    """Render ``lab`` into ``out_dir``; keeps its secrets from a previous render.

    ``image`` is data (lab.engine.images.image_for): rendering never asks the engine.
    ``out_dir`` must be new, empty or a lab folder (``force``: any folder). Only
    files a render writes are replaced or removed, never through a symbolic
    link. ``home`` is the id of the state folder starting the lab (None: keep
    the folder's).
    """
    out_dir = check_output_dir(out_dir, force=force)
    previous = LabFolder(out_dir).manifest()
    if previous is not None and previous.get("name") not in (None, lab.name) and not regenerate:
        raise BadInput(f"{out_dir} holds lab {previous.get('name')!r}, not {lab.name!r}; "
                       "choose another directory or pass --regenerate to replace it")
    old_nodes = _old_nodes(out_dir, previous)
    try:
        return _write_lab(lab, out_dir, old_nodes, regenerate=regenerate, image=image, home=home)
    except OSError as exc:
        where = exc.filename or out_dir
        raise BadInput(f"cannot write the lab folder: {where}: {exc.strerror or exc}; make "
                       f"{out_dir} writable by you (or choose another folder)") from None


def _write_lab(lab: Lab, out_dir: Path, old_nodes: Mapping[str, Any], *, regenerate: bool,
               image: str, home: str | None) -> RenderedLab:
    # Every path this render may write or remove, checked before the first write.
    node_rels = [rel for n in lab.nodes for p in (node_paths(n),)
                 for rel in (*p.managed, p.secrets, p.trusted_certs, p.ssl)]
    for rel in (STATE_DIR, SECRETS_STORE, LAB_ID, LAB_HOME, LAST_RUN_JSON, LAST_RUN_XML,
                WRITTEN, MANIFEST, ADMIN_TOKEN, ".env", "docker-compose.yml", *node_rels):
        inside(out_dir, rel)
    folder = LabFolder(out_dir)
    sec = ensure_secrets(lab, None if regenerate else folder.secrets())
    owned = written_files(out_dir)
    # 0700 for a folder this render makes (or finds empty): node keys are 0644 for the
    # container's `git` user. A folder of the user's (--force) keeps the mode they gave it.
    if not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        chmod_folder(out_dir, 0o700)
    (out_dir / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
    if folder.id is None:
        write_file(out_dir / LAB_ID, new_id() + "\n", PUBLIC)
    if home is not None:
        write_file(out_dir / LAB_HOME, home + "\n", PUBLIC)
    owner = folder.owner
    files = render_files(lab, sec, image, str(out_dir), owner)
    for f in files:
        inside(out_dir, f.path)
    write_file(out_dir / SECRETS_STORE, json.dumps(sec.to_json(), indent=2) + "\n", SECRET)

    # Forget what an earlier render wrote that this one does not: only files a render
    # recorded writing here, never one a manifest.json merely names.
    wanted = {f.path for f in files}
    for name in set(old_nodes) - {n.name for n in lab.nodes}:
        _remove_node(out_dir, name, owned)
    for node in lab.nodes:
        paths = node_paths(node)
        for rel in paths.managed:
            if rel in owned and rel not in wanted and inside(out_dir, rel).is_file():
                (out_dir / rel).unlink()
        secrets_file = inside(out_dir, paths.secrets)
        was = (old_nodes.get(node.name) or {}).get("secrets_policy")
        # A `none` node keeps the file it generated itself while it stays `none`.
        if node.secrets is SecretsPolicy.NONE and was != SecretsPolicy.NONE.value \
                and paths.secrets in owned and secrets_file.is_file():
            secrets_file.unlink()
    # Recorded before the files are written: a render stopped half-way still knows them.
    kept = {rel for rel in owned if rel not in wanted and inside(out_dir, rel).is_file()}
    write_file(out_dir / WRITTEN, json.dumps(sorted(kept | wanted), indent=1) + "\n", PUBLIC)
    secrets_files = {node_paths(n).secrets for n in lab.nodes}
    for f in files:
        content = f.content
        if f.path in secrets_files and not regenerate:
            content = _with_written_back(out_dir, f.path, content)
        write_file(out_dir / f.path, content, f.mode)
    for node in lab.nodes:
        paths = node_paths(node)
        for rel in (paths.dir, paths.trusted_certs, paths.ssl):
            if inside(out_dir, rel).is_dir():
                # Omnibus services (not root) read trusted-certs and ssl inside the container.
                chmod_folder(out_dir / rel, 0o755)
    return RenderedLab(lab=lab, path=out_dir, secrets=sec, image=image,
                       files=tuple(f.path for f in files), owner=owner,
                       contents={f.path: f.content for f in files})
