"""What Praefect's `check`, `accept-dataloss` and `list-storages` print, per release, and
which release has which subcommand: pure (no database client, no gRPC), so the host's unit
tests check it without the image's packages.

Sources (docs/fidelity.md "Gitaly Cluster (Praefect): sources"): Gitaly cmd/praefect/
subcmd.go, subcmd_check.go, subcmd_accept_dataloss.go, subcmd_list_storages.go,
internal/praefect/checks.go and nodes/ping.go (v14.5.0..v15.2.0), internal/praefect/service/
checks.go (v15.3.0 on), internal/cli/praefect/ (v15.11.0 on); the boundaries are
lab/omnibus/release.py's PRAEFECT_* names.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.omnibus.release import (
    PRAEFECT_ACCEPT_DATALOSS,
    PRAEFECT_CHECK,
    PRAEFECT_CHECK_CLOCK,
    PRAEFECT_CHECK_NTP_HINT,
    PRAEFECT_CHECK_UNAVAILABLE,
    PRAEFECT_CHECK_VERBOSE,
    PRAEFECT_CLI_TOOLKIT,
    PRAEFECT_LIST_STORAGES,
    PRAEFECT_NOT_FOUND_METADATA,
    Version,
)

#: The first release that has each of these subcommands (the sim's others are in every
#: release the cluster topology renders).
SINCE: dict[str, Version] = {
    "accept-dataloss": PRAEFECT_ACCEPT_DATALOSS,
    "check": PRAEFECT_CHECK,
    "list-storages": PRAEFECT_LIST_STORAGES,
}
DEFAULT_NTP_HOST = "pool.ntp.org"  # helper.CheckClockSync
DEFAULT_DRIFT_MS = 60_000  # DRIFT_THRESHOLD unset: time.Minute


def go_quote(text: str) -> str:
    """Go's %q for the texts these commands quote (names and paths)."""
    return json.dumps(text, ensure_ascii=False)


def has_subcommand(name: str, version: Version) -> bool:
    return version >= SINCE.get(name, version)


def unknown_subcommand(name: str) -> str:
    """subcmd.go subCommand (printfErr, exit 1) on a release without ``name``."""
    return f"praefect: unknown subcommand: {go_quote(name)}"


def failure(version: Version, message: str, *, exit_coder: bool = False,
            now: time.struct_time | None = None) -> str:
    """A failing subcommand's stderr line: before PRAEFECT_CLI_TOOLKIT subCommand's
    ``printfErr("%s\\n", err)``; from it main.go's ``log.Fatal(err)`` (log's date and time
    first), except an error the command wrapped in ``cli.Exit``, which urfave/cli prints
    as it is."""
    if version < PRAEFECT_CLI_TOOLKIT or exit_coder:
        return message
    return f"{time.strftime('%Y/%m/%d %H:%M:%S', now or time.localtime())} {message}"


class Usage(Exception):
    """Go's flag package refused the arguments (flag.ExitOnError: exit 2)."""


def parse_flags(args: list[str], *, strings: tuple[str, ...] = (),
                bools: tuple[str, ...] = ()) -> dict[str, str]:
    """Go's flag package: -name value, --name value, -name=value, bools alone; "--" or the
    first non-flag ends the flags (the rest under "positional")."""
    out: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] not in ("-", "--"):
        arg = rest.pop(0)
        name, eq, value = arg.lstrip("-").partition("=")
        if name in bools:
            out[name] = value or "true"
        elif name in strings:
            if not eq:
                if not rest:
                    raise Usage(f"flag needs an argument: -{name}")
                value = rest.pop(0)
            out[name] = value
        else:
            raise Usage(f"flag provided but not defined: -{name}")
    if rest and rest[0] == "--":
        rest.pop(0)
    if rest:
        out["positional"] = " ".join(rest)
    return out


def positional_args(command: str) -> str:
    return f"{command} doesn't accept positional arguments"  # unexpectedPositionalArgsError


# -- check -------------------------------------------------------------------------------

FATAL, WARNING = "fatal", "warning"


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    severity: str
    since: Version


CHECKS = (
    Check("praefect migrations", "confirms whether or not all praefect migrations have run",
          FATAL, PRAEFECT_CHECK),
    Check("gitaly node connectivity & disk access",
          "confirms if praefect can reach all of its gitaly nodes, and whether or not the "
          "gitaly nodes can read/write from and to its storages.", FATAL, PRAEFECT_CHECK),
    Check("database read/write", "checks if praefect can write/read to and from the database",
          FATAL, PRAEFECT_CHECK_VERBOSE),
    Check("unavailable repositories",
          "lists repositories that are missing a valid primary, hence rendering them "
          "unavailable", WARNING, PRAEFECT_CHECK_UNAVAILABLE),
    Check("clock synchronization",
          "checks if system clock is in sync with NTP service. You can use NTP_HOST env var "
          "to provide NTP service URL to query and DRIFT_THRESHOLD to provide allowed drift "
          "as a duration (1ms, 20sec, etc.)", FATAL, PRAEFECT_CHECK_CLOCK),
)


def checks_for(version: Version) -> list[Check]:
    """The checks `praefect check` runs on ``version``, in their order."""
    return [c for c in CHECKS if version >= c.since]


def has_quiet_flag(version: Version) -> bool:
    return version >= PRAEFECT_CHECK_VERBOSE


