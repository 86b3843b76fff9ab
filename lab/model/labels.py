"""The Docker labels the lab puts on what it creates (render writes them, the engine reads them)."""

from __future__ import annotations

LABEL_PREFIX = "io.gitlab-testlab"
LAB_LABEL = f"{LABEL_PREFIX}.lab"
NODE_LABEL = f"{LABEL_PREFIX}.node"
ROLE_LABEL = f"{LABEL_PREFIX}.role"
DIR_LABEL = f"{LABEL_PREFIX}.dir"
# Who owns a lab on a shared engine (see lab.store.ownership): the lab
# folder's random id, and the id of the state folder that started it.
ID_LABEL = f"{LABEL_PREFIX}.id"
HOME_LABEL = f"{LABEL_PREFIX}.home"
# On the toolkit's own images: "sim" or "base". An image carrying "sim" is never GitLab,
# whatever its tag says (lab.lifecycle.lab_image.sim_posing).
FLAVOR_LABEL = f"{LABEL_PREFIX}.flavor"
# A lab's gateway container on a swarm (lab.lifecycle.swarm): its routes, as it was started.
GATEWAY_LABEL = f"{LABEL_PREFIX}.gateway"
# A Swarm secret's or config's file: its path in the node's /etc/gitlab (lab.render.stack).
FILE_LABEL = f"{LABEL_PREFIX}.file"
