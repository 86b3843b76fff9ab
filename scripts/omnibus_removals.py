#!/usr/bin/env python3
"""Turn each release's Omnibus deprecations.rb into the removals table in lab/omnibus/data/.

usage: python3 scripts/omnibus_removals.py --omnibus-git GIT_DIR
       (GIT_DIR: a clone of omnibus-gitlab with its release tags, e.g. 16.11.10+ce.0)

For every release the toolkit knows (lab.omnibus.release.REFERENCE_RELEASES) it
reads files/gitlab-cookbooks/package/libraries/deprecations.rb at that tag and lets
Omnibus' own code (scripts/omnibus_removals.rb, under Ruby, with the file's three
helpers stubbed) list every removal and the exact message check_config prints for
it. The output, lab/omnibus/data/removals.json, maps each release to its entries:
the gitlab.rb path, when it applies ("set"; {"equals": value}; {"other_than": [keys
allowed]} for a block whose other keys were removed), the deprecation and removal
releases and the message(s). Reconfigure of release R aborts on an entry of R's
list whose removal is <= R (package/libraries/omnibus_helper.rb check_deprecations).
The output is committed, so the toolkit and its tests need neither Ruby nor the clone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.omnibus.release import REFERENCE_RELEASES  # noqa: E402

OUT = ROOT / "lab" / "omnibus" / "data" / "removals.json"
DEPRECATIONS = "files/gitlab-cookbooks/package/libraries/deprecations.rb"
DRIVER = ROOT / "scripts" / "omnibus_removals.rb"
# deprecations.rb requires these beside it; only the names it calls are needed.
STUBS = {
    "object_proxy.rb": "class ObjectProxy < BasicObject\nend\n",
    "helpers/logging_helper.rb": "module LoggingHelper\n  def self.method_missing(*)\n  end\n"
                                 "  def self.respond_to_missing?(*)\n    true\n  end\nend\n",
    # SettingsDSL::Utils.node_attribute_key (16.x+) and underscored_form (15.x) are both
    # key.tr('-', '_') in package/libraries/settings_dsl.rb.
    "settings_dsl.rb": "module SettingsDSL\n  module Utils\n    def self.node_attribute_key(k)\n"
                       "      k.tr('-', '_')\n    end\n    def self.underscored_form(k)\n"
                       "      k.tr('-', '_')\n    end\n  end\nend\n",
}


def release_entries(git_dir: Path, release: str) -> list[dict[str, object]]:
    source = subprocess.run(["git", "-C", str(git_dir), "show",
                             f"{release}+ce.0:{DEPRECATIONS}"],
                            check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "helpers").mkdir()
        for name, text in STUBS.items():
            (folder / name).write_text(text)
        # An 11.x file uses LoggingHelper without requiring it.
        (folder / "deprecations.rb").write_text(
            "require_relative 'helpers/logging_helper'\n" + source)
        run = subprocess.run(["ruby", str(DRIVER), str(folder)], check=True,
                             capture_output=True, text=True)
        if run.stderr:
            raise SystemExit(f"{release}: {run.stderr}")
        out = run.stdout
    entries: list[dict[str, object]] = json.loads(out)
    return [e for e in entries if e["messages"]]


def dump(table: dict[str, object]) -> str:
    """JSON with one entry per line, so a new release's diff reads entry by entry."""
    releases: dict[str, list[dict[str, object]]] = table["releases"]  # type: ignore[assignment]
    lines = ["{", f' "source": {json.dumps(table["source"])},', ' "releases": {']
    for i, (release, entries) in enumerate(releases.items()):
        lines.append(f"  {json.dumps(release)}: [")
        lines += [f"   {json.dumps(e, sort_keys=True)}{',' if j < len(entries) - 1 else ''}"
                  for j, e in enumerate(entries)]
        lines.append("  ]" + ("," if i < len(releases) - 1 else ""))
    return "\n".join([*lines, " }", "}"]) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "--omnibus-git":
        sys.stderr.write(__doc__ or "")
        return 2
    git_dir = Path(argv[2])
    table = {"source": f"omnibus-gitlab {DEPRECATIONS} at <release>+ce.0, "
                       "by scripts/omnibus_removals.py",
             "releases": {r: release_entries(git_dir, r) for r in REFERENCE_RELEASES}}
    OUT.write_text(dump(table))
    for release, entries in table["releases"].items():
        sys.stdout.write(f"{release}: {len(entries)} removals\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
