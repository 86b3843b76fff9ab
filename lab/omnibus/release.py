"""GitLab release numbers and the releases the project has reference data for.

Standard library only: the sim image carries this module (see lab/engine/images.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Releases whose template and attribute lists the key data in data/ comes from
# (scripts/omnibus_keys.py); the newest is the default.
REFERENCE_RELEASES = ("11.11.8", "12.10.14", "13.12.15", "15.9.8", "15.11.13", "16.11.10",
                      "17.11.7", "19.3.0")
DEFAULT_VERSION = REFERENCE_RELEASES[-1]
# The Gitaly guide was written for 11.x; nothing older is modelled.
OLDEST_SUPPORTED = "11.11.0"

# Real Omnibus knows its own release; the sim node learns it from this variable,
# which the lab's compose file sets (lab/render/compose_file.py).
VERSION_ENV = "GITLAB_TESTLAB_VERSION"

# ASCII digits only: \d also matches other scripts' digits ("١٧.١١.٧"), which int() reads.
_VERSION_RE = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)\Z")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION_RE.match(str(text).strip())
        if not m:
            raise ValueError(
                f"{text!r} is not a GitLab version of the form X.Y.Z (e.g. {DEFAULT_VERSION})")
        return cls(int(m[1]), int(m[2]), int(m[3]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def series(self) -> str:
        """"13.0" for 13.0.14: how Omnibus' own messages name a release."""
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= Version.parse(text)


#: Newer than any release: the open top of a range of releases, and what a node that
#: was not told its release behaves as.
NEWEST = Version(999, 0, 0)


def newer_than_known(version: Version) -> bool:
    """True for a minor release after the newest one the toolkit knows (patches of it pass).

    Its keys are unknown here: rendering for it would guess, and a typo such as
    99.0.0 would boot as if it were real.
    """
    newest = Version.parse(DEFAULT_VERSION)
    return (version.major, version.minor) > (newest.major, newest.minor)


def omnibus_image_ref(edition: str, version: str) -> str:
    """The official image of a release: gitlab/gitlab-ce:17.11.7-ce.0."""
    return f"gitlab/gitlab-{edition}:{version}-{edition}.0"


def reference_for(version: Version) -> str:
    """The newest reference release not newer than ``version`` (the oldest one below it)."""
    older = [r for r in REFERENCE_RELEASES if Version.parse(r) <= version]
    return older[-1] if older else REFERENCE_RELEASES[0]
