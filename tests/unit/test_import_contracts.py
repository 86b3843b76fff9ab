"""The import contracts in pyproject.toml can fail: each forbidden import, put into a copy
of the tree, breaks lint-imports there (the checkout itself must pass, see .ci/lint)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from lab.engine.images import SIM_CARRIES


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy first on the path, so `lab` and `labsim` are the copy's, not the checkout's.
    code = "import sys; from importlinter.cli import lint_imports_command; " \
           "sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)},
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for package in ("lab", "labsim"):
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", root)
    return root


def test_the_copy_keeps_every_contract(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(("where", "line", "contract"), [
    # What the image carries reaches a toolkit room it does not carry.
    ("lab/omnibus/injected.py", "import lab.errors",
     "What the sim image carries of the toolkit imports no other room"),
    ("lab/gitalypb/injected.py", "import lab.omnibus",
     "What the sim image carries of the toolkit imports no other room"),
    # ... or a dependency the image lacks.
    ("lab/omnibus/injected.py", "import yaml",
     "What the sim image carries of the toolkit imports no other room"),
    # The sim reaches past what its image carries.
    ("labsim/common/injected.py", "import lab.engine",
     "The sim imports of the toolkit only what its image carries"),
    ("labsim/web/injected.py", "import requests",
     "The sim imports of the toolkit only what its image carries"),
    # The toolkit runs no sim code.
    ("lab/engine/injected.py", "import labsim.common.simconfig",
     "The toolkit never imports the sim"),
    # Rooms the order allows to meet but that stay independent (render is above spec).
    ("lab/render/injected.py", "import lab.spec.labspec", "Reading a spec, rendering a lab"),
    ("lab/client/injected.py", "import lab.render.gitlab_rb", "Reading a spec, rendering a lab"),
    ("lab/errors.py", "import lab.resources", "The ground floor rooms"),
    ("lab/testcontainers.py", "import lab.pytest_plugin",
     "The surfaces are independent"),
    ("lab/cli/injected.py", "from lab.engine import docker",
     "The CLI and the pytest plugin reach Docker through the lifecycle"),
    # The sim's rooms: the node's programs and the web side stay apart.
    ("labsim/node/injected.py", "from labsim.web import app_server",
     "The sim's rooms"),
    ("labsim/gitaly/injected.py", "from labsim.web import api_repository",
     "The sim's rooms"),
])
def test_a_forbidden_import_breaks_its_contract(tree: Path, where: str, line: str,
                                                contract: str) -> None:
    assert any(name.startswith(contract) for name in _contracts())
    injected = tree / where  # a new module, or a line added to one
    before = injected.read_text() if injected.exists() else None
    injected.write_text((before or "") + f"\n{line}\n")
    try:
        result = _lint_imports(tree)
    finally:
        if before is None:
            injected.unlink()
        else:
            injected.write_text(before)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.replace("\n", " ").split("KEPT") if "BROKEN" in ln]
    assert any(contract in text for text in broken), result.stdout


def test_the_contracts_and_the_image_carry_the_same_packages() -> None:
    contracts = _contracts()
    carried = next(c for name, c in contracts.items() if name.startswith("What the sim image"))
    sim = next(c for name, c in contracts.items() if name.startswith("The sim imports"))
    assert set(carried["source_modules"]) == {f"lab.{p}" for p in SIM_CARRIES}
    assert set(sim["ignore_imports"]) == {f"labsim.** -> lab.{p}.**" for p in SIM_CARRIES}
    # Both hold the same toolkit dependencies out, and every runtime dependency the image
    # has no Debian package for is among them.
    assert carried["forbidden_modules"] == sim["forbidden_modules"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    import_names = {"PyYAML": "yaml", "PyJWT": "jwt", "grpcio": "grpc", "protobuf": "google",
                    "google-re2": "re2", "tomli-w": "tomli_w"}
    in_the_image = {"jwt", "grpc", "google"}  # python3-jwt, -grpcio, -protobuf
    needed = {import_names.get(name, name.lower()) for name in (
        re.split(r"[<>=\[ ]", dep)[0] for dep in [*project["dependencies"],
                                                  *project["optional-dependencies"]["testcontainers"]])}
    assert needed - in_the_image <= set(carried["forbidden_modules"])
