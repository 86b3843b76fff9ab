"""gitlab-rake for the sim: ``gitlab:gitaly:check`` and ``gitlab:gitlab_shell:check``."""

from __future__ import annotations

import sys
from typing import Any

from labsim.common import simconfig

# Each task imports its own client: gitaly_client pulls in grpc (~0.25 s), which the
# shell check (`gitaly check` on a Gitaly-only node) has no use for.


def gitaly_check(app: dict[str, Any]) -> int:
    """As GitLab's SystemCheck::GitalyCheck: "Gitaly: ... " and then one line per storage,
    "<name> ... OK" or "<name> ... FAIL: <message>". The task exits 0 either way."""
    from labsim.gitaly import gitaly_client

    print("Checking Gitaly ...\n")
    print("Gitaly: ... ", end="")
    for name, storage in gitaly_client.storages(app).items():
        try:
            storage.server_info()
            print(f"{name} ... OK")
        except gitaly_client.GitalyCallError as exc:
            print(f"{name} ... FAIL: {exc}")
    print("\nChecking Gitaly ... Finished\n")
    return 0


def shell_check(node: dict[str, Any]) -> int:
    """As GitLab's SystemCheck::GitlabShellCheck: the internal API, called as the hooks
    call it (the header of the node's release, its own shell secret)."""
    from labsim.gitaly import githook

    print("Checking GitLab Shell ...\n")
    try:
        githook.call(node["gitaly"], simconfig.release(node), "check")
        print("Internal API available: OK")
        code = 0
    except githook.ApiError as exc:
        print(f"Internal API available: FAILED - {exc}")
        code = 1
    print("\nChecking GitLab Shell ... Finished\n")
    return code


def main(argv: list[str]) -> int:
    # Rake reads NAME=value arguments as environment settings, not tasks (the source
    # install guide's `rake gitlab:gitaly:check RAILS_ENV=production`).
    tasks = [a for a in argv if not a.startswith("-") and "=" not in a]
    node = simconfig.read_runtime()
    if tasks == ["gitlab:gitaly:check"] and node.get("app"):
        return gitaly_check(node["app"])
    if tasks == ["gitlab:gitlab_shell:check"] and node.get("gitaly"):
        return shell_check(node)
    print(f"gitlab-rake (gitlab-testlab-sim): task not available here: {' '.join(argv)}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
