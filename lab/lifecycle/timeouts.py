"""How long the toolkit waits for a flavour's nodes when not told: the one table.

A first Omnibus boot (reconfigure, migrations, Puma, then `gitlab-rails runner` for the
admin token) takes 5-15 minutes on a small machine; a sim node boots in seconds. A
``--timeout`` (or a ``timeout=`` argument) always wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.model.topology import Flavor, Lab


@dataclass(frozen=True)
class Waits:
    # A whole lab through every readiness layer: `lab up`, a scenario's change, the runner,
    # testcontainers' LabCompose.
    lab_ready: float
    # One Gitaly node answering ServerInfo: testcontainers' GitalyContainer.
    gitaly_node: float


WAITS = {
    Flavor.SIM: Waits(lab_ready=300.0, gitaly_node=60.0),
    Flavor.OMNIBUS: Waits(lab_ready=1200.0, gitaly_node=900.0),
}


def default_timeout(lab: Lab) -> float:
    """How long `lab up`, a scenario change and the runner wait for ``lab`` by default."""
    return WAITS[lab.flavor].lab_ready
