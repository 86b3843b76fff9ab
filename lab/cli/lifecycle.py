"""`lab up / down / status / logs / exec / list / gc`: run labs from the command line.

Exit codes (see ``lab.cli.main``): 0 success; 1 ``status`` found a node not
running or not healthy, or ``down --purge`` could not delete the folder; 2 bad
input (unknown lab or node, spec error, port in use, a lab of that name owned by
another folder, a lab in use by another process); 3 Docker, Compose or an image
is not usable; 4 the lab did not become ready (the message names the node and
shows its last log lines); 5 a host tool is missing (a Compose tool; the docker
CLI for ``exec``); 130 interrupted. ``exec`` exits with the command's
own exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import click
from rich.text import Text

from lab.cli.common import (
    EXIT_FAILED,
    Seconds,
    complete_lab,
    complete_node,
    console,
    echo_json,
    engine_options,
    engine_sets,
    err_console,
    json_option,
    sigterm_as_ctrl_c,
    spec_options,
    spec_request,
    styled,
    warn_if_forced,
)
from lab.errors import BadInput, LabDamaged, LabError, LabNotFound
from lab.lifecycle import gc as lab_gc
from lab.lifecycle import handle
from lab.lifecycle.swarm import PUBLISH_WARNING
from lab.lifecycle.timeouts import WAITS
from lab.model.topology import Engine, Flavor
from lab.spec.labspec import resolve
from lab.store import ownership, state

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgressBar
    from rich.progress import TaskID
    from rich.table import Table

    from lab.lifecycle.handle import RunningLab
    from lab.lifecycle.status import LabStatus, LabSummary

# `lab up` runs every import above before Compose starts; what it needs only later (Rich's
# progress bar, once the first readiness layer starts) or what other commands need (tables,
# the Mermaid diagram) is imported where it is used.


class RichProgress:
    """Shows each readiness layer with a spinner, what it waits for, and its time.

    The bar (and rich.progress) starts at the first thing to show, usually the first
    readiness layer, once Compose has started the containers: before that it shows
    nothing, and importing it would only delay Compose. A bar that never started is
    started and stopped at the end, which prints what an empty bar prints (a newline).
    """

    def __init__(self) -> None:
        self._bar: RichProgressBar | None = None
        self.tasks: dict[str, TaskID] = {}

    @property
    def bar(self) -> RichProgressBar:
        if self._bar is None:
            from rich.progress import Progress as RichProgressBar
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = RichProgressBar(
                SpinnerColumn(finished_text=Text("✓", style="green")),
                TextColumn("{task.description:<20}", markup=False),
                TimeElapsedColumn(),
                # What a node is waiting for may quote its log: text, not markup.
                TextColumn("{task.fields[detail]}", markup=False, style="dim"),
                console=err_console, transient=False,
            )
            self._bar.start()
        return self._bar

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.stop()

    def layer_started(self, layer: str, nodes: Sequence[str]) -> None:
        self.tasks[layer] = self.bar.add_task(layer, total=1, detail=", ".join(nodes))

    def layer_update(self, layer: str, waiting: Mapping[str, str], elapsed: float) -> None:
        detail = "; ".join(f"{n}: {s}" for n, s in waiting.items())
        self.bar.update(self.tasks[layer], detail=detail[:90])

    def layer_done(self, layer: str, seconds: float) -> None:
        self.bar.update(self.tasks[layer], completed=1, detail=f"{seconds:.1f}s")

    def note(self, message: str) -> None:
        # Notes may carry container log lines; brackets there are not markup.
        self.bar.console.print(Text(message, style="dim"), highlight=False)


def pick_lab(name: str | None) -> str:
    """NAME, or the only lab when there is exactly one, or else the only one of the user's
    own (`lab up`) beside labs runs made for themselves (said on stderr)."""
    if name:
        return name
    names = state.lab_names()
    if len(names) == 1:
        return names[0]
    if not names:
        raise LabNotFound("no labs; start one with `lab up scaled`")
    yours = [n for n in names if ownership.made_for(n) == ownership.FOR_YOU]
    if len(yours) == 1:
        err_console.print(f"(lab {yours[0]}: your only lab; the others are runs' own)",
                          highlight=False)
        return yours[0]
    raise LabNotFound(f"several labs exist ({', '.join(names)}); name one")


def format_status(st: LabStatus) -> Table:
    from rich.table import Table

    table = Table(title=f"lab {st.name} — GitLab {st.version} ({st.flavor}) — {st.image}",
                  title_justify="left")
    for col in ("node", "role", "state", "health", "ports", "storages"):
        table.add_column(col)
    for n in st.nodes:
        colour = "green" if n.healthy else "red"
        ports = ", ".join(f"{host}->{cport}" for cport, host in n.ports.items()) or "-"
        table.add_row(n.node, ",".join(n.roles), Text(n.state, style=colour), n.health or "-",
                      ports, ",".join(n.storages) or "-")
    return table


# Whose a lab is, as `lab list` says it; `lab gc` removes the toolkit's own labs once no
# process holds them.
WHOSE = {ownership.FOR_YOU: "yours", ownership.FOR_RUN: "a run's",
         ownership.FOR_KEPT: "a run's, kept", ownership.FOR_START: "a start's"}


def whose(s: LabSummary) -> str:
    text = WHOSE.get(s.purpose, s.purpose)
    if s.held_by:
        return f"{text}: {s.held_by}"
    if s.purpose in (ownership.FOR_YOU, ownership.FOR_KEPT):
        return text
    return f"{text}, ended (lab gc removes it)"


def format_list(labs: Sequence[LabSummary]) -> Table:
    from rich.table import Table

    table = Table()
    for col in ("name", "state", "running", "whose", "flavor", "version", "topology", "path"):
        table.add_column(col)
    for s in labs:
        table.add_row(s.name, s.state, f"{s.running}/{s.nodes}", whose(s),
                      s.flavor, s.version, s.topology or "-", str(s.path))
    return table


def format_ready(running: RunningLab) -> Text:
    try:
        url = running.http_url
    except LabError:
        url = "(no HTTP port published)"
    name = running.name
    warning = running.image_warning
    said = (("warning:", "yellow"), f" {warning}\n") if warning else ()
    return styled(*said, "Lab ", (name, "bold"), " is ready.\n"
                  f"  GitLab:       {url}\n"
                  f"  admin token:  {running.admin_token_file}  (user root; header PRIVATE-TOKEN)\n"
                  f"  lab folder:   {running.path}\n"
                  f"Next: lab status {name} | lab logs {running.lab.app.name} --lab {name} | "
                  f"lab exec {running.lab.app.name} --lab {name} -- gitlab-ctl status | "
                  f"lab down {name}")


@click.command()
@spec_options
@engine_options
@click.option("--name", help="Lab name (default: the topology's); two labs need two names.")
@click.option("--timeout", type=Seconds(min=0, min_open=True, max=7 * 86400),
              default=None,
              help="Seconds to wait for the lab to become ready [default: "
              f"{WAITS[Flavor.SIM].lab_ready:g} for sim, {WAITS[Flavor.OMNIBUS].lab_ready:g} for "
              "omnibus].")
@click.option("--keep", is_flag=True, help="Leave the lab running if it fails to become ready.")
@json_option
def up(topology: str | None, spec_file: Path | None, gitlab_version: str | None,
       force_version: bool, flavor: str | None, sets: tuple[str, ...], engine: str | None,
       places: tuple[str, ...], publish: bool, encrypt: bool, name: str | None,
       timeout: float | None, keep: bool, as_json: bool) -> None:
    """Start a lab and wait until it is ready (URL and admin token printed at the end)."""
    # The swarm options go first: --set after them wins, as it does over the file.
    sets = engine_sets(places, publish, encrypt) + sets
    lab = resolve(spec_request(topology, spec_file, gitlab_version, flavor, sets, name,
                               force_version=force_version, engine=engine))
    warn_if_forced(lab)
    if lab.swarm.publish and any(n.publish for n in lab.nodes):
        err_console.print(styled(("warning:", "yellow"), f" {PUBLISH_WARNING}"))
    # A CI job cancelled with SIGTERM tears the lab down like Ctrl-C does.
    sigterm_as_ctrl_c()
    on = f", on {lab.engine.value}" if lab.engine is not Engine.COMPOSE else ""
    err_console.print(styled("Starting lab ", (lab.name, "bold"), f" (GitLab {lab.version}, "
                             f"{lab.flavor.value}, {len(lab.nodes)} nodes{on})…"))
    with RichProgress() as progress:
        running = handle.up(lab, timeout=timeout, keep_on_failure=keep,
                               progress=progress)
    if as_json:  # what `lab status --json` says of the ready lab (progress went to stderr)
        echo_json(running.status().to_json())
    else:
        console.print(format_ready(running), highlight=False)


@click.command()
@click.argument("name", required=False, shell_complete=complete_lab)
@click.option("--purge", is_flag=True, help="Also delete the lab's folder and secrets.")
@json_option
def down(name: str | None, purge: bool, as_json: bool) -> None:
    """Stop a lab and remove its containers, network and volumes.

    Refused while another process starts the lab or a `lab run` uses it (the
    message names its PID). Exit 1 if --purge could not delete the folder.
    """
    lab_name = pick_lab(name)
    try:
        running = handle.attach(lab_name)
    except LabDamaged as exc:
        # Its folder can't say what the lab is: still remove what carries its labels.
        lab_gc.check_not_in_use(lab_name)
        path = handle.down_damaged(lab_name, purge=purge)
        err_console.print(styled(("warning:", "yellow"), f" {exc}"), highlight=False)
        _said_down(lab_name, path, purge, as_json)
        return
    lab_gc.check_not_in_use(running.name)
    running.down(purge=purge)
    _said_down(running.name, running.path, purge, as_json)


def _said_down(name: str, path: Path, purge: bool, as_json: bool) -> None:
    if as_json:
        echo_json({"name": name, "down": True, "path": str(path), "purged": purge})
        return
    kept = "" if purge else f" (folder kept: {path}; --purge removes it)"
    console.print(styled("Lab ", (name, "bold"), f" is down{kept}."), highlight=False)


@click.command()
@click.argument("name", required=False, shell_complete=complete_lab)
@json_option
@click.option("--diagram", is_flag=True,
              help="Also print the lab as a Mermaid graph (paste it into a GitLab issue).")
def status(name: str | None, as_json: bool, diagram: bool) -> None:
    """Show each node's role, container state, health, ports and storages."""
    running = handle.attach(pick_lab(name))
    st = running.status()
    if as_json:
        echo_json(st.to_json())
    else:
        console.print(format_status(st))
        if st.image_warning:
            console.print(styled(("warning:", "yellow"), f" {st.image_warning}"), highlight=False)
        if st.http_url:
            console.print(f"GitLab: {st.http_url}   admin token: {st.admin_token_file}",
                          highlight=False)
        if diagram:
            from lab.render.diagram import markdown, rendered_hashes

            click.echo(markdown(running.lab,
                                rendered_hashes(running.lab, running.rendered.secrets)), nl=False)
    if not st.healthy:
        sys.exit(EXIT_FAILED)


