"""Which storage directories `gitlab-ctl reconfigure` creates, release by release.

Omnibus' `storage_directory` resources make a node's git data folders (`mkdir -p`,
owner git, mode 2770/0700); Gitaly itself creates none and refuses to start when a
storage's path is missing (lab.omnibus.eras.gitaly_storage_missing). Which paths
those resources name changed in 17.8:

- up to 17.7 every path of ``git_data_dirs`` (``{'default' => {'path' =>
  '/var/opt/gitlab/git-data'}}`` when it is empty) and that path plus
  ``/repositories`` (the derived ``gitlab_rails['repositories_storages']``), and
  nothing else: a storage listed only in ``gitaly['storage']`` (11.x/12.x) or
  ``gitaly['configuration'][:storage]`` (15.10+) is never made.
  omnibus-gitlab files/gitlab-cookbooks/gitlab/recipes/gitlab-rails.rb (11.11.8+ce.0,
  12.10.14+ce.0, 13.12.15+ce.0, 15.9.8+ce.0), gitaly/recipes/git_data_dirs.rb
  (16.11.10+ce.0, 17.7.0+ce.0); the default in gitaly/libraries/gitaly.rb
  parse_git_data_dirs.
- from 17.8 the paths of Gitaly's storages (``gitaly['configuration'][:storage]``,
  merged from git_data_dirs and repositories_storages by parse_gitaly_storages, a
  default storage at /var/opt/gitlab/git-data/repositories when none is given).
  gitaly/recipes/git_data_dirs.rb and gitaly/libraries/gitaly.rb at 17.8.0+ce.0,
  18.0.0+ce.0.

``manage_storage_directories['enable'] = false`` turns every storage_directory off
(package/resources/storage_directory.rb).

Standard library only: the sim image carries this module.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from lab.omnibus.release import DIRS_FROM_GITALY_STORAGES, Version

DEFAULT_GIT_DATA = "/var/opt/gitlab/git-data"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _storage_paths(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(e["path"]) for e in value if isinstance(e, Mapping) and e.get("path")]


def created_storage_dirs(settings: Mapping[str, Any], version: Version) -> tuple[str, ...]:
    """The storage folders reconfigure of ``version`` makes for these gitlab.rb settings."""
    if _map(settings.get("manage_storage_directories")).get("enable") is False:
        return ()
    dirs: list[str] = []
    git_data_dirs = _map(settings.get("git_data_dirs"))
    if version < DIRS_FROM_GITALY_STORAGES:
        entries = git_data_dirs or {"default": {"path": DEFAULT_GIT_DATA}}
        for entry in entries.values():
            path = str(_map(entry).get("path") or DEFAULT_GIT_DATA)
            dirs += [path, posixpath.join(path, "repositories")]
        return tuple(dict.fromkeys(dirs))
    gitaly = _map(settings.get("gitaly"))
    dirs = _storage_paths(_map(gitaly.get("configuration")).get("storage"))
    for source in (git_data_dirs, _map(_map(settings.get("gitlab_rails"))
                                       .get("repositories_storages"))):
        for entry in source.values():
            folder = _map(entry).get("path")
            if folder:
                dirs.append(posixpath.join(str(folder), "repositories"))
    if not dirs:
        dirs.append(posixpath.join(DEFAULT_GIT_DATA, "repositories"))
    return tuple(dict.fromkeys(dirs))


def missing_storages(storages: Mapping[str, str], settings: Mapping[str, Any],
                     version: Version) -> list[tuple[str, str]]:
    """(name, path) of each Gitaly storage whose folder reconfigure would not create."""
    made = created_storage_dirs(settings, version)
    return [(name, path) for name, path in storages.items()
            if posixpath.normpath(path) not in {posixpath.normpath(d) for d in made}]
