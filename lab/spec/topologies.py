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
}


def topology(name: str) -> dict[str, Any]:
    return copy.deepcopy(TOPOLOGIES[name])
