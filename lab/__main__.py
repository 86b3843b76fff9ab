"""`python3 -m lab ...`: the `lab` command, where the console script is not on PATH
(a checkout run with PYTHONPATH, a virtualenv not activated)."""

from lab.cli.main import main

main()
