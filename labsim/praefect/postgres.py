"""The `postgresql` service of a sim node with ``roles(['postgres_role'])``: Debian's
PostgreSQL server, run as Omnibus runs its own.

Omnibus keeps the cluster in /var/opt/gitlab/postgresql/data with the socket in
/var/opt/gitlab/postgresql, the superuser named ``gitlab-psql``, and writes pg_hba.conf
from ``postgresql['trust_auth_cidr_addresses']`` (trust) and
``['md5_auth_cidr_addresses']`` (md5), local socket connections trusted
(omnibus-gitlab files/gitlab-cookbooks/postgresql/templates/default/pg_hba.conf.erb).
The sim's image has no LLVM, so the JIT is off.
"""

from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
import sys
import threading
from typing import Any

from labsim.common import simconfig

HOME = "/var/opt/gitlab/postgresql"
DATA = os.path.join(HOME, "data")
SUPERUSER = "gitlab-psql"
OS_USER = "postgres"  # Debian's package makes this account
#: The same initdb, made when the image was built (images/sim/Dockerfile).
TEMPLATE = "/opt/gitlab/embedded/postgresql-initdb.tar.zst"
# A safety net: signals wake the wrapper's wait (``main``).
IDLE_LOOK = 5.0


def log(message: str) -> None:
    simconfig.log("postgresql", message)


def bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return found[-1] if found else "/usr/lib/postgresql/15/bin"


def hba(conf: dict[str, Any]) -> str:
    lines = ["# Written by the gitlab-testlab sim from gitlab.rb", "local all all trust"]
    lines += [f"host all all {c} trust" for c in conf.get("trust_auth_cidr_addresses") or []]
    lines += [f"host all all {c} md5" for c in conf.get("md5_auth_cidr_addresses") or []]
    return "\n".join(lines) + "\n"


def main() -> int:
    conf = simconfig.read_runtime().get("postgresql") or {}
    user = pwd.getpwnam(OS_USER)
    os.makedirs(DATA, exist_ok=True)
    for path in (HOME, DATA):
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(DATA, 0o700)
    if not os.path.exists(os.path.join(DATA, "PG_VERSION")) and os.path.isfile(TEMPLATE):
        subprocess.run(["tar", "--zstd", "-xf", TEMPLATE, "--same-owner", "-C", HOME],
                       check=False)
        log("initialized the database cluster")
    if not os.path.exists(os.path.join(DATA, "PG_VERSION")):
        made = subprocess.run([os.path.join(bindir(), "initdb"), "-D", DATA, "-U", SUPERUSER,
                               "-E", "UTF8", "--no-locale", "--no-sync", "--wal-segsize=1"],
                              user=user.pw_uid, group=user.pw_gid, capture_output=True,
                              text=True, check=False)
        if made.returncode != 0:
            log(f"initdb failed: {made.stderr.strip()}")
            return 1
        log("initialized the database cluster")
    with open(os.path.join(DATA, "pg_hba.conf"), "w") as fh:
        fh.write(hba(conf))
    listen = str(conf.get("listen_address") or "localhost")
    proc = subprocess.Popen(
        [os.path.join(bindir(), "postgres"), "-D", DATA, "-c", f"listen_addresses={listen}",
         "-c", f"port={int(conf.get('port') or 5432)}", "-c", f"unix_socket_directories={HOME}",
         "-c", "jit=off", "-c", "fsync=off", "-c", "logging_collector=off"],
        user=user.pw_uid, group=user.pw_gid, stdin=subprocess.DEVNULL)
    log(f"postgres started (pid {proc.pid}); listening on {listen}")
    return watch(proc)


def watch(proc: subprocess.Popen[bytes]) -> int:
    """Until postgres exits (1) or this wrapper is stopped (SIGTERM, SIGINT), which stops
    postgres (0)."""
    stop = threading.Event()  # SIGTERM or SIGINT
    woken = threading.Event()  # those, or postgres' exit (SIGCHLD: its only child)

    def asked(*_: object) -> None:
        stop.set()
        woken.set()
    signal.signal(signal.SIGTERM, asked)
    signal.signal(signal.SIGINT, asked)
    signal.signal(signal.SIGCHLD, lambda *_: woken.set())
    while not stop.is_set():
        if proc.poll() is not None:
            log(f"postgres exited with {proc.returncode}")
            return 1
        # Woken by what it acts on; it used to look five times a second.
        woken.wait(IDLE_LOOK)
        woken.clear()  # a signal after this is seen by the next round's own checks
    proc.send_signal(signal.SIGINT)  # fast shutdown, as `gitlab-ctl stop postgresql`
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
