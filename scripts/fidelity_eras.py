#!/usr/bin/env python3
"""Write docs/fidelity.md's "Texts by release" section from lab.omnibus.eras.ERAS.

usage: python3 scripts/fidelity_eras.py [--check]

One row per behaviour and era: the releases it covers, the text (a template: {status},
{name}, {path}, {config} are filled in), the source. The table in eras.py is the one
place; this keeps the document equal to it (--check exits 1 when it differs, as
tests/unit/test_eras_table.py does).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.omnibus.eras import ERAS, Era  # noqa: E402

DOC = ROOT / "docs" / "fidelity.md"
BEGIN = "<!-- eras:begin (scripts/fidelity_eras.py writes this section) -->"
END = "<!-- eras:end -->"


def _releases(row: Era) -> str:
    later = sorted(e.since for e in ERAS if e.behaviour == row.behaviour and e.since > row.since)
    start = "11.11" if row.since.major == 0 else row.since.series
    if not later:
        return f"{start}+"
    end = later[0]
    last = f"{end.major}.{end.minor - 1}" if end.minor else f"{end.major - 1}.x"
    return f"{start}–{last}"


def section() -> str:
    lines = [BEGIN, "", "| behaviour | releases | text (lab/omnibus/eras.py `ERAS`) | source |",
             "|---|---|---|---|"]
    for row in ERAS:
        shown = row.text.replace("|", "\\|")
        lines.append(f"| {row.behaviour} | {_releases(row)} | `{shown}` | {row.source} |")
    return "\n".join([*lines, "", END])


def render(doc: str) -> str:
    if BEGIN in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return head + section() + tail
    marker = "\n## What the sim does not reproduce"
    head, tail = doc.split(marker, 1)
    return (head.rstrip("\n") + "\n\n## Texts by release\n\nEvery text below is what the "
            "sim prints on a lab of that release.\n\n" + section() + "\n" + marker + tail)


def main(argv: list[str]) -> int:
    doc = DOC.read_text()
    fresh = render(doc)
    if "--check" in argv:
        return 0 if fresh == doc else 1
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
