"""What we know about an Omnibus node (the real image and the sim alike).

Command lists and the reading of their output are pure and asserted by tests;
lab.lifecycle.probes turns them into readiness verdicts. There is no retry: the
image's wrapper runs under ``set -e``, so a failed reconfigure ends the
container, which the lifecycle reports with the log tail.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from typing import Protocol

from lab.omnibus.dialect import dialect_for
from lab.omnibus.eras import RECONFIGURED
from lab.omnibus.release import Version
from lab.omnibus.source_layout import rails_runner_cmd, rake_cmd


class Result(Protocol):
    """What a command in a node answered (lab.engine.run.Result is one)."""

    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


GITLAB_CTL = "/opt/gitlab/bin/gitlab-ctl"
# `gitlab-ctl` boots Ruby (omnibus-ctl): a check every 5 s is a core's worth of work
# on a small machine during the boot. The image's own health check runs every 60 s;
# readiness does not wait for Docker's verdict on Omnibus (lifecycle), so a lab uses that.
IMAGE_HEALTH_INTERVAL = "60s"
# `docker stop` sends SIGTERM; the image's handler runs `gitlab-ctl stop`, and the
# app's PostgreSQL needs more than Docker's default 10 s to shut down cleanly.
STOP_GRACE_PERIOD = "120s"
HEALTHCHECK = "/opt/gitlab/bin/gitlab-healthcheck"
TOKEN_NAME = "gitlab-testlab"
TOKEN_OK = "token-ok"
# Chef/Cinc names each recipe it converges; the last one says what reconfigure is doing.
_RECIPE_RE = re.compile(r"Recipe: ([\w:-]+)")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
# Docker's timestamps=True prefix: RFC 3339 with nanoseconds, then one space.
_STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ", re.MULTILINE)

# (cmd, timeout) -> Result; returns non-zero exits instead of raising.
ExecFn = Callable[[list[str], float | None], Result]


def status_cmd(service: str | None = None) -> list[str]:
    return [GITLAB_CTL, "status", *([service] if service else [])]


def reconfigure_cmd() -> list[str]:
    return [GITLAB_CTL, "reconfigure"]


def restart_cmd() -> list[str]:
    return [GITLAB_CTL, "restart"]


def reconfigure_then_restart_cmd() -> list[str]:
    """`gitlab-ctl reconfigure && gitlab-ctl restart`, as an admin types it: the restart
    only after a reconfigure that succeeded, and one exec for both (each costs ~60 ms)."""
    return ["/bin/sh", "-c", f"{shlex.join(reconfigure_cmd())} && {shlex.join(restart_cmd())}"]


def healthcheck_cmd() -> list[str]:
    return [HEALTHCHECK, "--fail", "--max-time", "10"]


def readiness_cmd(*, all_checks: bool = True) -> list[str]:
    # Probes answer only the monitoring whitelist (loopback), hence from inside.
    url = "http://localhost/-/readiness" + ("?all=1" if all_checks else "")
    return ["curl", "-fsS", "--max-time", "10", url]


def gitaly_check_cmd(*, source: bool = False) -> list[str]:
    """``source``: the app node is installed from source (no gitlab-rake there)."""
    task = "gitlab:gitaly:check"
    return rake_cmd(task) if source else ["gitlab-rake", task]


# SystemCheck prints "Gitaly: ... " and then, per storage, "<name> ... OK" or
# "<name> ... FAIL: <message>", one storage a line; the task exits 0 either way.
_GITALY_CHECK_RE = re.compile(r"^(?:Gitaly: \.\.\. )?(\S+) \.\.\. (OK|FAIL:?\s*(.*))$")


def parse_gitaly_check(output: str) -> dict[str, str]:
    """``gitlab-rake gitlab:gitaly:check`` output -> storage -> "" (OK) or the failure."""
    out: dict[str, str] = {}
    for raw in _ANSI_RE.sub("", output).splitlines():
        m = _GITALY_CHECK_RE.match(raw.strip())
        if m:
            out[m.group(1)] = "" if m.group(2) == "OK" else (m.group(3) or "FAIL")
    return out


def admin_token_ruby(token: str, days: int = 364) -> str:
    """Find-or-create root's token by its value, so a second run does not insert it twice.

    ``PersonalAccessToken.find_by_token`` (the digest lookup TokenAuthenticatable
    defines for ``token``) exists from 12.x to 19.x; inserting the same token again
    trips the unique index on ``token_digest`` (PG::UniqueViolation). A found token
    that was revoked or has expired is brought back instead.
    """
    return (
        f"t = PersonalAccessToken.find_by_token('{token}'); "
        "if t.nil?; user = User.find_by_username('root'); "
        "t = user.personal_access_tokens.create(scopes: [:api, :read_repository, "
        f":write_repository], name: '{TOKEN_NAME}', expires_at: {days}.days.from_now); "
        f"t.set_token('{token}'); t.save!; "
        f"elsif t.revoked? || t.expired?; t.update!(revoked: false, expires_at: "
        f"{days}.days.from_now); end; puts '{TOKEN_OK}'")


def admin_token_cmd(token: str, *, source: bool = False) -> list[str]:
    """``source``: the app node is installed from source (no gitlab-rails there)."""
    ruby = admin_token_ruby(token)
    return rails_runner_cmd(ruby) if source else ["gitlab-rails", "runner", ruby]


def token_check_cmd(token: str) -> list[str]:
    """Prints the HTTP status of GET /api/v4/user (used when no port is published)."""
    return ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
            "-H", f"PRIVATE-TOKEN: {token}", "http://localhost/api/v4/user"]


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def node_services(version: Version, *, app: bool, gitaly: bool, praefect: bool = False,
                  postgres: bool = False) -> tuple[str, ...]:
    """The runit services that must run before a node counts as up."""
    out: list[str] = []
    if gitaly:
        out.append("gitaly")
    if praefect:
        out.append("praefect")
    if postgres:
        out.append("postgresql")
    if app:
        out.append(dialect_for(version).default_web_server)
    return tuple(out)


def running_services(status_out: str) -> dict[str, str]:
    """``gitlab-ctl status`` output -> service -> its state word (run, down, ...)."""
    out: dict[str, str] = {}
    for line in status_out.splitlines():
        head = line.strip().split(":", 2)
        if len(head) >= 2 and head[0] in ("run", "down", "fail", "finish", "warning"):
            out.setdefault(head[1].strip(), head[0])
    return out


def reconfigure_phase(log_text: str) -> str:
    """What the running reconfigure is at, from the last Chef recipe it names."""
    recipes = _RECIPE_RE.findall(_ANSI_RE.sub("", log_text))
    return recipes[-1] if recipes else ""


def reconfigured(log_text: str) -> bool:
    return any(_STAMP_RE.sub("", line).strip() == RECONFIGURED
               for line in _ANSI_RE.sub("", log_text).splitlines())


def last_stamp(log_text: str) -> str | None:
    """The timestamp of the last line of a ``timestamps=True`` log, to read on from."""
    stamps = _STAMP_RE.findall(log_text)
    return stamps[-1] if stamps else None


def exited_during_reconfigure(log_text: str) -> bool:
    """A container that exited before printing ``gitlab Reconfigured!``."""
    return not reconfigured(log_text)


def token_status(http_status: int | str) -> bool:
    return str(http_status).strip() == "200"


def ran_ok(res: Result, marker: str = TOKEN_OK) -> bool:
    return res.returncode == 0 and marker in res.stdout


def failure_line(res: Result) -> str:
    lines: Sequence[str] = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {res.returncode}"
