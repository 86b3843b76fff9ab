"""Options and helpers shared by subcommands."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from rich.console import Console
from rich.text import Text

# The exit codes live with the exception tree; commands that exit without an
# exception (a failed check, a failed scenario) take them from here.
from lab import JSON_SCHEMA_VERSION
from lab.errors import EXIT_ENGINE as EXIT_ENGINE
from lab.errors import EXIT_FAILED as EXIT_FAILED
from lab.errors import EXIT_NOT_READY as EXIT_NOT_READY
from lab.errors import EXIT_TOOL_MISSING as EXIT_TOOL_MISSING
from lab.errors import EXIT_USAGE as EXIT_USAGE
from lab.model.topology import Engine, Lab
from lab.spec.labspec import SpecRequest
from lab.spec.versions import DEFAULT_VERSION, newer_than_known

F = TypeVar("F", bound=Callable[..., Any])

# Not a terminal (a pipe, a CI log, a file): Rich would wrap and cut at 80 columns (or
# $COLUMNS, which CI runners and test harnesses set too), splitting paths and table
# cells. Lines are then as long as their text.
PIPE_WIDTH = 10_000


def make_console(*, stderr: bool = False) -> Console:
    """The console for stdout or stderr: a terminal's width, or unwrapped when piped.

    Never markup: what is printed carries paths ($LAB_HOME, -o), names, log lines and
    messages from users and containers, and Rich would read ``[/x]`` in them as a tag
    (an error) or ``[red]`` as a style. Styles come from ``styled``.
    """
    console = Console(stderr=stderr, markup=False)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (string, style) pairs; no string is read as markup."""
    return Text.assemble(*parts)


console = make_console()
err_console = make_console(stderr=True)


class Seconds(click.FloatRange):
    """A number of seconds in a range; ``nan`` is refused (it compares false with both ends,
    so a plain FloatRange takes it)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


def spec_options(func: F) -> F:
    """TOPOLOGY | -f FILE, --version, --flavor, --set: how every command names a lab spec."""
    decorators = [
        click.argument("topology", required=False),
        click.option("-f", "--file", "spec_file", type=click.Path(path_type=Path),
                     help="A lab spec (YAML) instead of, or on top of, a built-in topology."),
        click.option("--version", "gitlab_version", metavar="X.Y.Z",
                     help="GitLab version (default: newest supported)."),
        click.option("--force-version", is_flag=True,
                     help="Accept a --version newer than the newest release the toolkit knows."),
        click.option("--flavor", type=click.Choice(["omnibus", "sim"]),
                     help="omnibus = real GitLab images; sim = the offline stand-in."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any spec field, e.g. --set nodes.gitaly1.secrets=own."),
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


def engine_options(func: F) -> F:
    """--engine and the swarm engine's options (placement, publishing, encryption)."""
    decorators = [
        click.option("--engine", type=click.Choice([e.value for e in Engine]), default=None,
                     help="compose = Docker Compose on this engine (default); swarm = a stack "
                     "on the swarm of this engine's manager."),
        click.option("--place", "places", multiple=True, metavar="NODE=WHERE",
                     help="swarm: run NODE on a machine: its host name, or LABEL=VALUE of a "
                     "node label (as nodes.NODE.place)."),
        click.option("--publish", is_flag=True,
                     help="swarm: publish the spec's ports through Swarm, on every interface "
                     "(default: a gateway on 127.0.0.1 only)."),
        click.option("--encrypt", is_flag=True,
                     help="swarm: encrypt the lab's overlay network (IPsec between machines)."),
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


def engine_sets(places: tuple[str, ...], publish: bool, encrypt: bool) -> tuple[str, ...]:
    """The swarm options as the spec keys they set (``--set`` form)."""
    out: list[str] = []
    for place in places:
        node, sep, where = place.partition("=")
        if not sep or not node or not where:
            raise click.BadParameter(f"{place!r}: expected NODE=WHERE, e.g. gitaly1=worker2 "
                                     "or gitaly1=zone=b", param_hint="--place")
        out.append(f"nodes.{node}.place={json.dumps(where)}")
    if publish:
        out.append("swarm.publish=true")
    if encrypt:
        out.append("swarm.encrypt=true")
    return tuple(out)


def warn_if_forced(lab: Lab) -> None:
    """Say so when --force-version let through a release newer than the toolkit knows."""
    if newer_than_known(lab.version):
        err_console.print(styled(("warning:", "yellow"),
                                 f" GitLab {lab.version} is newer than the newest release this "
                                 f"toolkit knows ({DEFAULT_VERSION}); its configs are rendered "
                                 f"with {DEFAULT_VERSION}'s keys (--force-version)"),
                          highlight=False)


def spec_request(topology: str | None, spec_file: Path | None, gitlab_version: str | None,
                 flavor: str | None, sets: tuple[str, ...], name: str | None = None, *,
                 force_version: bool = False, engine: str | None = None) -> SpecRequest:
    return SpecRequest(topology=topology, file=spec_file, sets=tuple(sets),
                       version=gitlab_version, flavor=flavor, name=name,
                       force_version=force_version, engine=engine)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def sigterm_as_ctrl_c() -> None:
    """From now on SIGTERM (a cancelled CI job) cleans up and exits as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def json_option(func: F) -> F:
    """--json: what the command reports, as one JSON object on stdout (see ``echo_json``)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Machine-readable output (one JSON object with schema_version).")(
                            func)


def echo_json(data: dict[str, Any]) -> None:
    """One JSON object on stdout, with the ``schema_version`` every --json output carries."""
    click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **data}, indent=2))


# --- shell completion (click's shell_complete): names read from files, never Docker ---

def complete_lab(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
    """The labs in the state folder (`lab down <TAB>`)."""
    from lab.store import state

    try:
        names = state.lab_names()
    except Exception:  # a completion never fails the shell; it offers nothing
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_node(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """The nodes of --lab NAME, or of the only lab (`lab logs <TAB>`), from its saved spec."""
    from lab.store import state
    from lab.store.lab_folder import LabFolder

    try:
        name = ctx.params.get("lab_name")
        if not name:
            labs = state.lab_names()
            name = labs[0] if len(labs) == 1 else None
        if not name:
            return []
        nodes = [n.name for n in LabFolder(state.lab_dir(str(name))).lab().nodes]
    except Exception:  # no lab, a damaged one: nothing to offer
        return []
    return [CompletionItem(n) for n in nodes if n.startswith(incomplete)]


def complete_scenario(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[CompletionItem]:
    """Built-in scenario names (`lab run gitaly<TAB>`), then files and folders."""
    from lab.scenario.load import builtin_names

    try:
        names = builtin_names()
    except Exception:
        names = []
    matches = [CompletionItem(n) for n in names if n.startswith(incomplete)]
    # Files too: the shell completes paths when asked for "file".
    return [*matches, CompletionItem(incomplete, type="file")]
