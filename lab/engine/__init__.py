"""The only room that talks to Docker: the SDK (docker.py; snapshots: models.py), Compose."""
