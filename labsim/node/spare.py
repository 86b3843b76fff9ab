"""A service's next process, started before it is needed (``Supervisor.make_spares``).

A sim service spends most of its start importing (gRPC, the service's modules: 0.2 s
for Gitaly, more for the web server), while a reconfigure that restarts it waits. The
supervisor starts this ahead: it imports the service's module, then waits on stdin.
``go`` runs the service's ``main`` (which reads the runtime config then, not now); end
of input without it ends the process unused.

Usage: python3 -P -m labsim.node.spare MODULE
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    module = importlib.import_module(argv[0])
    if sys.stdin.readline().strip() != "go":
        return 0
    code: int = module.main()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
