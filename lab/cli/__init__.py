"""The `lab` command line: one module per subcommand, one top-level error catch."""
