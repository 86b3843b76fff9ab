"""The import graph of the toolkit (lab) and the sim (labsim) has no circle: every module
can be read (and tested) after the modules it imports, never in a loop with them.
``typing.TYPE_CHECKING`` and function-level imports count: a circle only the type checker
or a late import sees is still two modules that cannot be understood apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def circles(edges: Mapping[str, Set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself): each is a circle. Tarjan's algorithm, without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return found


def test_the_circle_finder_finds_circles() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"a"}}) == [["a"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_the_toolkit_and_the_sim_have_no_import_circle() -> None:
    graph = grimp.build_graph("lab", "labsim", cache_dir=None)  # no cache written here
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert circles(edges) == []


def private_imports(source: str) -> list[str]:
    """``module._name`` for each ``from module import _name`` in ``source``."""
    return [f"{node.module}.{alias.name}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom)
            for alias in node.names if alias.name.startswith("_")
            and not alias.name.startswith("__")]


def test_the_private_import_finder_finds_them() -> None:
    assert private_imports("from a.b import _c, d, __version__\nimport _e\n") == ["a.b._c"]


def test_no_module_imports_another_modules_private_name() -> None:
    # A leading underscore says "this module's own": another module that needs it gets a
    # public name (lab.engine.docker.sdk_client, not _client), and a test's stand-in for
    # the private one still serves every caller.
    found = {path.relative_to(ROOT).as_posix(): hits
             for path in sorted([*(ROOT / "lab").rglob("*.py"), *(ROOT / "labsim").rglob("*.py")])
             if "gitalypb" not in path.parts and (hits := private_imports(path.read_text()))}
    assert found == {}
