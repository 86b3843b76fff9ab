"""The Docker labels the lab puts on what it creates (render writes them, the engine reads them)."""

from __future__ import annotations

LABEL_PREFIX = "io.gitlab-testlab"
LAB_LABEL = f"{LABEL_PREFIX}.lab"
NODE_LABEL = f"{LABEL_PREFIX}.node"
ROLE_LABEL = f"{LABEL_PREFIX}.role"
DIR_LABEL = f"{LABEL_PREFIX}.dir"
