"""The release matrix: ``--version``/``--lab-version`` lists and matrix case names.

Light on purpose: the pytest plugin reads it at every pytest start.
"""

from __future__ import annotations

from lab.spec.versions import Version, unsupported


def parse_versions(text: str | None) -> list[str | None]:
    """``--version 15.9.8,17.11.7`` -> each release once, in order; None: the default.

    Raises ValueError naming the bad entry, or a release no lab is rendered for.
    """
    if not text or not text.strip():
        return [None]
    out: list[str | None] = []
    for part in text.split(","):
        version = Version.parse(part)  # ValueError says what a version looks like
        # Said once for the option, not once per scenario file (as each lab would).
        problem = unsupported(version)
        if problem is not None:
            raise ValueError(problem)
        release = str(version)
        if release not in out:
            out.append(release)
    return out


def release_name(name: str, release: str) -> str:
    """``push[17.11.7]``: a scenario's name in a release matrix (pytest's id style)."""
    return f"{name}[{release}]"
