"""Pure renderers: a ``Lab`` plus its secrets -> file contents. No Docker, no disk."""
