#!/usr/bin/env python3
"""Turn Omnibus reference material into the per-release key sets in lab/omnibus/data/.

usage: python3 scripts/omnibus_keys.py [REFERENCE_DIR] [--omnibus-git GIT_DIR]
       (REFERENCE_DIR default ../shared/reference; GIT_DIR: a clone of omnibus-gitlab)

A setting is valid in a release when its release's gitlab.rb.template shows it
(commented or not) or its cookbooks' attributes/*.rb define it (omnibus-attributes/
<release>.txt). Each output file lists, one per line, the top-level names
(`gitaly`, `external_url`) and the `name.key` pairs (`gitaly.listen_addr`) of one
release. The output is committed, so tests check keys on any clone.

With --omnibus-git, the top-level names each release declares in
files/gitlab-cookbooks/package/libraries/config/*.rb (`attribute('git_data_dirs')`,
`role('application')` -> application_role, ...) are added: some (unicorn from 15.x,
git_data_dirs in 17.11+) are settings no template or attributes file shows.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "lab" / "omnibus" / "data"
# `name['key'] =`, commented or not; the 11.11 template's `gitaly['tls_listen_addr] =` typo
# is covered by the attributes list.
SETTING = re.compile(r"^(?:#\s*)?([a-z_]+)\['([a-z_0-9]+)'\]", re.MULTILINE)
# Top-level calls: external_url 'x', registry_external_url 'x', roles [...], git_data_dirs({...}).
CALL = re.compile(r"^(?:#\s*)?((?:[a-z_]+_)?external_url|roles|git_data_dirs)\b", re.MULTILINE)
# Attribute roots that Omnibus nests under a block (package/libraries/deprecations.rb,
# ATTRIBUTE_BLOCKS): gitlab.nginx.x is nginx['x'] in gitlab.rb.
BLOCKS = ("gitlab", "monitoring")


def template_keys(text: str) -> set[str]:
    keys = {f"{a}.{b}" for a, b in SETTING.findall(text)}
    keys |= {a for a, _ in SETTING.findall(text)}
    keys |= set(CALL.findall(text))
    return keys


NESTED_KEY = re.compile(r"^(\s*)([a-z_]+):")
# A list item written on one line as an inline hash, e.g. `{ name: 'x', path: 'y' },`.
INLINE_HASH = re.compile(r"^\s*\{(.*)\},?\s*(?:#.*)?$")
INLINE_KEY = re.compile(r"(?:^|,)\s*([a-z_]+):\s")
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
CONFIGURATION = "gitaly['configuration'] = {"
PRAEFECT_CONFIGURATION = "praefect['configuration'] = {"


def nested_keys(lines: list[str]) -> set[str]:
    """Dotted key paths of a Ruby symbol-key hash written one key per line."""
    out: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in lines:
        inline = INLINE_HASH.match(line)
        if inline:
            # Keys of an inline hash belong to the enclosing key (a list of hashes).
            indent = len(line) - len(line.lstrip())
            parent = [k for level, k in stack if level < indent]
            body = QUOTED.sub("''", inline[1])
            out |= {".".join([*parent, key]) for key in INLINE_KEY.findall(body)}
            continue
        m = NESTED_KEY.match(line)
        if not m:
            continue
        indent, key = len(m[1]), m[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        out.add(".".join([k for _, k in stack] + [key]))
        if line.rstrip().endswith(("{", "[")):
            stack.append((indent, key))
    return out


def block(text: str, opener: str, commented: bool) -> list[str]:
    """The lines of the hash assigned by ``opener`` (e.g. gitaly['configuration'])."""
    prefix = "# " if commented else ""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(prefix + opener)), None)
    if start is None:
        return []
    out = []
    for line in lines[start + 1:]:
        body = line[len(prefix):] if commented else line
        if body.startswith("}"):
            break
        out.append(body)
    return out


def configuration_keys(text: str, storage_entry: set[str]) -> set[str]:
    """gitaly.configuration.<path> for the template's example gitaly['configuration'] hash."""
    keys = nested_keys(block(text, CONFIGURATION, True))
    if not keys:
        return set()
    # The 15.11 and 16.11 templates leave the storage list out of their example although
    # it replaced git_data_dirs on Gitaly nodes in 15.10; its entry keys come from the
    # newest template that shows one.
    keys |= {"storage"} | storage_entry
    return {f"gitaly.configuration.{k}" for k in keys}


