"""Every setting a generated gitlab.rb assigns exists in that release's Omnibus template.

Unknown keys abort `gitlab-ctl reconfigure`, so this is the check that keeps the
renderer honest for every built-in topology x every reference release.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import fixed_secrets, reference_templates, skip_or_fail

from lab.render.gitlab_rb import render_gitlab_rb
from lab.spec import SpecRequest, resolve
from lab.topologies import TOPOLOGIES

# Omnibus attributes that GitLab's Gitaly guide documents but a template does
# not list. Each is a known fact, kept short on purpose.
NOT_IN_TEMPLATE = {
    # The guide's "Without this, git push will fail"; an Omnibus attribute in every release.
    "gitlab_rails['internal_api_url']",
    # The guide disables Sidekiq on Gitaly nodes; templates list it only from 16.x.
    "sidekiq['enable']",
}

# Inside gitaly['configuration']: the storage list replaced git_data_dirs on Gitaly
# nodes with the new dialect (15.10; required from 16.0), but the 15.11 and 16.11
# templates do not show it in their example hash. Its entries' keys are still
# checked, against the newest template that shows them (see storage_entry_keys).
NESTED_NOT_IN_TEMPLATE = {"storage"}

SETTING = re.compile(r"^(?:#\s*)?([a-z_]+)\['([a-z_]+)'\]\s*=", re.MULTILINE)
CALL = re.compile(r"^(?:#\s*)?(git_data_dirs|roles|external_url)\b", re.MULTILINE)
NESTED_KEY = re.compile(r"^(\s*)([a-z_]+):")
# A list item written on one line as an inline hash, e.g. `{ name: 'x', path: 'y' },`.
INLINE_HASH = re.compile(r"^\s*\{(.*)\},?\s*(?:#.*)?$")
INLINE_KEY = re.compile(r"(?:^|,)\s*([a-z_]+):\s")
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def template_settings(text: str) -> set[str]:
    found = {f"{a}['{b}']" for a, b in SETTING.findall(text)}
    found |= set(CALL.findall(text))
    return found


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
    start = next(i for i, line in enumerate(lines) if line.startswith(prefix + opener))
    out = []
    for line in lines[start + 1:]:
        body = line[len(prefix):] if commented else line
        if body.startswith("}"):
            break
        out.append(body)
    return out


def storage_entry_keys(reference: dict[str, Path]) -> set[str]:
    """The keys of a gitaly['configuration'] storage entry, from the templates that show one."""
    out: set[str] = set()
    for path in reference.values():
        text = path.read_text()
        if "# gitaly['configuration'] = {" in text:
            keys = nested_keys(block(text, "gitaly['configuration'] = {", True))
            out |= {k for k in keys if k.startswith("storage.")}
    return out


def generated(topology: str, version: str, tls: bool) -> dict[str, str]:
    sets = ("tls=true",) if tls else ()
    lab = resolve(SpecRequest(topology=topology, version=version, flavor="omnibus", sets=sets))
    sec = fixed_secrets(lab)
    return {n.name: render_gitlab_rb(lab, n, sec.gitaly_token) for n in lab.nodes}


CASES = [(t, v, tls) for t in TOPOLOGIES for v in reference_templates() for tls in (False, True)]


@pytest.mark.parametrize(("topology", "version", "tls"), CASES,
                         ids=[f"{t}-{v}-{'tls' if tls else 'tcp'}" for t, v, tls in CASES])
def test_every_setting_exists_in_the_template(reference: dict[str, Path], topology: str,
                                              version: str, tls: bool) -> None:
    template = reference[version].read_text()
    known = template_settings(template) | NOT_IN_TEMPLATE
    for node, text in generated(topology, version, tls).items():
        used = template_settings(text)
        missing = sorted(used - known)
        assert not missing, f"{node}: not in gitlab.rb.template-{version}: {missing}"
        if "gitaly['configuration']" in used:
            allowed = nested_keys(block(template, "gitaly['configuration'] = {", True)) \
                | NESTED_NOT_IN_TEMPLATE | storage_entry_keys(reference)
            ours = nested_keys(block(text, "gitaly['configuration'] = {", False))
            assert {"storage.name", "storage.path"} <= ours
            assert not ours - allowed, f"{node}: {sorted(ours - allowed)}"
        if "roles" in used:
            assert "gitaly_role" in template
        if "gitlab_rails['repositories_storages']" in used:
            assert "'gitaly_address' =>" in template


def test_the_check_fails_on_a_key_the_template_lacks(reference: dict[str, Path]) -> None:
    # The legacy key does not exist in 16.11+; the check above must notice such a key.
    template = reference["19.3.0"].read_text()
    assert "gitaly['auth_token']" not in template_settings(template)
    assert "gitaly['auth_token']" in template_settings("gitaly['auth_token'] = 'x'\n")
    assert "gitaly['auth_token']" in template_settings(reference["15.9.8"].read_text())
    template_1311 = template_settings(reference["13.12.15"].read_text())
    assert "unicorn['enable']" in template_1311
    assert "unicorn['enable']" not in template_settings(reference["15.11.13"].read_text())


def test_nested_key_parser() -> None:
    lines = ["  listen_addr: 'x',", "  tls: {", "    certificate_path: 'y',", "  },",
             "  auth: {", "    token: 'z',", "  },"]
    assert nested_keys(lines) == {"listen_addr", "tls", "tls.certificate_path", "auth",
                                  "auth.token"}
    # Storage entries, inline (as rendered) and one key per line (as the templates show them).
    inline = ["  storage: [", "    { name: 'a:b', path: '/x, y: z' },", "  ],"]
    assert nested_keys(inline) == {"storage", "storage.name", "storage.path"}
    multi = ["  storage: [", "    {", "      name: 'gitaly-1',", "      path: '/p',", "    },",
             "  ],"]
    assert nested_keys(multi) == {"storage", "storage.name", "storage.path"}


def test_the_check_fails_on_a_wrong_storage_key(reference: dict[str, Path]) -> None:
    allowed = storage_entry_keys(reference)
    assert allowed == {"storage.name", "storage.path"}
    wrong = nested_keys(["  storage: [", "    { name: 'default', dir: '/x' },", "  ],"])
    assert wrong - allowed - NESTED_NOT_IN_TEMPLATE == {"storage.dir"}


@pytest.mark.parametrize(("topology", "version", "tls"), CASES,
                         ids=[f"{t}-{v}-{'tls' if tls else 'tcp'}" for t, v, tls in CASES])
def test_ruby_accepts_the_file(tmp_path: Path, topology: str, version: str, tls: bool) -> None:
    if shutil.which("ruby") is None:
        skip_or_fail("ruby is not installed (apt-get install ruby)")
    for node, text in generated(topology, version, tls).items():
        path = tmp_path / f"{node}.rb"
        path.write_text(text)
        result = subprocess.run(["ruby", "-c", str(path)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, f"{node}: {result.stderr}"
