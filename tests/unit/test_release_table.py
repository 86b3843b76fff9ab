"""Release boundaries are written once: lab/omnibus/release.py names every release at which
something the toolkit models changed; other modules compare against those names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lab.omnibus import release

LAB = Path(__file__).resolve().parents[2] / "lab"
LABSIM = LAB.parent / "labsim"


def _literal_versions(tree: ast.AST) -> list[int]:
    """Lines that build a release from literals: Version(15, 10, 0) or .at_least("15.10.0")."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else \
            func.attr if isinstance(func, ast.Attribute) else ""
        if name in ("Version", "at_least", "parse") and all(
                isinstance(a, ast.Constant) for a in node.args):
            out.append(node.lineno)
    return out


def test_release_boundaries_are_only_in_the_release_table() -> None:
    found = {}
    for path in sorted([*LAB.rglob("*.py"), *LABSIM.rglob("*.py")]):
        if path.name == "release.py" or "gitalypb" in path.parts:
            continue
        lines = _literal_versions(ast.parse(path.read_text()))
        if lines:
            found[path.relative_to(LAB.parent).as_posix()] = lines
    assert found == {}


#: A GitLab release the lab knows (11.x on) in prose ("before 14.0", "17.5+", "19.x"); not
#: an address or a number such as a timeout of 10.0.
PROSE_RELEASE = re.compile(r"(?<![\d.])1[1-9]\.(?:[0-9]+|x)(?![\d.])")


def test_the_sim_names_no_release_but_through_the_table() -> None:
    # The sim's code and comments point at lab/omnibus/release.py (or docs/fidelity.md)
    # instead of repeating a release number that would drift from it.
    found = {path.relative_to(LABSIM).as_posix(): PROSE_RELEASE.findall(path.read_text())
             for path in sorted(LABSIM.rglob("*.py"))}
    assert {name: hits for name, hits in found.items() if hits} == {}
    assert _literal_versions(ast.parse("")) == []
    assert PROSE_RELEASE.findall("unicorn before 13.0; 17.5+; from 19.x; 127.0.0.1; 10.0") == [
        "13.0", "17.5", "19.x"]


def test_the_finder_sees_a_literal_release() -> None:
    tree = ast.parse('a = Version(16, 8, 0)\nb = v.at_least("17.6.0")\nc = Version.parse(s)\n')
    assert _literal_versions(tree) == [1, 2]


def test_boundaries_are_versions_in_order_of_the_guide_era_on() -> None:
    bounds = {name: value for name, value in vars(release).items()
              if isinstance(value, release.Version) and name not in ("UNBOUNDED", "FIRST")}
    assert len(bounds) > 20
    oldest = release.Version.parse(release.OLDEST_SUPPORTED)
    # Praefect's cookbook (12.4) and everything else come after the guide's 11.11.
    assert all(oldest < v < release.UNBOUNDED for v in bounds.values()), bounds
