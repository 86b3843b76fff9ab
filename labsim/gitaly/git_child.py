"""What git runs as a hook or gitaly-ssh of the sim's Gitaly: hands the work to Gitaly's
fork (labsim.gitaly.git_children), or runs it here where there is none.

Imports only what labsim.common.handover does: this runs under ``python3 -S`` (no site
packages), so that starting it costs a few milliseconds; running it here sets the site
packages up first.

Usage: python3 -P -S -m labsim.gitaly.git_child NAME [ARG...]
(NAME: pre-receive, post-receive or gitaly-ssh)
"""

from __future__ import annotations

import os
import sys

from labsim.common import handover

#: The variable in git's environment that names the server's socket (set by Gitaly).
SOCKET_ENV = "LABSIM_GITALY_CHILDREN"


def here(name: str, args: list[str]) -> int:
    """Run ``name`` in this process, as git's processes did before the server."""
    import site

    site.main()
    if name == "gitaly-ssh":
        from labsim.gitaly import gitaly_ssh

        sys.argv = [gitaly_ssh.__file__, *args]
        os._exit(gitaly_ssh.main())  # its request thread may still wait on git's stdin
    from labsim.gitaly import githook

    return githook.main(name)


def main(argv: list[str]) -> int:
    path = os.environ.get(SOCKET_ENV, "")
    code = handover.ask(path, argv, argv[0]) if path else None
    return here(argv[0], argv[1:]) if code is None else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
