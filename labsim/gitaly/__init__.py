"""The sim's Gitaly: gRPC server, git services, repository moves, hooks, and its client."""
