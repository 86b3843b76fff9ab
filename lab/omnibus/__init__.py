"""What Omnibus GitLab does, release by release: the one place that knows it."""
