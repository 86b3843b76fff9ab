"""Release boundaries are written once: lab/omnibus/release.py names every release at which
something the toolkit models changed; other modules compare against those names."""

from __future__ import annotations

import ast
from pathlib import Path

from lab.omnibus import release

LAB = Path(__file__).resolve().parents[2] / "lab"


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
    for path in sorted(LAB.rglob("*.py")):
        if path.name == "release.py" or "gitalypb" in path.parts:
            continue
        lines = _literal_versions(ast.parse(path.read_text()))
        if lines:
            found[path.relative_to(LAB).as_posix()] = lines
    assert found == {}


def test_the_finder_sees_a_literal_release() -> None:
    tree = ast.parse('a = Version(16, 8, 0)\nb = v.at_least("17.6.0")\nc = Version.parse(s)\n')
    assert _literal_versions(tree) == [1, 2]


def test_boundaries_are_versions_in_order_of_the_guide_era_on() -> None:
    bounds = {name: value for name, value in vars(release).items()
              if isinstance(value, release.Version) and name not in ("NEWEST", "FIRST")}
    assert len(bounds) > 20
    oldest = release.Version.parse(release.OLDEST_SUPPORTED)
    # Praefect's cookbook (12.4) and everything else come after the guide's 11.11.
    assert all(oldest < v < release.NEWEST for v in bounds.values()), bounds
