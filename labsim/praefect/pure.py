"""The sim Praefect's pure parts (no database client, no gRPC): what the host's unit
tests check without the image's packages."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from lab.omnibus import praefect as omnibus_praefect

if TYPE_CHECKING:
    # Only a type here: gitlab-ctl and PID 1 import this module, and grpc's import alone
    # costs each of them about 0.1 s of CPU while a lab boots.
    import grpc


def replica_path(repository_id: int) -> str:
    """Praefect's path for a new repository on the Gitaly nodes (from PRAEFECT_REPLICA_PATHS):
    @cluster/repositories/<2 hex>/<2 hex>/<id>, from sha256 of the id's decimal text
    (Gitaly v16.7.0 internal/gitaly/storage/repository_path.go, DeriveReplicaPath)."""
    digest = hashlib.sha256(str(repository_id).encode()).hexdigest()
    return f"@cluster/repositories/{digest[0:2]}/{digest[2:4]}/{repository_id}"


def write_config(conf: dict[str, Any], path: str = omnibus_praefect.CONFIG_TOML) -> None:
    """The config.toml reconfigure writes (Praefect's own keys), mode 0640."""
    def q(value: Any) -> str:
        return json.dumps(str(value))
    lines = [f"listen_addr = {q(conf['listen_addr'])}"]
    if conf.get("tls_listen_addr"):
        lines += [f"tls_listen_addr = {q(conf['tls_listen_addr'])}", "[tls]",
                  f"certificate_path = {q(conf['certificate_path'])}",
                  f"key_path = {q(conf['key_path'])}"]
    lines += ["[auth]", f"token = {q(conf['token'])}", "[database]"]
    lines += [f"{k} = {q(v)}" if k != "port" else f"port = {int(v)}"
              for k, v in conf["database"].items()]
    for vs, nodes in conf["virtual_storages"].items():
        lines += ["[[virtual_storage]]", f"name = {q(vs)}"]
        if vs in conf.get("replication_factor", {}):
            lines.append(f"default_replication_factor = {int(conf['replication_factor'][vs])}")
        for n in nodes:
            lines += ["[[virtual_storage.node]]", f"storage = {q(n['storage'])}",
                      f"address = {q(n['address'])}", f"token = {q(n['token'])}"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def go_code(code: grpc.StatusCode) -> str:
    """A gRPC code as Go's codes.Code.String() names it (PERMISSION_DENIED -> PermissionDenied)."""
    return "".join(part.capitalize() for part in code.name.split("_")).replace("Ok", "OK")