def attribute_keys(text: str) -> set[str]:
    keys: set[str] = set()
    for line in text.split():
        parts = line.strip().split(".")
        if parts[0] in BLOCKS and len(parts) > 1:
            parts = parts[1:]
        parts[0] = parts[0].replace("-", "_")
        keys.add(parts[0])
        if len(parts) > 1:
            keys.add(f"{parts[0]}.{parts[1]}")
    return keys


DECLARED = re.compile(r"\b(ee_attribute|attribute|role)\('([a-z_]+)'")


def declared_names(git_dir: Path, release: str) -> set[str]:
    """Top-level names release ``release`` declares in its package/libraries/config/*.rb."""
    tag = f"{release}+ce.0"
    folder = "files/gitlab-cookbooks/package/libraries/config/"
    listing = subprocess.run(["git", "-C", str(git_dir), "ls-tree", "-r", "--name-only", tag,
                              folder], capture_output=True, text=True, check=True).stdout
    names: set[str] = set()
    for path in listing.split():
        if not path.endswith(".rb"):
            continue
        text = subprocess.run(["git", "-C", str(git_dir), "show", f"{tag}:{path}"],
                              capture_output=True, text=True, check=True).stdout
        names |= {f"{n}_role" if kind == "role" else n for kind, n in DECLARED.findall(text)}
    return names


def main(argv: list[str]) -> int:
    git_dir: Path | None = None
    if "--omnibus-git" in argv:
        i = argv.index("--omnibus-git")
        git_dir = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    ref = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "reference"
    templates = {p.name.removeprefix("gitlab.rb.template-"): p
                 for folder in ("omnibus", "omnibus-early")
                 for p in (ref / folder).glob("gitlab.rb.template-*")}
    attributes = {p.stem: p for p in (ref / "omnibus-attributes").glob("*.txt")}
    releases = sorted(set(templates) & set(attributes),
                      key=lambda v: tuple(int(x) for x in v.split(".")))
    if not releases:
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    storage_entry: set[str] = set()
    for release in releases:
        shown = nested_keys(block(templates[release].read_text(), CONFIGURATION, True))
        storage_entry |= {k for k in shown if k.startswith("storage.")}
    # praefect['configuration'] came with 15.9 (its attributes list it) while the 15.9
    # template still shows the legacy keys; Praefect's own structure (listen_addr, auth.token,
    # database.*, virtual_storage.node.*) is what 15.9's remap_legacy_values writes, so a
    # release that has the key takes the paths the templates from 15.10 on show.
    praefect_shown: set[str] = set()
    for release in releases:
        praefect_shown |= nested_keys(block(templates[release].read_text(),
                                            PRAEFECT_CONFIGURATION, True))
    for release in releases:
        keys = template_keys(templates[release].read_text())
        keys |= configuration_keys(templates[release].read_text(), storage_entry)
        keys |= attribute_keys(attributes[release].read_text())
        if "praefect.configuration" in keys:
            keys |= {f"praefect.configuration.{k}" for k in praefect_shown}
        if git_dir is not None:
            keys |= declared_names(git_dir, release)
        body = "".join(f"{k}\n" for k in sorted(keys))
        (OUT / f"keys-{release}.txt").write_text(
            f"# Omnibus GitLab {release}: template + attributes{' + config' if git_dir else ''}"
            " (scripts/omnibus_keys.py)\n" + body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
