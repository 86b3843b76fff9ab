"""gitlab-testlab: GitLab test labs on Docker Compose, proven by scenarios."""

__version__ = "0.1.0"

#: The `schema_version` of every --json output and JSON report: raised when a field changes
#: meaning or goes away (new fields may appear without it).
JSON_SCHEMA_VERSION = 1