def _check_since(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a bad --since before any lab is looked up (bad input: exit 2)."""
    if value is None:
        return None
    try:
        if handle.since_timestamp(value) < 0:
            raise ValueError(value)
    except (LabError, ValueError, OverflowError):
        raise click.BadParameter(f"{value!r}: expected a duration such as 10m, 2h, 30s or a "
                                 "unix timestamp") from None
    return value


@click.command()
@click.option("--lab", "lab_name", metavar="NAME", help="The lab (default: the only one).",
              shell_complete=complete_lab)
@click.argument("node", shell_complete=complete_node)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--since", metavar="WHEN", callback=_check_since,
              help="Only newer lines: 10m, 2h, 30s or a unix time.")
@click.option("--tail", type=click.IntRange(min=0), default=200, show_default=True,
              help="Lines from the end.")
def logs(node: str, lab_name: str | None, follow: bool, since: str | None, tail: int) -> None:
    """Print a node's container log (secrets redacted)."""
    running = handle.attach(pick_lab(lab_name))
    if not follow:
        click.echo(running.logs(node, tail=tail, since=since), nl=False)
        return
    for line in running.follow_logs(node, tail=tail, since=since):
        click.echo(line)


# Options may follow NODE (`lab exec gitaly1 --lab x -- cmd`); after `--` all is the command.
@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.option("--lab", "lab_name", metavar="NAME", help="The lab (default: the only one).",
              shell_complete=complete_lab)
@click.argument("node", shell_complete=complete_node)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(node: str, lab_name: str | None, cmd: tuple[str, ...]) -> None:
    """Run a command in a node: lab exec NODE -- CMD... (exits with its exit code)."""
    running = handle.attach(pick_lab(lab_name))
    args = list(cmd[1:] if cmd and cmd[0] == "--" else cmd)
    container = running.container(node)
    if container.status != "running":
        # Docker refuses with its own words and exit 1, which would read as the command's.
        how = running.how_to_run(node, container)
        raise BadInput(f"node {node!r} of lab {running.name!r} is {container.status}, not "
                       f"running, so nothing can run in it; run {how} first (`lab status "
                       f"{running.name}` shows every node)")
    # The terminal goes to the command: interactive shells and exit codes just work.
    running.exec_attached(node, args, tty=sys.stdin.isatty() and sys.stdout.isatty())


@click.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """List labs in the state folder and how many of their nodes run."""
    labs = lab_gc.list_labs()
    if as_json:
        echo_json({"labs": [s.to_json() for s in labs]})
    elif not labs:
        console.print(f"No labs in {state.labs_dir()}. Start one: lab up scaled", highlight=False)
    else:
        console.print(format_list(labs))


@click.command()
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option("--all", "all_folders", is_flag=True,
              help="Also labs of other state folders (other users, checkouts, containers).")
@json_option
def gc(dry_run: bool, all_folders: bool, as_json: bool) -> None:
    """Remove leftovers: labs a `lab run` (or pytest) or an unfinished `lab up` made for
    itself whose process is gone (folder included), and what is left of labs whose folder
    is gone or whose `lab up` or `lab down` was killed.

    Says what it kept of the toolkit's own labs and why. Only labs started from this
    state folder, unless --all. Your own labs (`lab up`) are never removed.
    """
    report = lab_gc.collect_garbage(dry_run=dry_run, all_folders=all_folders)
    if as_json:
        echo_json({"dry_run": dry_run, "removed": list(report.removed),
                   "kept": list(report.kept)})
        return
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        console.print(f"{verb} {item}", highlight=False)
    for item in report.kept:
        console.print(f"kept {item}", highlight=False)
    if not report.removed:
        console.print("nothing to remove")


COMMANDS = [up, down, status, logs, exec_, list_, gc]
