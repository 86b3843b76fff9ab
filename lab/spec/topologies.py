"""Built-in topologies, as plain spec data merged under a user's spec."""

from __future__ import annotations

import copy
from typing import Any

_APP: dict[str, Any] = {"roles": ["app"], "publish": {"http": 0}}

TOPOLOGIES: dict[str, dict[str, Any]] = {
    # One all-in-one node, as a default Omnibus install.
    "single": {
        "nodes": {"gitlab": {"roles": ["app", "gitaly"], "storages": ["default"],
                             "publish": {"http": 0}}},
    },
    # The guide's example: Gitaly on its own node serving two storages.
    "scaled": {
        "nodes": {
            "gitlab": _APP,
            "gitaly1": {"roles": ["gitaly"], "storages": ["default", "storage1"]},
        },
    },
    "sharded": {
        "nodes": {
            "gitlab": _APP,
            "gitaly1": {"roles": ["gitaly"], "storages": ["default"]},
            "gitaly2": {"roles": ["gitaly"], "storages": ["storage1"]},
        },
    },
    # Gitaly Cluster as GitLab's docs set it up: Praefect in front of three Gitaly nodes,
    # its own PostgreSQL, one virtual storage; each Gitaly's storage named after its node.
    "cluster": {
        "nodes": {
            "gitlab": _APP,
            "praefect": {"roles": ["praefect"], "storages": ["default"],
                         # replication_factor: each repository on every one of them.
                         "gitaly_nodes": ["gitaly1", "gitaly2", "gitaly3"]},
            "praefect-db": {"roles": ["postgres"]},
            **{f"gitaly{i}": {"roles": ["gitaly"], "storages": [
                {"name": f"gitaly{i}", "path": "/var/opt/gitlab/git-data"}]}
               for i in (1, 2, 3)},
        },
    },
}


def topology(name: str) -> dict[str, Any]:
    return copy.deepcopy(TOPOLOGIES[name])
