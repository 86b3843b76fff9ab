"""Every setting a generated gitlab.rb assigns exists in that release's Omnibus.

Unknown names abort `gitlab-ctl reconfigure`, so this is the check that keeps the
renderer honest for every built-in topology x every reference release, from the
key data committed in lab/omnibus/data/ (scripts/omnibus_keys.py made it from each
release's gitlab.rb.template and attribute lists). It runs on any clone.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT, fixed_secrets, skip_or_fail

from lab.omnibus import keys
from lab.omnibus.praefect import cluster_unsupported
from lab.omnibus.release import REFERENCE_RELEASES, Version
from lab.render.gitlab_rb import render_gitlab_rb
from lab.spec.labspec import SpecRequest, resolve
from lab.spec.topologies import TOPOLOGIES

SETTING = re.compile(r"^([a-z_]+)\['([a-z_]+)'\]\s*=", re.MULTILINE)
CALL = re.compile(r"^(git_data_dirs|roles|external_url)\b", re.MULTILINE)
SHARED = ROOT.parent / "shared" / "reference"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("omnibus_keys", ROOT / "scripts" /
                                                  "omnibus_keys.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated(topology: str, version: str, tls: bool) -> dict[str, str]:
    sets = ("tls=true",) if tls else ()
    lab = resolve(SpecRequest(topology=topology, version=version, flavor="omnibus", sets=sets))
    sec = fixed_secrets(lab)
    return {n.name: render_gitlab_rb(lab, n, sec.gitaly_token, sec) for n in lab.nodes}


def problems(text: str, version: str) -> list[str]:
    """Names, keys and gitaly['configuration'] paths of ``text`` unknown to ``version``."""
    v = Version.parse(version)
    data = keys._load(version)
    out = [f"{name}['{key}']" for name, key in SETTING.findall(text)
           if not keys.known_key(name, key, v)]
    out += [call for call in CALL.findall(text) if not keys.known_top(call, v)]
    for name in ("gitaly", "praefect"):
        if f"{name}['configuration'] = {{" in text:
            conf = script().nested_keys(script().block(text, f"{name}['configuration'] = {{",
                                                       False))
            out += [f"{name}['configuration'].{k}" for k in sorted(conf)
                    if f"{name}.configuration.{k}" not in data]
    return out


CASES = [(t, v, tls) for t in TOPOLOGIES for v in REFERENCE_RELEASES for tls in (False, True)
         if not (t == "cluster" and cluster_unsupported(Version.parse(v)))]


@pytest.mark.parametrize(("topology", "version", "tls"), CASES,
                         ids=[f"{t}-{v}-{'tls' if tls else 'tcp'}" for t, v, tls in CASES])
def test_every_setting_exists_in_the_release(topology: str, version: str, tls: bool) -> None:
    for node, text in generated(topology, version, tls).items():
        assert not problems(text, version), f"{node}: not in Omnibus {version}"
        if "roles(['gitaly_role'])" in text:
            assert Version.parse(version).at_least("17.6.0")  # role('gitaly') came in 17.6


def test_the_check_fails_on_a_key_the_release_lacks() -> None:
    assert problems("gitaly['auth_token'] = 'x'\n", "19.3.0") == ["gitaly['auth_token']"]
    assert problems("gitaly['auth_token'] = 'x'\n", "15.9.8") == []
    assert problems("unicorn['enable'] = false\n", "13.12.15") == []
    assert problems("gitlab_monitor['enable'] = false\n", "13.12.15") == \
        ["gitlab_monitor['enable']"]
    assert problems("gitlab_monitor['enable'] = false\n", "11.11.8") == []
    assert problems("grafana['enable'] = false\n", "19.3.0") == ["grafana['enable']"]
    assert problems("git_data_dirs({})\n", "19.3.0") == []  # a removal there, not unknown
    wrong = ("gitaly['configuration'] = {\n  storage: [\n    { name: 'default', dir: '/x' },\n"
             "  ],\n}\n")
    assert problems(wrong, "19.3.0") == ["gitaly['configuration'].storage.dir"]
    praefect = ("praefect['configuration'] = {\n  virtual_storage: [\n    {\n      name: 'x',\n"
                "      node: [\n        { storage: 'a', address: 'b', tokn: 'c' },\n      ],\n"
                "    },\n  ],\n}\n")
    assert problems(praefect, "19.3.0") == ["praefect['configuration'].virtual_storage.node.tokn"]
    assert problems("praefect['auth_token'] = 'x'\n", "13.12.15") == []
    assert problems("praefect['auth_token'] = 'x'\n", "16.11.10") == ["praefect['auth_token']"]


def test_nested_key_parser() -> None:
    nested_keys = script().nested_keys
    lines = ["  listen_addr: 'x',", "  tls: {", "    certificate_path: 'y',", "  },",
             "  auth: {", "    token: 'z',", "  },"]
    assert nested_keys(lines) == {"listen_addr", "tls", "tls.certificate_path", "auth",
                                  "auth.token"}
    inline = ["  storage: [", "    { name: 'a:b', path: '/x, y: z' },", "  ],"]
    assert nested_keys(inline) == {"storage", "storage.name", "storage.path"}
    multi = ["  storage: [", "    {", "      name: 'gitaly-1',", "      path: '/p',", "    },",
             "  ],"]
    assert nested_keys(multi) == {"storage", "storage.name", "storage.path"}


def test_committed_key_data_matches_the_reference(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ../shared/reference exists (CI, our machines), the data is regenerated and
    must hold all of it (the committed files also carry the names omnibus-gitlab's
    config/*.rb declares, from --omnibus-git); a clone without it checks the files."""
    data = ROOT / "lab" / "omnibus" / "data"
    assert sorted(p.name for p in data.glob("keys-*.txt")) == \
        sorted(f"keys-{r}.txt" for r in REFERENCE_RELEASES)
    if not SHARED.is_dir():
        return
    module = script()
    monkeypatch.setattr(module, "OUT", tmp_path)
    assert module.main(["omnibus_keys.py", str(SHARED)]) == 0
    for path in data.glob("keys-*.txt"):
        fresh = set((tmp_path / path.name).read_text().splitlines()[1:])
        assert fresh <= set(path.read_text().splitlines()[1:]), path.name


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
