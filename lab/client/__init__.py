"""Talking to a running lab: GitLab API, git over HTTP(S), Gitaly gRPC checks."""
