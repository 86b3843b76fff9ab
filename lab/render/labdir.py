"""A lab directory: every rendered file of a lab, in one folder a user can read and run.

``render_files`` is pure; ``write_lab`` puts its result on disk, keeping the lab's
secrets from an earlier render unless asked to regenerate them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import __version__
from lab.errors import LabError
from lab.model import Lab, Node, SecretsPolicy
from lab.render.compose import render_compose
from lab.render.gitlab_rb import node_token, render_gitlab_rb
from lab.render.secrets import (
    LabSecrets,
    dump_secrets_json,
    ensure_secrets,
    fingerprint,
    shell_secret,
)
from lab.spec import resolved_spec

MANIFEST = "manifest.json"
STATE_DIR = ".lab"
SECRETS_STORE = f"{STATE_DIR}/secrets.json"
# Where `lab run` leaves its last results for a lab, for `lab collect` to bundle.
LAST_RUN_JSON = f"{STATE_DIR}/last-run.json"
LAST_RUN_XML = f"{STATE_DIR}/last-run.xml"
ADMIN_TOKEN = "admin-token"
CA_FILE = "lab-ca.crt"

SECRET = 0o600
PUBLIC = 0o644


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
            "gitaly_token_sha256": fingerprint(node_token(sec.gitaly_token, node)),
        }
        if node.is_gitaly:
            entry["storages"] = {s.name: s.repositories_path for s in node.storages}
            if node.gitaly_only:
                entry["gitaly_address"] = node.gitaly_address
            entry["tls"] = node.tls
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


def render_files(lab: Lab, sec: LabSecrets, image: str, lab_dir: str) -> list[RenderedFile]:
    """Every file of the lab directory, as data."""
    files = [
        RenderedFile("docker-compose.yml", render_compose(lab, image, lab_dir), PUBLIC),
        RenderedFile(".env", f"COMPOSE_PROJECT_NAME={lab.project_name}\n", PUBLIC),
        RenderedFile(MANIFEST, json.dumps(manifest(lab, sec, image), indent=2) + "\n", PUBLIC),
        RenderedFile(ADMIN_TOKEN, sec.admin_token + "\n", SECRET),
    ]
    for node in lab.nodes:
        paths = node_paths(node)
        files.append(RenderedFile(paths.gitlab_rb, render_gitlab_rb(lab, node, sec.gitaly_token),
                                  SECRET))
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
    return files


def load_secrets(lab_dir: Path) -> LabSecrets | None:
    path = lab_dir / SECRETS_STORE
    if not path.exists():
        return None
    try:
        return LabSecrets.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise LabError(f"{path} is damaged ({exc}); render again with --regenerate to make "
                       "new secrets for this lab") from None


def load_manifest(lab_dir: Path) -> dict[str, Any] | None:
    path = lab_dir / MANIFEST
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def write_file(path: Path, content: str, mode: int) -> None:
    """Atomically, with ``mode`` from the start: a secret is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass(frozen=True)
class RenderedLab:
    lab: Lab
    path: Path
    secrets: LabSecrets
    image: str
    files: tuple[str, ...]


def write_lab(lab: Lab, out_dir: Path, *, image: str, regenerate: bool = False) -> RenderedLab:
    """Render ``lab`` into ``out_dir``; keeps its secrets from a previous render.

    ``image`` is data (lab.engine.images.image_for): rendering never asks the engine.
    """
    out_dir = out_dir.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise LabError(f"{out_dir} exists and is not a directory; choose another -o")
    previous = load_manifest(out_dir)
    if previous is not None and previous.get("name") not in (None, lab.name) and not regenerate:
        raise LabError(f"{out_dir} holds lab {previous.get('name')!r}, not {lab.name!r}; "
                       "choose another directory or pass --regenerate to replace it")
    sec = ensure_secrets(lab, None if regenerate else load_secrets(out_dir))
    files = render_files(lab, sec, image, str(out_dir))

    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    (out_dir / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
    write_file(out_dir / SECRETS_STORE, json.dumps(sec.to_json(), indent=2) + "\n", SECRET)

    # Forget what an earlier render wrote that this one does not.
    wanted = {f.path for f in files}
    old_nodes: dict[str, Any] = (previous or {}).get("nodes", {})
    for name in set(old_nodes) - {n.name for n in lab.nodes}:
        shutil.rmtree(out_dir / node_paths(name).dir, ignore_errors=True)
    for node in lab.nodes:
        paths = node_paths(node)
        for rel in paths.managed:
            if rel not in wanted and (out_dir / rel).exists():
                (out_dir / rel).unlink()
        secrets_file = out_dir / paths.secrets
        was = old_nodes.get(node.name, {}).get("secrets_policy")
        # A `none` node keeps the file it generated itself while it stays `none`.
        if node.secrets is SecretsPolicy.NONE and was != SecretsPolicy.NONE.value \
                and secrets_file.exists():
            secrets_file.unlink()
    for f in files:
        write_file(out_dir / f.path, f.content, f.mode)
    for node in lab.nodes:
        paths = node_paths(node)
        for rel in (paths.dir, paths.trusted_certs, paths.ssl):
            if (out_dir / rel).is_dir():
                # Omnibus services (not root) read trusted-certs and ssl inside the container.
                os.chmod(out_dir / rel, 0o755)
    return RenderedLab(lab=lab, path=out_dir, secrets=sec, image=image,
                       files=tuple(f.path for f in files))
