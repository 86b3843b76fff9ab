"""The sim\x27s Praefect (Gitaly Cluster) and the PostgreSQL that keeps its state."""
