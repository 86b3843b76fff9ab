"""Golden files: every file of a rendered lab folder, byte for byte, for the layouts the
guide describes: `scaled` across releases, Gitaly over TLS, `sharded`, a Gitaly node with
its own secrets, each also in the guide's own era where the dialect differs.

After a deliberate change to what is rendered:
``UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_golden.py`` rewrites the folders that
differ and skips those tests saying so; review ``git diff -- tests/golden``. With CI=true
the variable is refused (tests/conftest.py, .ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import GOLDEN, ROOT, fixed_secrets

from lab.model.topology import Lab
from lab.render.secrets import LabSecrets
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import render_files

UPDATE_HINT = "UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_golden.py"


@dataclass(frozen=True)
class Case:
    topology: str
    version: str
    sets: tuple[str, ...] = ()
    variant: str = ""  # names the overrides in the folder name

    @property
    def folder(self) -> str:
        return "-".join(part for part in (self.topology, self.variant, self.version) if part)

    def lab(self) -> Lab:
        return resolve(SpecRequest(topology=self.topology, version=self.version,
                                   flavor="omnibus", sets=self.sets))


TLS = ("tls=true",)
OWN = ("nodes.gitaly1.secrets=own",)
SOURCE = ("nodes.gitlab.install=source", "nodes.gitaly1.install=source")
CASES = (
    *(Case("scaled", v) for v in ("11.11.8", "12.10.14", "15.9.8", "17.11.7", "19.3.0")),
    # Legacy gitaly['tls_listen_addr'] and friends; then the gitaly['configuration'] tls block.
    Case("scaled", "12.10.14", TLS, "tls"),
    Case("scaled", "19.3.0", TLS, "tls"),
    # One storage per Gitaly node: the app's storage map names two addresses.
    Case("sharded", "12.10.14"),
    Case("sharded", "19.3.0"),
    # The Gitaly node's file differs from the app's (gitaly section from 17.5).
    Case("scaled", "12.10.14", OWN, "own-secrets"),
    Case("scaled", "19.3.0", OWN, "own-secrets"),
    # Gitaly Cluster in its three dialects: virtual_storages without a replication factor
    # (13.3-13.8), with one (13.9-15.8), praefect['configuration'] (15.9+), and over TLS.
    Case("cluster", "13.3.0"),
    Case("cluster", "13.12.15"),
    Case("cluster", "19.3.0"),
    Case("cluster", "19.3.0", TLS, "tls"),
    # Installed from source: Gitaly reads gitlab-shell's config.yml (before 13.0), then
    # [gitlab-shell] gitlab_url (13.0), then [gitlab] (13.1+); [gitaly-ruby] until 15.11.
    *(Case("scaled", v, SOURCE, "source") for v in ("12.10.14", "13.0.14", "13.12.15",
                                                     "19.3.0")),
)


def golden_secrets(lab: Lab) -> LabSecrets:
    """``fixed_secrets`` with a stand-in for each TLS file: certificates carry fresh keys and
    the time they were made (tests/unit/test_render.py checks real ones)."""
    sec = fixed_secrets(lab)
    for name in sec.tls:
        kind = "EC PRIVATE KEY" if name.endswith(".key") else "CERTIFICATE"
        sec.tls[name] = (f"-----BEGIN {kind}-----\nFIXED-FOR-GOLDEN-TESTS {name}\n"
                         f"-----END {kind}-----\n")
    return sec


def read_folder(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_text()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def compare_or_update(folder: Path, rendered: Mapping[str, str], update: bool) -> None:
    """Assert ``folder`` holds exactly ``rendered``; with ``update``, rewrite a folder that
    differs and skip, naming what changed (never a pass that compared nothing)."""
    golden = read_folder(folder)
    changed = sorted(p for p in {*golden, *rendered} if golden.get(p) != rendered.get(p))
    if update and changed:
        shutil.rmtree(folder, ignore_errors=True)
        for path, content in rendered.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(content)
        pytest.skip(f"golden files rewritten in tests/golden/{folder.name} "
                    f"({', '.join(changed)}): review the diff (git diff -- tests/golden)")
    assert sorted(rendered) == sorted(golden), \
        f"files differ from tests/golden/{folder.name}; if deliberate: {UPDATE_HINT}"
    for path in changed:
        assert rendered[path] == golden[path], \
            f"{path} differs from tests/golden/{folder.name}; if deliberate: {UPDATE_HINT}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.folder)
def test_golden(case: Case) -> None:
    lab = case.lab()
    files = render_files(lab, golden_secrets(lab), f"gitlab/gitlab-ce:{case.version}-ce.0",
                         f"/labs/{case.topology}")
    compare_or_update(GOLDEN / case.folder, {f.path: f.content for f in files},
                      os.environ.get("UPDATE_GOLDEN") == "1")


def test_every_golden_folder_has_a_case() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(c.folder for c in CASES)


def test_cases_render_what_they_name() -> None:
    by_folder = {c.folder: read_folder(GOLDEN / c.folder) for c in CASES}
    assert "tls_listen_addr" in by_folder["scaled-tls-12.10.14"]["nodes/gitaly1/gitlab.rb"]
    assert "nodes/gitaly1/ssl/gitaly1.key" in by_folder["scaled-tls-19.3.0"]
    assert "tls://gitaly1:9999" in by_folder["scaled-tls-19.3.0"]["nodes/gitlab/gitlab.rb"]
    assert "tcp://gitaly2:8075" in by_folder["sharded-19.3.0"]["nodes/gitlab/gitlab.rb"]
    for version in ("12.10.14", "19.3.0"):
        own = by_folder[f"scaled-own-secrets-{version}"]
        assert own["nodes/gitaly1/gitlab-secrets.json"] != own["nodes/gitlab/gitlab-secrets.json"]


# -- UPDATE_GOLDEN ---------------------------------------------------------------------


def test_a_difference_fails_without_update(tmp_path: Path) -> None:
    (tmp_path / "gitlab.rb").write_text("old\n")
    with pytest.raises(AssertionError, match=r"gitlab\.rb differs .* UPDATE_GOLDEN=1"):
        compare_or_update(tmp_path, {"gitlab.rb": "new\n"}, update=False)
    with pytest.raises(AssertionError, match="files differ"):
        compare_or_update(tmp_path, {"gitlab.rb": "old\n", "extra": ""}, update=False)
    assert (tmp_path / "gitlab.rb").read_text() == "old\n"


def test_update_rewrites_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "scaled-19.3.0"
    (folder / "nodes").mkdir(parents=True)
    (folder / "nodes/gitlab.rb").write_text("old\n")
    (folder / "stray").write_text("gone after the rewrite\n")
    with pytest.raises(pytest.skip.Exception,
                       match=r"golden files rewritten in tests/golden/scaled-19\.3\.0 "
                             r"\(nodes/gitlab\.rb, stray\): review the diff"):
        compare_or_update(folder, {"nodes/gitlab.rb": "new\n"}, update=True)
    assert read_folder(folder) == {"nodes/gitlab.rb": "new\n"}
    # Nothing left to rewrite: a plain comparison, which passes.
    compare_or_update(folder, {"nodes/gitlab.rb": "new\n"}, update=True)


def test_ci_refuses_update_golden() -> None:
    env = {**os.environ, "CI": "true", "UPDATE_GOLDEN": "1", "PYTHONPATH": str(ROOT)}
    # --collect-only: were the guard missing, nothing would be rewritten either.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--collect-only", "-q", "tests/unit/test_golden.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "UPDATE_GOLDEN is set and CI=true" in proc.stderr
    assert "never rewrites them" in proc.stderr
