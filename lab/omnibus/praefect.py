"""What each Omnibus release knows about Praefect (Gitaly Cluster) and its database.

Sources (omnibus-gitlab, files/gitlab-cookbooks/praefect/ at each tag; docs/fidelity.md):
- 12.4.0 is the first release with a ``praefect`` cookbook (attributes: one
  ``virtual_storage_name`` and a ``storage_nodes`` list with a static primary, no database).
- 12.6 replaced them with ``praefect['virtual_storages']`` and the ``database_*`` keys.
- 13.3.0 is the first release whose defaults run the documented cluster: Praefect's
  attributes turn ``failover_enabled`` on with ``failover_election_strategy = 'sql'``
  (a primary elected through the database), Gitaly's Praefect keeps its replication
  queue in PostgreSQL by default (13.1, ``memory_queue_enabled`` false) and
  ``tls_listen_addr`` exists (13.2). The lab's ``cluster`` topology starts there.
- 13.9: a virtual storage entry is ``{'default_replication_factor' => N, 'nodes' => {...}}``
  (templates/default/praefect-config.toml.erb); before, the entry was the nodes themselves.
- 15.9: ``praefect['configuration']`` (praefect/libraries/praefect.rb, remap_legacy_values;
  attributes/default.rb) in Praefect's own structure; the legacy keys are remapped, and
  16.0 removes them (package/libraries/deprecations.rb, praefect_legacy_configuration_
  deprecations: "In GitLab 15.9, Praefect's configuration ... was changed").

Standard library only, like the rest of lab/omnibus.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.omnibus.release import Version

FIRST_COOKBOOK = "12.4.0"
FIRST_CLUSTER = "13.3.0"
PORT = 2305
TLS_PORT = 3305
DB_PORT = 5432
DB_NAME = "praefect_production"
DB_USER = "praefect"
CONFIG_TOML = "/var/opt/gitlab/praefect/config.toml"
BINARY = "/opt/gitlab/embedded/bin/praefect"


@dataclass(frozen=True)
class PraefectDialect:
    version: Version
    configuration: bool  # praefect['configuration'] (15.9+) or the legacy keys
    legacy: bool  # legacy praefect[...] keys still read (until 16.0)
    replication_factor: bool  # default_replication_factor (13.9+)

    @property
    def name(self) -> str:
        return "praefect['configuration']" if self.configuration else \
            "legacy praefect[...] keys"


def praefect_dialect(version: Version) -> PraefectDialect:
    at = version.at_least
    return PraefectDialect(version=version, configuration=at("15.9.0"),
                           legacy=not at("16.0.0"), replication_factor=at("13.9.0"))


def cluster_unsupported(version: Version) -> str | None:
    """Why a Gitaly Cluster lab can't be rendered for ``version`` (None: it can)."""
    if version.at_least(FIRST_CLUSTER):
        return None
    if version.at_least(FIRST_COOKBOOK):
        why = (f"Omnibus has a praefect cookbook from {FIRST_COOKBOOK}, but its defaults run a "
               "database-backed cluster with automatic failover only from "
               f"{FIRST_CLUSTER}")
    else:
        why = f"Omnibus has no Praefect before {FIRST_COOKBOOK}"
    return (f"Gitaly Cluster (Praefect) labs start at GitLab {FIRST_CLUSTER}: {why}; "
            f"use --version {FIRST_CLUSTER} or newer")

