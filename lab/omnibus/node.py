"""What we know about an Omnibus node (the real image and the sim alike).

Command lists are pure and asserted by tests. ``ServicesProbe`` decides when a
node's services are up from the process table and ``gitlab-ctl status`` exit
codes — reconfigure finished and every service running — rather than guessing
from log text, and retries a failed reconfigure once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lab.errors import NotReady
from lab.readiness import Status

if TYPE_CHECKING:  # the renderer imports this module and must not reach the engine
    from lab.engine.run import Result

GITLAB_CTL = "/opt/gitlab/bin/gitlab-ctl"
HEALTHCHECK = "/opt/gitlab/bin/gitlab-healthcheck"
TOKEN_NAME = "gitlab-testlab"
TOKEN_OK = "token-ok"
# Omnibus runs its Chef (Cinc from 15.x) client for every reconfigure; while one
# runs, services are being (re)configured. The bracketed alternation keeps the
# pattern from matching the command line of the shell and grep doing the search.
RECONFIGURE_PATTERN = "(cinc|chef)-client"
RECONFIGURE_TIMEOUT = 1200.0
# After reconfigure stopped running, services get this long to come up before
# we call the reconfigure failed and retry it once.
RECONFIGURE_GRACE = 90.0

# (cmd, timeout) -> Result; returns non-zero exits instead of raising.
ExecFn = Callable[[list[str], float | None], "Result"]


def status_cmd(service: str | None = None) -> list[str]:
    return [GITLAB_CTL, "status", *([service] if service else [])]


def reconfigure_cmd() -> list[str]:
    return [GITLAB_CTL, "reconfigure"]


def reconfigure_running_cmd() -> list[str]:
    """Exit 0 while a Chef/Cinc client (a reconfigure) runs, 1 when none does."""
    return ["sh", "-c",
            f"cat /proc/[0-9]*/cmdline 2>/dev/null | grep -aEq '{RECONFIGURE_PATTERN}'"]


def healthcheck_cmd() -> list[str]:
    return [HEALTHCHECK, "--fail", "--max-time", "10"]


def readiness_cmd(*, all_checks: bool = True) -> list[str]:
    # Probes answer only the monitoring whitelist (loopback), hence from inside.
    url = "http://localhost/-/readiness" + ("?all=1" if all_checks else "")
    return ["curl", "-fsS", "--max-time", "10", url]


def gitaly_check_cmd() -> list[str]:
    return ["gitlab-rake", "gitlab:gitaly:check"]


def admin_token_ruby(token: str) -> str:
    return ("user = User.find_by_username('root'); token = user.personal_access_tokens.create("
            "scopes: [:api, :read_repository, :write_repository], name: 'gitlab-testlab', "
            "expires_at: 365.days.from_now); token.set_token('" + token + "'); token.save!; "
            f"puts '{TOKEN_OK}'")


def admin_token_cmd(token: str) -> list[str]:
    return ["gitlab-rails", "runner", admin_token_ruby(token)]


def token_check_cmd(token: str) -> list[str]:
    """Prints the HTTP status of GET /api/v4/user (used when no port is published)."""
    return ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
            "-H", f"PRIVATE-TOKEN: {token}", "http://localhost/api/v4/user"]


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _first_down(status_out: str) -> str:
    for line in status_out.splitlines():
        if line.startswith(("down:", "fail:", "warning:")):
            return line.split(";")[0].strip()
    return status_out.strip().splitlines()[0] if status_out.strip() else "no services yet"


@dataclass
class ServicesProbe:
    """One node's "services up" check, with one retry of a failed reconfigure.

    Up means: no reconfigure running, and ``gitlab-ctl status`` exits 0 listing at
    least one running service (before the first reconfigure there are none, and
    an empty status also exits 0).
    """

    node: str
    exec_fn: ExecFn
    now: Callable[[], float]
    grace: float = RECONFIGURE_GRACE
    retried: bool = False
    down_since: float | None = field(default=None, repr=False)
    on_retry: Callable[[str], None] = field(default=lambda node: None, repr=False)

    def __call__(self) -> Status:
        busy = self.exec_fn(reconfigure_running_cmd(), 30)
        if busy.returncode == 0:
            self.down_since = None
            return Status(False, "reconfigure running")
        st = self.exec_fn(status_cmd(), 60)
        if st.returncode == 0 and "run:" in st.stdout:
            return Status(True, "services up")
        detail = _first_down(st.stdout)
        now = self.now()
        if self.down_since is None:
            self.down_since = now
        elif now - self.down_since >= self.grace:
            self._retry_reconfigure()
            self.down_since = self.now()
            return Status(False, "reconfigure retried; waiting for services")
        return Status(False, f"services not up ({detail})")

    def _retry_reconfigure(self) -> None:
        if self.retried:
            raise NotReady(self.node, "services are still down after a retried "
                           "`gitlab-ctl reconfigure`", "",
                           hint=f"see `lab logs {self.node}` and the node's gitlab.rb")
        self.retried = True
        self.on_retry(self.node)
        res = self.exec_fn(reconfigure_cmd(), RECONFIGURE_TIMEOUT)
        if res.returncode != 0:
            raise NotReady(self.node, f"`gitlab-ctl reconfigure` failed (exit {res.returncode}) "
                           "when retried", tail(res.stdout + res.stderr),
                           hint=f"fix nodes/{self.node}/gitlab.rb in the lab directory")


def token_status(http_status: int | str) -> bool:
    return str(http_status).strip() == "200"


def ran_ok(res: Result, marker: str = TOKEN_OK) -> bool:
    return res.returncode == 0 and marker in res.stdout


def failure_line(res: Result) -> str:
    lines: Sequence[str] = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {res.returncode}"
