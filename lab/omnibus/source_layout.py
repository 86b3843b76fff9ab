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
# Where the source install guide has a Gitaly client trust Gitaly's certificate ("copy the
# certificate to the system trusted certificates": update-ca-certificates reads it here).
SYSTEM_CA_DIR = "/usr/local/share/ca-certificates"
# Where the web server of a source install listens for the lab (the guide's NGINX site).
SOURCE_HTTP_PORT = 80
TLS_KEY = f"{GITALY_DIR}/key.pem"
# The compose environment variable that tells the sim image it plays a source node.
INSTALL_ENV = "GITLAB_TESTLAB_INSTALL"


def sim_listening_cmd(port: int, *, within: float = 0.0) -> list[str]:
    """On the sim, "is the source Gitaly up": a TCP connect to its port (no gitlab-ctl on
    such a node). The compose healthcheck and the readiness probe both run it; the probe
    with ``within``: it tries again for that many seconds and ends as the port opens, where
    a round of readiness per try cost an exec (about 60 ms) and a pause each."""
    connect = f"socket.create_connection(('127.0.0.1', {port}), 5)"
    if within <= 0:
        return ["python3", "-c", f"import socket; {connect}"]
    return ["python3", "-c", "\n".join([
        "import socket, time",
        f"end = time.monotonic() + {within:g}",
        "while True:",
        "    try:",
        f"        {connect}.close()",
        "        break",
        "    except OSError:",
        "        if time.monotonic() >= end:",
        "            raise",
        "        time.sleep(0.02)"])]


def service_restart_cmd() -> list[str]:
    """How an admin applies a change on a node installed from source: the install guide's
    init script (doc/administration/restart_gitlab.md, installations from source)."""
    return ["service", "gitlab", "restart"]


def source_health_cmd() -> list[str]:
    """A source app node's health: GitLab's /-/health from inside (the monitoring
    whitelist is loopback by default); a source install has no gitlab-healthcheck."""
    return ["curl", "-fsS", "--max-time", "10", "http://localhost/-/health"]


def bundle_exec(*argv: str) -> list[str]:
    """A Rails command on a source app node, as the install guide runs them: ``bundle exec``
    in the Rails root (``cd /home/git/gitlab``), here through ``env -C`` (coreutils), so no
    shell is involved. The guide adds ``sudo -u git -H``; the lab runs as root."""
    return ["env", "-C", GITLAB_DIR, "bundle", "exec", *argv]


def rake_cmd(task: str) -> list[str]:
    """``bundle exec rake TASK RAILS_ENV=production`` (the guide's form of gitlab-rake)."""
    return bundle_exec("rake", task, "RAILS_ENV=production")


def rails_runner_cmd(ruby: str) -> list[str]:
    """``bundle exec rails runner -e production RUBY`` (the guide's form of gitlab-rails)."""
    return bundle_exec("rails", "runner", "-e", "production", ruby)
