"""GitLab versions and the configuration dialect each one speaks.

The thresholds are facts from GitLab's Omnibus templates (see the tests, which
check them against ``shared/reference/omnibus``); the renderer asks this module
and never compares version numbers itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.errors import SpecError

# Releases whose gitlab.rb.template the project checks against; the newest is the default.
REFERENCE_VERSIONS = ("13.12.15", "15.9.8", "15.11.13", "16.11.10", "17.11.7", "19.3.0")
DEFAULT_VERSION = REFERENCE_VERSIONS[-1]
OLDEST_SUPPORTED = "13.12.0"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


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

    def at_least(self, text: str) -> bool:
        return self >= Version.parse(text)


@dataclass(frozen=True)
class Dialect:
    """Which spelling of each setting a version understands."""

    # 15.10 moved Gitaly's settings into gitaly['configuration']; 16.0 removed the old keys.
    gitaly_configuration: bool
    # 17.8 added gitlab_rails['repositories_storages']; 18.0 made git_data_dirs abort reconfigure.
    repositories_storages: bool
    # 17.6 added roles(['gitaly_role']).
    gitaly_role: bool
    # 17.5 added the `gitaly` section (gitlab_secret) to gitlab-secrets.json.
    gitaly_secret: bool
    # Unicorn was removed in 14.0; before that it was disabled next to puma.
    unicorn: bool

    @property
    def name(self) -> str:
        gitaly = ("gitaly['configuration']" if self.gitaly_configuration
                  else "legacy gitaly[...] keys")
        app = "repositories_storages" if self.repositories_storages else "git_data_dirs"
        return f"{gitaly} + {app}"


def dialect_for(version: Version) -> Dialect:
    return Dialect(
        gitaly_configuration=version.at_least("15.10.0"),
        repositories_storages=version.at_least("17.8.0"),
        gitaly_role=version.at_least("17.6.0"),
        gitaly_secret=version.at_least("17.5.0"),
        unicorn=not version.at_least("14.0.0"),
    )


def parse_supported(text: str, *, source: str = "", line: int | None = None) -> Version:
    try:
        version = Version.parse(text)
    except ValueError as exc:
        raise SpecError(str(exc), source=source, line=line, key="version") from None
    if version < Version.parse(OLDEST_SUPPORTED):
        raise SpecError(
            f"GitLab {version} is older than the oldest supported release {OLDEST_SUPPORTED}",
            source=source, line=line, key="version",
        )
    return version
