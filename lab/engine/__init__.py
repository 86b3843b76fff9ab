"""The only room that talks to Docker: the SDK (docker.py; its snapshots: snapshots.py), Compose."""
