"""What applying a new lab state does to each node, and why (pure: data in, actions out).

An admin changes files in /etc/gitlab and runs `gitlab-ctl reconfigure`; Omnibus
then restarts only the services whose rendered configuration changed (its
cookbooks' template `notifies`, see docs/fidelity.md). ``apply_actions`` does the
same where it can, and falls back to what a reconfigure cannot do:

- the node's Compose service changed (image, ports, environment, networks,
  mounts): **recreate** its container; when its mounts changed (a node installed the
  other way), the old container is removed first (``NodeAction.anew``): Compose,
  recreating it, keeps what the old one had mounted where the image declares a volume
  (Compose v1 an anonymous /etc/gitlab volume over the new bind mount, so the node came
  back without its gitlab.rb; v2 the old bind mount in place of the new tmpfs);
- files the services read only at start changed (Gitaly's TLS certificate and
  key; the trusted CAs, which reconfigure picks up only when one is *added*), or
  the shell secret changed on a Gitaly node of a release whose reconfigure does
  not restart Gitaly for it (before lab.omnibus.release.GITALY_RESTARTS_ON_SHELL_SECRET):
  **restart** its services: `gitlab-ctl reconfigure` (which links a trusted CA and
  applies gitlab.rb), then `gitlab-ctl restart`, in the running container; a restarted
  Omnibus container would run its whole reconfigure at boot, to the same end. When
  nothing reconfigure reads changed (only Gitaly's certificate and key), the reconfigure
  would change nothing (a whole Chef run on Omnibus): the restart alone;
- only gitlab.rb or gitlab-secrets.json changed: **reconfigure** in place;
- a node installed from source (config.toml, the secret file) has no reconfigure and no
  gitlab-ctl: any change of its files **restarts** its container, which starts its
  services again on the new files, as the source install guide applies a change;
- nothing of the node changed: **nothing**.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lab.omnibus.release import GITALY_RESTARTS_ON_SHELL_SECRET, Version

# The files reconfigure reads and acts on (the rest of /etc/gitlab is read by services).
RECONFIGURED_FILES = ("gitlab.rb", "gitlab-secrets.json")
# Reconfigure links the CAs found here into the trusted store (add_trusted_certs.rb); the
# services read that store when they start.
TRUSTED_CERTS = "trusted-certs/"


class Action(StrEnum):
    NOTHING = "nothing"
    RECONFIGURE = "reconfigure"
    RESTART = "restart"
    RECREATE = "recreate"
    REMOVE = "remove"


@dataclass(frozen=True)
class NodeAction:
    node: str
    action: Action
    why: str
    #: A RESTART in place runs `gitlab-ctl reconfigure` first (False: nothing it reads
    #: changed, so it would change nothing).
    reconfigure: bool = True
    #: A RECREATE whose container goes first, so that nothing of it is carried over.
    anew: bool = False


@dataclass(frozen=True)
class NodeActions:
    nodes: tuple[NodeAction, ...]

    def names(self, action: Action) -> list[str]:
        return [p.node for p in self.nodes if p.action == action]

    @property
    def changed(self) -> list[str]:
        """Nodes that were touched (removed ones are gone, not changed)."""
        return sorted(p.node for p in self.nodes
                      if p.action not in (Action.NOTHING, Action.REMOVE))

    def describe(self) -> list[str]:
        return [f"{p.node}: {p.action.value} ({p.why})" for p in self.nodes
                if p.action != Action.NOTHING]


def _node_files(files: Mapping[str, str], node: str) -> dict[str, str]:
    prefix = f"nodes/{node}/"
    return {p[len(prefix):]: c for p, c in files.items() if p.startswith(prefix)}


def _service_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in {*old, *new} if old.get(k) != new.get(k))


def _shell_secret(secrets_json: str | None) -> str | None:
    if secrets_json is None:
        return None
    try:
        data = json.loads(secrets_json)
    except ValueError:
        return None
    shell = data.get("gitlab_shell") if isinstance(data, dict) else None
    return str(shell.get("secret_token")) if isinstance(shell, dict) else None


def node_action(node: str, old_service: Mapping[str, Any] | None,
                new_service: Mapping[str, Any], old_files: Mapping[str, str],
                new_files: Mapping[str, str], *, version: Version, runs_gitaly: bool,
                runs_app: bool, from_source: bool = False) -> NodeAction:
    """One node's action; ``*_files`` are the node's files by their path in its folder."""
    if old_service is None:
        return NodeAction(node, Action.RECREATE, "new node")
    keys = _service_diff(old_service, new_service)
    if keys:
        return NodeAction(node, Action.RECREATE, f"compose service changed: {', '.join(keys)}",
                          anew="volumes" in keys)
    changed = sorted(p for p in {*old_files, *new_files} if old_files.get(p) != new_files.get(p))
    if not changed:
        return NodeAction(node, Action.NOTHING, "unchanged")
    if from_source:
        return NodeAction(node, Action.RESTART,
                          f"installed from source (no reconfigure): {', '.join(changed)}")
    read_at_start = [p for p in changed if p not in RECONFIGURED_FILES]
    if read_at_start:
        reconfigure = any(p in RECONFIGURED_FILES or p.startswith(TRUSTED_CERTS)
                          for p in changed)
        return NodeAction(node, Action.RESTART,
                          f"read only when services start: {', '.join(read_at_start)}",
                          reconfigure)
    secrets = "gitlab-secrets.json"
    if runs_gitaly and not runs_app and version < GITALY_RESTARTS_ON_SHELL_SECRET \
            and _shell_secret(old_files.get(secrets)) != _shell_secret(new_files.get(secrets)):
        return NodeAction(node, Action.RESTART,
                          f"shell secret changed; reconfigure restarts Gitaly for it from "
                          f"{GITALY_RESTARTS_ON_SHELL_SECRET} only")
    return NodeAction(node, Action.RECONFIGURE, f"changed: {', '.join(changed)}")


def apply_actions(old_services: Mapping[str, Mapping[str, Any]],
                  new_services: Mapping[str, Mapping[str, Any]],
                  old_files: Mapping[str, str], new_files: Mapping[str, str], *,
                  version: Version, gitaly_nodes: set[str] | frozenset[str] = frozenset(),
                  app_nodes: set[str] | frozenset[str] = frozenset(),
                  source_nodes: set[str] | frozenset[str] = frozenset()) -> NodeActions:
    """The action for every node of the new state, plus the removed ones.

    ``*_services``: the Compose services by node; ``*_files``: the rendered files by
    path in the lab folder (what the toolkit renders, not what is on disk: Omnibus
    writes its own sections into gitlab-secrets.json, which is no change of ours).
    ``version``: the release of the new state.
    """
    actions = [node_action(n, old_services.get(n), new_services[n], _node_files(old_files, n),
                           _node_files(new_files, n), version=version,
                           runs_gitaly=n in gitaly_nodes, runs_app=n in app_nodes,
                           from_source=n in source_nodes)
               for n in new_services]
    actions += [NodeAction(n, Action.REMOVE, "not in the new state")
                for n in old_services if n not in new_services]
    return NodeActions(tuple(actions))
