"""The wheel's data layout: data folders found in a checkout and in an install alike."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lab
from lab import resources
from lab.errors import SpecError
from lab.scenario.load import find_scenarios

ROOT = Path(__file__).resolve().parents[2]


def test_setup_ships_every_data_folder() -> None:
    assert _setup_constant("FOLDERS") == resources.DATA_FOLDERS
    for name in resources.DATA_FOLDERS:
        assert (ROOT / name).is_dir(), name


def _setup_constant(name: str) -> object:
    tree = ast.parse((ROOT / "setup.py").read_text())
    value = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == name)
    return ast.literal_eval(value)


def test_data_inside_the_package_is_declared() -> None:
    # setup.py ships files under lab/ by suffix; any other non-Python file would be left
    # out of the wheel (and, where the sim image hashes it, change the image tag).
    suffixes = _setup_constant("LAB_DATA_SUFFIXES")
    assert isinstance(suffixes, tuple)
    package = ROOT / "lab"
    data = [p.relative_to(package).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data
    assert [name for name in data if name.rsplit(".", 1)[-1] not in suffixes] == []


def test_checkout_layout() -> None:
    assert resources.data_dir("images") == ROOT / "images"
    assert resources.data_dir("skeletons") == ROOT / "skeletons"


def test_installed_layout_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site-packages" / "lab"
    (package / "_data" / "images").mkdir(parents=True)
    monkeypatch.setattr(lab, "__file__", str(package / "__init__.py"))
    assert resources.data_dir("images") == package / "_data" / "images"
    # A folder the install lacks falls back to the checkout layout beside the package.
    assert resources.data_dir("skeletons") == tmp_path / "site-packages" / "skeletons"


def test_unknown_folder() -> None:
    with pytest.raises(ValueError, match="unknown data folder"):
        resources.data_dir("tests")


def test_builtin_scenario_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_scenarios([Path("gitaly-own-secrets")]) == [
        ROOT / "scenarios" / "gitaly-own-secrets.yaml"]
    # A file of that name in the working folder wins over the library.
    (tmp_path / "gitaly-own-secrets").write_text("name: mine\n")
    assert find_scenarios([Path("gitaly-own-secrets")]) == [Path("gitaly-own-secrets")]
    with pytest.raises(SpecError, match=r"built-in scenarios: .*tls-push"):
        find_scenarios([Path("no-such-scenario")])
    with pytest.raises(SpecError, match="no such scenario"):
        find_scenarios([Path("../scenarios/gitaly-own-secrets")])
