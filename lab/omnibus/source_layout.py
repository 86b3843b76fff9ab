"""Where a node installed from source keeps its files (stdlib only: the sim image reads it).

The installation-from-source layout of GitLab's doc/install/installation.md: everything
under the `git` user's home. The renderer (lab.render.source) writes these paths, the
sim's source Gitaly (labsim.common.sourceconfig) reads them, and the compose file mounts
the node's ``home/git`` folder there.
"""

from __future__ import annotations

GIT_HOME = "/home/git"
GITALY_DIR = f"{GIT_HOME}/gitaly"
SHELL_DIR = f"{GIT_HOME}/gitlab-shell"
GITLAB_DIR = f"{GIT_HOME}/gitlab"
CONFIG_TOML = f"{GITALY_DIR}/config.toml"
SHELL_SECRET_FILE = f"{SHELL_DIR}/.gitlab_shell_secret"
SHELL_CONFIG_YML = f"{SHELL_DIR}/config.yml"
GITLAB_YML = f"{GITLAB_DIR}/config/gitlab.yml"
APP_SHELL_SECRET_FILE = f"{GITLAB_DIR}/.gitlab_shell_secret"
TLS_CERT = f"{GITALY_DIR}/cert.pem"
TLS_KEY = f"{GITALY_DIR}/key.pem"
# The compose environment variable that tells the sim image it plays a source node.
INSTALL_ENV = "GITLAB_TESTLAB_INSTALL"


def sim_listening_cmd(port: int) -> list[str]:
    """On the sim, "is the source Gitaly up": a TCP connect to its port (no gitlab-ctl on
    such a node). The compose healthcheck and the readiness probe both run it."""
    return ["python3", "-c",
            f"import socket; socket.create_connection(('127.0.0.1', {port}), 5)"]