def check_heading(check: Check, *, quiet: bool, version: Version) -> str:
    """Written before the check runs: no newline in the short form, so "Passed" or
    "Failed …" ends the same line (printCheckDetails)."""
    if quiet or not has_quiet_flag(version):
        return f"Checking {check.name}..."
    return f"Checking {check.name} - {check.description} [{check.severity}]\n"


def check_outcome(check: Check, error: str | None) -> str:
    return "Passed\n" if error is None else f"Failed ({check.severity}) error: {error}\n"


def check_summary(failed: Sequence[Check]) -> str:
    """The blank line and the last line; the caller fails with "checks failed" when any
    failed check was fatal (errFatalChecksFailed)."""
    if any(c.severity == FATAL for c in failed):
        return f"\n{len(failed)} check(s) failed, at least one was fatal.\n"
    if failed:
        return f"\n{len(failed)} check(s) failed, but none are fatal.\n"
    return "\nAll checks passed.\n"


def unavailable_lines(counts: Mapping[str, int]) -> list[str]:
    """NewUnavailableReposCheck's messages; Go ranges over a map, the sim sorts."""
    if not counts:
        return ["All repositories are available."]
    return [(f"virtual-storage {go_quote(vs)} has {n} repository that is unavailable." if n == 1
             else f"virtual-storage {go_quote(vs)} has {n} repositories that are unavailable.")
            for vs, n in sorted(counts.items())]


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(text: str) -> float:
    """Seconds in a Go duration ("5s", "100ms", "1h30m", "0"); ValueError if it is not one."""
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(body):
        if m.start() != pos:
            raise ValueError(text)
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(text)
    return sign * total


def drift_threshold_ms(env: Mapping[str, str]) -> int:
    """DRIFT_THRESHOLD as the clock check reads it (env.GetDuration, default one minute);
    ValueError carries the check's error text."""
    name = "DRIFT_THRESHOLD"
    raw = env.get(name, "")
    if not raw:
        return DEFAULT_DRIFT_MS
    try:
        seconds = go_duration(raw)
    except ValueError:
        raise ValueError(f"env var {name} expected to be an duration (5s, 100ms, etc.)") \
            from None
    ms = int(seconds * 1000)
    if seconds != 0 and ms == 0:
        raise ValueError(f"env var {name} expected to be 0 or at least 1ms")
    return ms


def clock_message(ntp_host: str, drift_ms: int, correlation_id: str) -> str:
    return (f"checking with NTP service at {ntp_host} and allowed clock drift {drift_ms} ms "
            f"[correlation_id: {correlation_id}]")


def ntp_failure(version: Version, ntp_host: str, error: str) -> str:
    """Praefect's own clock query failed (helper.CheckClockSync wraps the NTP error)."""
    hint = " (NTP_HOST was not set)" if not ntp_host and version >= PRAEFECT_CHECK_NTP_HINT \
        else ""
    return f"praefect: query ntp host {ntp_host or DEFAULT_NTP_HOST}: {error}{hint}"


# -- list-storages -----------------------------------------------------------------------

def list_storages(virtual_storages: Mapping[str, Sequence[Mapping[str, Any]]],
                  pick: str = "") -> str:
    """The table of virtual storages, their nodes' storages and addresses; with ``pick``
    only that virtual storage's, or "No virtual storages named <pick>." """
    rows = [(vs, str(n["storage"]), str(n["address"]))
            for vs, nodes in virtual_storages.items() if not pick or vs == pick
            for n in nodes]
    if pick and pick not in virtual_storages:
        return f"No virtual storages named {pick}.\n"
    return tab_table(("VIRTUAL_STORAGE", "NODE", "ADDRESS"), rows)


def tab_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """olekukonko/tablewriter v0.0.5 as list-storages sets it up (no borders, no
    separators, SetNoWhiteSpace, SetTablePadding("\\t"), left aligned): each cell padded to
    its column's width; the heading ends its last cell with a space, a row with the tab."""
    widths = [max(len(str(c[i])) for c in (header, *rows)) for i in range(len(header))]

    def cells(values: Sequence[str]) -> list[str]:
        return [str(v).ljust(w) for v, w in zip(values, widths, strict=True)]
    lines = ["\t".join(cells(header)) + " "]
    lines += ["".join(c + "\t" for c in cells(r)) for r in rows]
    return "\n".join(lines) + "\n"


# -- accept-dataloss ---------------------------------------------------------------------

ACCEPT_FLAGS = ("virtual-storage", "repository", "authoritative-storage")


def missing_flags(version: Version, given: Mapping[str, str]) -> str | None:
    """The error for required flags left out: before PRAEFECT_CLI_TOOLKIT the first one's
    requiredParameterError; from it urfave/cli's errRequiredFlags naming them all."""
    missing = [f for f in ACCEPT_FLAGS if not given.get(f)]
    if not missing:
        return None
    if version < PRAEFECT_CLI_TOOLKIT:
        return f"{go_quote(missing[0])} is a required parameter"
    if len(missing) == 1:
        return f"Required flag {go_quote(missing[0])} not set"
    return f"Required flags {go_quote(', '.join(missing))} not set"


def set_authoritative_error(details: str) -> str:
    """The RPC's InvalidArgument as the command prints it."""
    return ("set authoritative storage: rpc error: code = InvalidArgument desc = "
            f"{details}")


def repository_missing(version: Version, vs: str, rel: str) -> str:
    if version >= PRAEFECT_NOT_FOUND_METADATA:
        return "repository does not exist on virtual storage"
    return f"repository {go_quote(rel)} does not exist on virtual storage {go_quote(vs)}"
