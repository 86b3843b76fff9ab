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
           "dialect_for", "newer_than_known", "parse_supported"]


def parse_supported(text: str, *, source: str = "", line: int | None = None,
                    force: bool = False) -> Version:
    """``text`` as a version the toolkit can render; ``force`` lets a newer one through."""
    try:
        version = Version.parse(text)
    except ValueError as exc:
        raise SpecError(str(exc), source=source, line=line, key="version") from None
    if version < Version.parse(OLDEST_SUPPORTED):
        raise SpecError(
            f"GitLab {version} is older than the oldest supported release {OLDEST_SUPPORTED}",
            source=source, line=line, key="version",
        )
    if newer_than_known(version) and not force:
        raise SpecError(
            f"GitLab {version} is newer than the newest release this toolkit knows "
            f"({DEFAULT_VERSION}); check the number, or pass --force-version to render it "
            f"with {DEFAULT_VERSION}'s settings", source=source, line=line, key="version")
    return version
