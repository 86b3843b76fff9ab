"""What a lab needs from the machine, per node and flavour: memory and disk.

Read by doctor (is there room for this lab?) and by the scenario planner (how
many labs fit side by side).
"""

from __future__ import annotations

from lab.model.topology import Flavor, Lab

GiB = 1024 ** 3
# Omnibus: plan 4+ GB per app node (the guide); a Gitaly-only node runs a fraction of it.
OMNIBUS_APP_BYTES = 4 * GiB
OMNIBUS_GITALY_BYTES = 1 * GiB
SIM_NODE_BYTES = 256 * 1024 ** 2
OMNIBUS_IMAGE_BYTES = 4 * GiB  # a pulled gitlab-ce image, unpacked
OMNIBUS_NODE_DISK = 2 * GiB
SIM_NODE_DISK = 200 * 1024 ** 2


def memory_needed(lab: Lab) -> int:
    if lab.flavor is Flavor.OMNIBUS:
        return sum(OMNIBUS_APP_BYTES if n.is_app else OMNIBUS_GITALY_BYTES for n in lab.nodes)
    return SIM_NODE_BYTES * len(lab.nodes)


def disk_needed(lab: Lab, image_present: bool) -> int:
    if lab.flavor is Flavor.OMNIBUS:
        return (0 if image_present else OMNIBUS_IMAGE_BYTES) + OMNIBUS_NODE_DISK * len(lab.nodes)
    return SIM_NODE_DISK * len(lab.nodes)
