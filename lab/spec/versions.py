"""The spec's front to lab.omnibus.release: a version string from a user -> a Version.

Release facts live in lab/omnibus/; this module only turns bad input into SpecError.
"""

from __future__ import annotations

from lab.errors import SpecError
from lab.omnibus.dialect import Dialect, dialect_for
from lab.omnibus.release import (
    DEFAULT_VERSION,
    OLDEST_SUPPORTED,
    REFERENCE_RELEASES,
    Version,
    newer_than_known,
)

REFERENCE_VERSIONS = REFERENCE_RELEASES
__all__ = ["DEFAULT_VERSION", "OLDEST_SUPPORTED", "REFERENCE_VERSIONS", "Dialect", "Version",
           "dialect_for", "newer_than_known", "parse_supported", "unsupported"]


def unsupported(version: Version, *, force: bool = False) -> str | None:
    """Why no lab is rendered for ``version`` (None: one is); ``force`` lets a newer one
    through. Callers add what their user can do about it."""
    if version < Version.parse(OLDEST_SUPPORTED):
        return f"GitLab {version} is older than the oldest supported release {OLDEST_SUPPORTED}"
    if newer_than_known(version) and not force:
        return (f"GitLab {version} is newer than the newest release this toolkit knows "
                f"({DEFAULT_VERSION}); check the number")
    return None


def parse_supported(text: str, *, source: str = "", line: int | None = None,
                    force: bool = False) -> Version:
    """``text`` as a version the toolkit can render; ``force`` lets a newer one through."""
    try:
        version = Version.parse(text)
    except ValueError as exc:
        raise SpecError(str(exc), source=source, line=line, key="version") from None
    problem = unsupported(version, force=force)
    if problem is not None:
        if newer_than_known(version):
            problem += (f", or pass --force-version to render it with {DEFAULT_VERSION}'s "
                        "settings")
        raise SpecError(problem, source=source, line=line, key="version")
    return version
