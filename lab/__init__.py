"""gitlab-testlab: GitLab test labs on Docker Compose, proven by scenarios."""

__version__ = "0.1.0"
