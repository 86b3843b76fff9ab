"""`lab collect`: one tar.gz with the evidence of a lab, safe to attach to a ticket.

Every text that goes in passes ``Redaction``: each secret value the lab knows
(tokens, gitlab-secrets.json values and private keys from ``.lab/secrets.json``,
and every gitlab-secrets.json read inside the containers) is replaced, and so is
anything shaped like a token or a key; certificates are public and stay. The
bundle carries per-node *hashes* of each secret instead, so a mismatch shows
without leaking. After writing, the bundle is searched for every known value
and refused if one is found.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lab import __version__
from lab.engine.redaction import Redaction, lab_redaction, redacted_secrets_json
from lab.errors import BadInput, LabError
from lab.lifecycle.contract import LabHandle
from lab.model.topology import Lab
from lab.omnibus import praefect as pf
from lab.omnibus.node import status_cmd
from lab.render.diagram import Hashes, markdown, mismatches, rendered_hashes
from lab.render.gitlab_rb import token_of
from lab.render.secrets import fingerprint, shell_secret
from lab.spec.yamlfile import files_below
from lab.store.lab_folder import LabFolder
from lab.store.layout import (
    ADMIN_TOKEN,
    LAST_RUN_JSON,
    LAST_RUN_XML,
    MANIFEST,
    STATE_DIR,
    read_no_links,
)
from lab.support.doctor import doctor
from lab.support.doctor.checks import Level, Report
from lab.support.doctor.facts import Gathered, HostFacts
from lab.support.doctor.format import format_text, gathered_json
from lab.support.doctor.gather import node_states

T = TypeVar("T")
LOG_TAIL = 5000  # container log lines per node
FILE_TAIL = 2000  # lines per file under /var/log/gitlab
LAST_RESULTS = (LAST_RUN_JSON, LAST_RUN_XML)

def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, str):
        out[prefix] = data
    return out


def hash_table(per_node: Mapping[str, Mapping[str, Any]], tokens: Mapping[str, str],
               internal: Mapping[str, str] | None = None) -> dict[str, dict[str, str | None]]:
    """secret key -> node -> fingerprint (None where the node has no such value).
    ``internal``: Gitaly Cluster's internal token, as Praefect sends it and as each Gitaly
    node behind it accepts it (its own row: it differs from the external one by design)."""
    flat = {node: _flatten(data) for node, data in per_node.items()}
    keys = sorted({k for f in flat.values() for k in f})
    nodes = sorted(set(per_node) | set(tokens) | set(internal or {}))
    table: dict[str, dict[str, str | None]] = {}
    for key in keys:
        table[key] = {n: fingerprint(flat[n][key]) if key in flat.get(n, {}) else None
                      for n in nodes}
    table["gitlab.rb gitaly token"] = {n: fingerprint(tokens[n]) if n in tokens else None
                                       for n in nodes}
    if internal:
        table["praefect internal token"] = {n: fingerprint(internal[n]) if n in internal
                                            else None for n in nodes}
    return table


def format_hash_table(table: Mapping[str, Mapping[str, str | None]], source: str) -> str:
    nodes = sorted({n for row in table.values() for n in row})
    lines = [f"# Secret hashes per node ({source})", "",
             "Each cell is `sha256:` + the first 16 hex digits of the value's SHA-256. Equal "
             "cells mean equal secrets; `-` means the node has no such value. The values "
             "themselves are not in this bundle.", "",
             "| secret | " + " | ".join(nodes) + " | same everywhere |",
             "|---|" + "---|" * len(nodes) + "---|"]
    for key, row in table.items():
        present = [row.get(n) for n in nodes if row.get(n)]
        same = "yes" if len(set(present)) <= 1 and len(present) == len(nodes) else "**NO**"
        cells = [f"`{row.get(n)}`" if row.get(n) else "-" for n in nodes]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {same} |")
    return "\n".join(lines) + "\n"


@dataclass
class Bundle:
    """Files to put in the archive (relative path -> text), all redacted on the way in."""

    redact: Redaction
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, path: str, text: str) -> None:
        self.files[path] = self.redact(text)

    def add_raw(self, path: str, text: str) -> None:
        """Text made here from hashes only (still checked for leaks at the end)."""
        self.files[path] = text

    def leaks(self) -> list[str]:
        return [f"{p}: {fp}" for p, text in self.files.items() for fp in self.redact.leaks(text)]

    def write(self, out: Path, top: str) -> None:
        leaks = self.leaks()
        if leaks:
            raise BadInput("refusing to write the bundle: secret values would leak ("
                           + "; ".join(leaks[:5]) + ")")
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            # 0600 from the start: a bundle is evidence from a customer's case.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
                for path in sorted(self.files, key=lambda p: (p != "SUMMARY.md", p)):
                    data = self.files[path].encode()
                    info = tarfile.TarInfo(f"{top}/{path}")
                    info.size = len(data)
                    info.mode = 0o644
                    info.mtime = int(dt.datetime.now(dt.UTC).timestamp())
                    tar.addfile(info, io.BytesIO(data))
            tmp.replace(out)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise BadInput(f"cannot write the bundle {out}: {exc.strerror or exc}; choose "
                           "another -o (a file in a folder you can write)") from None


def _safe(call: Callable[[], T], what: str, notes: list[str]) -> T | None:
    try:
        return call()
    except LabError as exc:
        notes.append(f"{what}: {str(exc).splitlines()[0]}")
        return None


def _lab_files(bundle: Bundle, lab_dir: Path) -> None:
    """The rendered lab directory, redacted; private keys and the secrets store left out."""
    # Walked without recursion and at most MAX_FOLDER_DEPTH deep: a node's folder is its
    # container's /etc/gitlab, where folders 1,000 deep were a RecursionError in rglob.
    for path in sorted(p for p in files_below(lab_dir, "the lab folder", skip_deeper=True)
                       if p.is_file()):
        rel = path.relative_to(lab_dir).as_posix()
        # .lab/ holds the secrets store and the spec with tokens; the manifest sits on top.
        if rel.startswith(f"{STATE_DIR}/") or rel in (ADMIN_TOKEN, MANIFEST):
            continue
        if path.is_symlink():
            # A node's folder is its container's /etc/gitlab: a link there may point at
            # any file of this host.
            bundle.add_raw(f"lab/{rel}", "[symbolic link left out: a lab folder holds only "
                           "files the toolkit wrote]\n")
            continue
        if path.suffix == ".key":
            bundle.add_raw(f"lab/{rel}", "[private key left out of the bundle]\n")
            continue
        try:
            text = read_no_links(lab_dir, rel)
        except (OSError, UnicodeDecodeError):
            continue
        if path.name == "gitlab-secrets.json":
            try:
                data = json.loads(text)
            except ValueError:
                bundle.add(f"lab/{rel}", text)
                continue
            bundle.add(f"lab/{rel}", json.dumps(redacted_secrets_json(data), indent=2) + "\n")
            continue
        bundle.add(f"lab/{rel}", text)


def _scenario_results(bundle: Bundle, lab_dir: Path) -> bool:
    found = False
    for rel in LAST_RESULTS:
        try:
            # Never through a link: .lab/last-run.json made a link would bring a host file.
            bundle.add(f"scenarios/{rel}", read_no_links(lab_dir, rel))
            found = True
        except (OSError, UnicodeDecodeError):
            continue
    return found


LOG_DIR = "/var/log/gitlab"
_TAIL_HEADER = re.compile(rf"^==> ({re.escape(LOG_DIR)}/.+) <==$", re.MULTILINE)


# Rotated logs that logrotate compressed: decompressed, then tailed, under the same
# "==> path <==" header `tail -v` prints, so split_tails reads both alike.
_GZ_TAILS = ('for f; do printf "\\n==> %s <==\\n" "$f"; gzip -dc -- "$f" 2>/dev/null '
             '| tail -n "$0"; done')


def log_files_cmd() -> list[str]:
    """Every log file under /var/log/gitlab, tailed, in one exec (tail -v names each)."""
    script = ('find "$0" -type f -size -50M ! -name "*.gz" -exec tail -v -n "$1" {} +; '
              'find "$0" -type f -size -50M -name "*.gz" -exec sh -c "$2" "$1" {} +')
    return ["sh", "-c", script, LOG_DIR, str(FILE_TAIL), _GZ_TAILS]


def split_tails(text: str) -> dict[str, str]:
    """``tail -v`` output of several files -> path relative to /var/log/gitlab -> lines."""
    out: dict[str, str] = {}
    # A header naming ".." (a log line or a file name shaped like one: the container's
    # root writes /var/log/gitlab) would put a member outside the bundle's folder.
    heads = [h for h in _TAIL_HEADER.finditer(text)
             if all(p not in ("", ".", "..") for p in h[1].removeprefix(f"{LOG_DIR}/").split("/"))]
    for i, head in enumerate(heads):
        if i + 1 < len(heads):
            # tail puts one empty line before every header but the first.
            body = text[head.end() + 1:heads[i + 1].start()].removesuffix("\n")
        else:
            body = text[head.end() + 1:]
        # A .gz log arrives decompressed: its bundle name must not claim gzip.
        out[head[1].removeprefix(f"{LOG_DIR}/").removesuffix(".gz")] = body
    return out


def node_log_files(handle: LabHandle, node: str, notes: list[str]) -> dict[str, str]:
    """/var/log/gitlab/*/current (and friends) from inside the node, tailed."""
    res = handle.exec(node, log_files_cmd(), check=False, timeout=60)
    out = split_tails(res.stdout)
    if res.returncode != 0 and not out:
        notes.append(f"{node}: could not read {LOG_DIR}")
    return out


def versions(host: HostFacts, image: str | None, notes: list[str]) -> dict[str, Any]:
    """Toolkit, Docker and Compose (as doctor found them) and the image."""
    data: dict[str, Any] = {"toolkit": f"gitlab-testlab {__version__}"}
    data["docker"] = host.docker_version or f"unavailable: {host.docker_error}"
    data["compose"] = host.compose or f"unavailable: {host.compose_error}"
    if image:
        data["image"] = image
        if host.docker_version:
            from lab.engine import docker as dk

            try:
                img = dk.image(image)
            except LabError as exc:
                notes.append(f"image {image}: {exc}")
            else:
                if img is None:
                    notes.append(f"image {image}: not on this engine")
                else:
                    data["image_id"] = img.id
                    data["image_labels"] = dict(img.labels)
    if host.image_warning:
        data["image_warning"] = host.image_warning
    return data


def collect(handle: LabHandle, out: Path, *,
            doctor_result: tuple[Report, Gathered] | None = None) -> Path:
    """Write the bundle for lab ``handle`` (a ``RunningLab``) to ``out``; returns ``out``."""

    lab = handle.lab
    lab_dir: Path = handle.path
    sec = LabFolder(lab_dir).secrets() or handle.rendered.secrets
    notes: list[str] = []
    # Asked once: doctor, the node loop and status.json all use this answer.
    status = _safe(handle.status, "lab status", notes)
    states = node_states(status) if status is not None else {}

    # Doctor first: it reads each node's own gitlab-secrets.json, whose values must
    # be redacted too (a node with `secrets: none` made its own).
    report, gathered = doctor(handle, states=states) if doctor_result is None else doctor_result
    redact = lab_redaction(sec, gathered.secrets.values())
    bundle = Bundle(redact)

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    top = f"lab-{lab.name}-{stamp}"
    bundle.add("doctor.txt", format_text(report))
    bundle.add("doctor.json", json.dumps({**report.to_json(), "facts": gathered_json(gathered)},
                                         indent=2, default=str) + "\n")
    bundle.add("status.json", json.dumps(status.to_json() if status is not None else
                                         {"error": "lab status failed"},
                                         indent=2, default=str) + "\n")
    bundle.add("versions.json", json.dumps(versions(gathered.host, handle.rendered.image, notes),
                                           indent=2) + "\n")
    with contextlib.suppress(OSError, UnicodeDecodeError):
        bundle.add("manifest.json", read_no_links(lab_dir, MANIFEST))
    _lab_files(bundle, lab_dir)

    # The Gitaly token each side uses: the app's client token, each Gitaly node's and each
    # Praefect's auth token (a Gitaly node behind Praefect: the internal one).
    behind = {n.name for n in lab.cluster_gitaly_nodes}
    tokens = {n.name: token_of(lab, sec, n) for n in lab.nodes
              if (n.is_app and lab.external_gitaly_nodes) or n.is_praefect
              or (n.gitaly_only and n.name not in behind)}
    internal = {**{p.name: sec.praefect_token for p in lab.praefect_nodes},
                **{n: token_of(lab, sec, lab.node(n)) for n in behind}}
    rendered = {n.name: d for n in lab.nodes if (d := sec.for_node(n)) is not None}
    bundle.add_raw("secret-hashes.md",
                   format_hash_table(hash_table(rendered, tokens, internal), "as rendered in "
                                     "the lab directory") + "\n" +
                   (format_hash_table(hash_table(gathered.secrets, tokens, internal),
                                      "as read inside each running container")
                    if gathered.secrets else "No container was running: nothing read "
                    "from inside the nodes.\n"))
    bundle.add_raw("secret-hashes.json", json.dumps(
        {"rendered": hash_table(rendered, tokens, internal),
         "in_containers": hash_table(gathered.secrets, tokens, internal)
         if gathered.secrets else None},
        indent=2) + "\n")

    logged: list[str] = []
    for node in lab.nodes:
        base = f"nodes/{node.name}"
        if states.get(node.name, "missing") == "missing":
            notes.append(f"{node.name}: no container, so no logs")
            continue
        log = _safe(functools.partial(handle.logs, node.name, tail=LOG_TAIL),
                    f"{node.name} logs", notes)
        if log is not None:
            bundle.add(f"{base}/container.log", log)
            logged.append(node.name)
        if states.get(node.name) != "running":
            notes.append(f"{node.name}: {states.get(node.name)}, so no gitlab-ctl status or "
                         "/var/log/gitlab")
            continue
        st = _safe(functools.partial(_ctl_status, handle, node.name),
                   f"{node.name} gitlab-ctl status", notes)
        if st is not None:
            bundle.add(f"{base}/gitlab-ctl-status.txt", st)
        for rel, text in node_log_files(handle, node.name, notes).items():
            bundle.add(f"{base}/var-log-gitlab/{rel}", text)
        if node.name in gathered.secrets:
            bundle.add(f"{base}/gitlab-secrets.in-container.json",
                       json.dumps(redacted_secrets_json(gathered.secrets[node.name]),
                                  indent=2) + "\n")
    for node in lab.praefect_nodes:
        if states.get(node.name) == "running":
            for sub in pf.STATE_SUBCOMMANDS:
                state = _safe(functools.partial(_praefect_state, handle, node.name, sub),
                              f"{node.name} praefect {sub}", notes)
                if state is not None:
                    bundle.add(f"nodes/{node.name}/praefect-{sub}.txt", state)
    has_results = _scenario_results(bundle, lab_dir)
    # The picture uses what the nodes really hold where they could be read (a node
    # with `secrets: none` made its own file), else what the lab directory gave them.
    hashes = rendered_hashes(lab, sec)
    seen = {n: fingerprint(shell_secret(d)) for n, d in gathered.secrets.items()}
    picture = Hashes({**hashes.shell_secret, **seen}, hashes.gitaly_token,
                     hashes.internal_token)
    bundle.add_raw("SUMMARY.md", summary(lab, report, sorted(bundle.files), logged,
                                         has_results, notes, picture=picture,
                                         image_warning=gathered.host.image_warning))
    bundle.write(out, top)
    return out


def _praefect_state(handle: LabHandle, node: str, sub: str) -> str:
    """One of Praefect's own reports (its database, its Gitaly nodes, what is behind)."""
    res = handle.exec(node, pf.praefect_cmd(sub), check=False, timeout=120)
    return f"$ praefect {sub}   (exit {res.returncode})\n{res.stdout}{res.stderr}"


def _ctl_status(handle: LabHandle, node: str) -> str:
    res = handle.exec(node, status_cmd(), check=False, timeout=60)
    return f"$ gitlab-ctl status   (exit {res.returncode})\n{res.stdout}{res.stderr}"


def picture_section(lab: Lab, hashes: Hashes) -> list[str]:
    wrong = mismatches(lab, hashes)
    return ["## The lab", "",
            "Nodes, what the app dials, and whether both ends of each link hold the same "
            "secret (by hash; red: they differ).", "",
            markdown(lab, hashes),
            *(f"- **mismatch** {w}" for w in wrong), *([""] if wrong else [])]


def summary(lab: Lab, report: Report, files: Sequence[str], logged: Sequence[str],
            has_results: bool, notes: Sequence[str], *, picture: Hashes | None = None,
            image_warning: str = "") -> str:
    failing = [c for c in report.checks if c.level is Level.FAIL]
    lines = [
        f"# Support bundle: lab `{lab.name}`", "",
        *([f"**Not GitLab:** {image_warning}.", ""] if image_warning else []),
        f"GitLab {lab.version} ({lab.edition.value}), {lab.flavor.value} flavour, "
        f"{len(lab.nodes)} node(s): " + ", ".join(
            f"{n.name} ({'+'.join(r.value for r in n.roles)})" for n in lab.nodes) + ".",
        f"Made by gitlab-testlab {__version__} on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.", "",
        "Every secret value is redacted (`[REDACTED]`); `secret-hashes.md` shows per-node "
        "hashes of each value so a mismatch is visible without the values.", "",
        "## Doctor", "",
        "All checks passed." if not failing else
        "\n".join(f"- **FAIL** {c.scope}: {c.name}: {c.detail}" + (f" — {c.hint}" if c.hint
                                                                    else "")
                  for c in failing), "",
        *(picture_section(lab, picture) if picture is not None else []),
        "## Contents", "",
        "| file | what |", "|---|---|",
        "| doctor.txt, doctor.json | `lab doctor` checks (and the facts behind them) |",
        "| status.json | `lab status` |",
        "| versions.json | toolkit, Docker, Compose and image versions |",
        "| manifest.json | the lab's manifest (resolved spec, per-node hashes) |",
        "| secret-hashes.md / .json | per-node hashes of every secret value |",
        "| lab/ | the rendered lab directory (gitlab.rb, compose file, certificates), "
        "redacted |",
        "| nodes/NODE/container.log | the container's output |",
        "| nodes/NODE/gitlab-ctl-status.txt | `gitlab-ctl status` inside the node |",
        "| nodes/NODE/var-log-gitlab/ | /var/log/gitlab inside the node (tails) |",
    ]
    if has_results:
        lines.append("| scenarios/ | the last scenario results (`lab run`) |")
    lines += ["", f"Logs from: {', '.join(logged) or 'no node'}.",
              "Last scenario results: " + ("included." if has_results else "none found."), ""]
    if notes:
        lines += ["## Not collected", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Files", ""] + [f"- {f}" for f in [*files, "SUMMARY.md"]] + [""]
    return "\n".join(lines)
