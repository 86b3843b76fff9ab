"""Which release a set of gitlab.rb files was written for, from the keys they use.

Each hint is a fact of lab.omnibus.dialect (where a key appeared or went away);
`lab import` asks this module and never compares versions itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.omnibus.dialect import LEGACY_GITALY_KEYS
from lab.omnibus.release import (
    DEFAULT_VERSION,
    GIT_DATA_DIRS_REMOVED,
    GITALY_CONFIGURATION,
    GITALY_ROLE,
    GITLAB_EXPORTER_NAMED,
    GITLAB_MONITOR_REMOVED,
    OLDEST_SUPPORTED,
    PRAEFECT_CLUSTER,
    PRAEFECT_CONFIGURATION,
    PRAEFECT_LEGACY_REMOVED,
    PRAEFECT_REPLICATION_FACTOR,
    REPOSITORIES_STORAGES,
    UNBOUNDED,
    Version,
)

# Releases import picks from: the newest one inside the range the keys allow.
# 17.7.7 stands for "git_data_dirs and roles(['gitaly_role']) both present".
# 13.8.8 stands for "Praefect's virtual storages without a replication factor" (13.3-13.8).
CANDIDATES = ("11.11.8", "12.10.14", "13.8.8", "13.12.15", "15.9.8", "15.11.13", "16.11.10",
              "17.7.7", DEFAULT_VERSION)
# roles(['gitaly_role']) came with GITALY_ROLE: files without it look older, if the range
# allows.
_ROLES_ERA = str(GITALY_ROLE)


@dataclass
class VersionClues:
    """What the keys used say about the GitLab version (inclusive bounds)."""

    low: Version = field(default_factory=lambda: Version.parse(OLDEST_SUPPORTED))
    high: Version = UNBOUNDED
    prefer_below: Version | None = None  # a soft bound: true if the range allows it
    reasons: list[str] = field(default_factory=list)

    def at_least(self, version: str, why: str) -> None:
        self.low = max(self.low, Version.parse(version))
        self.reasons.append(f"{why} => {version}+")

    def at_most(self, version: str, why: str) -> None:
        self.high = min(self.high, Version.parse(version))
        self.reasons.append(f"{why} => <= {version}")

    def no_roles_on_gitaly_nodes(self) -> None:
        self.prefer_below = Version.parse(_ROLES_ERA)

    def add(self, node: str, data: Mapping[str, Any]) -> None:
        """The hints of one node's settings."""
        def section(name: str) -> dict[str, Any]:
            value = data.get(name)
            return value if isinstance(value, dict) else {}

        gitaly, rails, dirs = section("gitaly"), section("gitlab_rails"), section("git_data_dirs")
        roles = data.get("roles")
        roles = [roles] if isinstance(roles, str) else roles if isinstance(roles, list) else []
        if "gitaly_role" in roles:
            self.at_least(_ROLES_ERA, f"{node}: roles(['gitaly_role'])")
        if "gitlab_monitor" in data:
            self.at_most("12.10.14", f"{node}: gitlab_monitor (gitlab_exporter from "
                         f"{GITLAB_EXPORTER_NAMED.series}, gone in "
                         f"{GITLAB_MONITOR_REMOVED.series})")
        if "unicorn" in data:
            self.at_most("13.12.15", f"{node}: unicorn['enable']")
        if gitaly.get("configuration"):
            self.at_least(str(GITALY_CONFIGURATION), f"{node}: gitaly['configuration']")
        legacy = [k for k in LEGACY_GITALY_KEYS if k in gitaly]
        if "storage" in gitaly:
            self.at_most("12.10.14", f"{node}: gitaly['storage'] (the 11.x/12.x guide's list)")
        elif legacy:
            self.at_most("15.9.8", f"{node}: gitaly['{legacy[0]}'] (legacy key)")
        self._praefect(node, section("praefect"))
        if rails.get("repositories_storages"):
            self.at_least(str(REPOSITORIES_STORAGES),
                          f"{node}: gitlab_rails['repositories_storages']")
        if any(isinstance(e, dict) and e.get("gitaly_address") for e in dirs.values()):
            self.at_most("17.7.7", f"{node}: git_data_dirs with gitaly_address")
        elif dirs:
            self.at_most("17.11.7", f"{node}: git_data_dirs (removed in "
                         f"{GIT_DATA_DIRS_REMOVED.series})")

    def _praefect(self, node: str, praefect: Mapping[str, Any]) -> None:
        if praefect.get("enable") is True:
            self.at_least(str(PRAEFECT_CLUSTER), f"{node}: praefect['enable'] (the lab's "
                          "Gitaly Cluster)")
        if praefect.get("configuration"):
            self.at_least(str(PRAEFECT_CONFIGURATION), f"{node}: praefect['configuration']")
        legacy = [k for k in ("listen_addr", "tls_listen_addr", "auth_token", "virtual_storages",
                              "database_host") if k in praefect]
        if legacy:
            last = Version(PRAEFECT_LEGACY_REMOVED.major - 1, 11, 13)  # the last 15.x reference
            self.at_most(str(last), f"{node}: praefect['{legacy[0]}'] (legacy key)")
        storages = praefect.get("virtual_storages")
        if isinstance(storages, dict) and storages:
            nested = any(isinstance(e, dict) and isinstance(e.get("nodes"), dict)
                         for e in storages.values())
            if nested:
                self.at_least(str(PRAEFECT_REPLICATION_FACTOR),
                              f"{node}: praefect['virtual_storages'] with 'nodes'")
            else:
                self.at_most("13.8.8", f"{node}: praefect['virtual_storages'] without 'nodes'")

    def choose(self, asked: Version | None, notes: list[str]) -> tuple[Version, str]:
        """The release to render, and why; ``notes`` says where the keys disagree."""
        why = "; ".join(self.reasons) or "no version-specific keys"
        low, high = self.low, self.high
        if asked is not None:
            if not low <= asked <= high:
                notes.append(f"--version {asked} is outside what the files' keys suggest "
                             f"({why}); the lab renders {asked}'s keys")
            return asked, f"given with --version ({why})"
        if low > high:
            notes.append(f"the files mix keys of different versions ({why}); picked the oldest "
                         "version the newest keys need")
            high = UNBOUNDED
        fits = [v for v in map(Version.parse, CANDIDATES) if low <= v <= high]
        if self.prefer_below is not None:
            fits = [v for v in fits if v < self.prefer_below] or fits
        return (fits[-1] if fits else low), why
