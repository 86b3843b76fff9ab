"""Packaging hook: ship images/, skeletons/ and scenarios/ inside the wheel without moving them.

The wheel holds two packages: ``lab`` (the toolkit) and ``labsim`` (the sim's programs,
which ``lab images build`` copies into the sim image with what it carries of ``lab``).

Each folder becomes the package data of ``lab._data.<folder>`` (found again at run
time by ``lab.resources.data_dir``). The rest of the metadata is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = ("images", "skeletons", "scenarios")
# Data files inside the lab package itself (stubs, Ruby run in a sandbox, key lists), by
# suffix; tests/unit/test_packaging.py fails when a file under lab/ has another one.
LAB_DATA_SUFFIXES = ("pyi", "rb", "txt", "json", "yaml", "yml", "typed")
# The sim's data files: Ruby it runs, and the git hooks of its Gitaly (no suffix).
LABSIM_DATA = ("**/*.rb", "gitaly/hooks/*")

setup(
    packages=[*find_packages(include=["lab", "lab.*", "labsim", "labsim.*"]),
              *(f"lab._data.{f}" for f in FOLDERS)],
    package_dir={f"lab._data.{f}": f for f in FOLDERS},
    package_data={**{f"lab._data.{f}": ["**/*"] for f in FOLDERS},
                  "lab": [f"**/*.{suffix}" for suffix in LAB_DATA_SUFFIXES],
                  "labsim": list(LABSIM_DATA)},
    exclude_package_data={f"lab._data.{f}": ["**/__pycache__/*", "**/*.pyc"] for f in FOLDERS},
)
