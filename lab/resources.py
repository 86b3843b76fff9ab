"""Where the toolkit's data folders are: ``images/``, ``skeletons/`` and ``scenarios/``.

In a checkout (or an editable install) they sit beside the ``lab`` package; a
wheel carries them as ``lab/_data/<name>`` (``setup.py`` maps the folders there
at build time, so the repository keeps its layout). File names and contents
are the same in both places, so the sim image tag is too.
"""

from __future__ import annotations

from pathlib import Path

import lab

DATA_FOLDERS = ("images", "skeletons", "scenarios")


def data_dir(name: str) -> Path:
    """The folder ``name`` (one of DATA_FOLDERS) of this installation."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}")
    package = Path(lab.__file__).resolve().parent
    installed = package / "_data" / name
    if installed.is_dir():
        return installed
    return package.parent / name
