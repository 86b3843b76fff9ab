"""A running lab. Every engine's handle is loaded with the package, so that
``lab.lifecycle.handle.handle_class`` knows it without importing it (lab.lifecycle.swarm
registers SwarmLab in ``handle.HANDLES``)."""

from lab.lifecycle import swarm

__all__ = ["swarm"]
