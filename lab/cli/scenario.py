"""`lab run`: run scenario files against labs; exit 1 when any scenario fails."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from lab.cli.common import (
    EXIT_FAILED,
    complete_lab,
    complete_scenario,
    console,
    echo_json,
    err_console,
    sigterm_as_ctrl_c,
    styled,
)
from lab.errors import BadInput
from lab.lifecycle.contract import LabHandle
from lab.model.topology import Engine, Flavor
from lab.resources import data_dir
from lab.scenario.definition import Scenario
from lab.scenario.evidence import bundle_collector
from lab.scenario.load import find_scenarios, parse_scenario_file
from lab.scenario.plan import PlanItem, plan, plan_on
from lab.scenario.releases import parse_versions
from lab.scenario.report import format_failure, results_table, summary, to_json, write_junit
from lab.scenario.results import Outcome, ScenarioResult
from lab.scenario.runner import run_plan
from lab.store import state
from lab.store.layout import LAST_RUN_JSON, LAST_RUN_XML, SECRET, STATE_DIR, write_file


def format_library(scenarios: list[Scenario]) -> Table:
    table = Table(title="built-in scenarios (lab run NAME…, or --all)", title_justify="left")
    for col in ("name", "flavours", "shows"):
        table.add_column(col)
    for sc in scenarios:
        table.add_row(sc.name, ",".join(sc.flavors), " ".join(sc.description.split()))
    return table


def library_json(scenarios: list[Scenario]) -> dict[str, Any]:
    return {"scenarios": [{"name": sc.name, "flavors": list(sc.flavors),
                           "description": " ".join(sc.description.split()),
                           "guide": " ".join(sc.guide.split()), "source": sc.source}
                          for sc in scenarios]}


@click.command("run")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path),
                shell_complete=complete_scenario)
@click.option("--all", "run_all", is_flag=True,
              help="Run the whole built-in scenario library (it ships with the package).")
@click.option("--list", "list_only", is_flag=True,
              help="List the built-in scenarios and what each shows; run nothing.")
@click.option("--lab", "lab_name", metavar="NAME", shell_complete=complete_lab,
              help="Run on this existing lab (`lab up`): each scenario's given: is applied to "
                   "it and undone; scenarios made for another lab are skipped, saying why.")
@click.option("--flavor", type=click.Choice(["omnibus", "sim"]), default=None,
              help="omnibus = real GitLab images; sim = the offline stand-in [default: sim; "
                   "with --lab, the lab's].")
@click.option("--engine", type=click.Choice([e.value for e in Engine]), default=None,
              help="compose = Docker Compose (default); swarm = each lab as a stack on the "
                   "swarm of this engine's manager [with --lab, the lab's].")
@click.option("--version", "gitlab_version", metavar="X.Y.Z[,X.Y.Z…]",
              help="GitLab version for scenarios that do not pin one (default: newest); "
                   "a comma list runs each such scenario once per release.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also write a JUnit XML report.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
@click.option("--keep", is_flag=True,
              help="Leave the labs up afterwards (in their base state); a later run reuses them.")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="Labs (scenario groups) run side by side (default: as many as the "
                   "machine has cores and memory for).")
@click.option("--collect-on-failure", is_flag=True,
              help="When a scenario fails, write a `lab collect` bundle of its lab in the "
                   "failed state (before faults and changes are undone).")
@click.option("--evidence-dir", type=click.Path(path_type=Path), default=Path("lab-evidence"),
              show_default=True, help="Where --collect-on-failure writes its bundles.")
def run(paths: tuple[Path, ...], run_all: bool, list_only: bool, lab_name: str | None,
        flavor: str | None, engine: str | None, gitlab_version: str | None,
        junit: Path | None, as_json: bool, keep: bool, jobs: int | None,
        collect_on_failure: bool, evidence_dir: Path) -> None:
    """Run scenarios (files, directories of *.yaml, built-in names, or --all) and report
    each one's evidence.

    Scenarios sharing a topology share one lab; each scenario's `given:` changes
    only the nodes it touches (`gitlab-ctl reconfigure` in place where Omnibus would).
    With --lab NAME they run on that lab, which stays up as it was.
    """
    if list_only:
        library = [parse_scenario_file(p) for p in find_scenarios([data_dir("scenarios")])]
        if as_json:
            echo_json(library_json(library))
        else:
            console.print(format_library(library))
        return
    if run_all:
        paths = (*paths, data_dir("scenarios"))
    if not paths:
        raise click.UsageError("name scenario files, folders or built-in scenarios (`lab run "
                               "--list` lists them), or run them all with --all")
    try:
        versions = parse_versions(gitlab_version)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--version") from None
    # Parse and plan everything first: a typo in the last file, or a key one release of
    # the matrix does not have, should not cost a lab boot.
    files = find_scenarios(paths)
    scenarios = [parse_scenario_file(p) for p in files]
    if not scenarios:
        raise click.UsageError("no scenario files (*.yaml) found in: "
                               + ", ".join(map(str, paths)))
    on: LabHandle | None = None
    if lab_name:
        if gitlab_version or keep:
            raise click.UsageError("--lab runs on that lab's release and leaves it up: "
                                   "--version and --keep do not apply")
        from lab.lifecycle.handle import attach

        on = attach(lab_name)
        if flavor and flavor != on.lab.flavor.value:
            raise click.UsageError(f"lab {lab_name} is a {on.lab.flavor.value} lab; "
                                   f"--flavor {flavor} does not apply to it")
        if engine and engine != on.lab.engine.value:
            raise click.UsageError(f"lab {lab_name} runs on {on.lab.engine.value}; "
                                   f"--engine {engine} does not apply to it")
        flavor = on.lab.flavor.value
        planned = plan_on(scenarios, on.lab)
        versions = [str(on.lab.version)]
    else:
        flavor = flavor or "sim"
        planned = plan(scenarios, flavor=flavor, versions=versions,
                       engine=engine or Engine.COMPOSE.value)
    if junit:
        check_report_path(junit)
    out = err_console if as_json else console
    warnings = image_warnings(planned)
    for warning in warnings:
        err_console.print(styled(("warning:", "yellow"), f" {warning}"), highlight=False)

    def show(result: ScenarioResult) -> None:
        color = {Outcome.PASSED: "green", Outcome.SKIPPED: "yellow"}.get(result.outcome, "red")
        release = f" [GitLab {result.release}]" if len(versions) > 1 and result.release else ""
        out.print(styled((f"{result.outcome.value:>7}", color),
                         f" {result.name}{release} ({result.seconds:.1f}s)"), highlight=False)
        if result.outcome in (Outcome.FAILED, Outcome.ERROR):
            # soft_wrap: log lines and patterns stay whole, for copying and grepping.
            out.print(format_failure(result), markup=False, highlight=False, soft_wrap=True)

    # A cancelled CI job (SIGTERM) downs the labs as Ctrl-C does, instead of leaving them up
    # where `lab gc` does not look (their folders exist, and no `lab up` was killed).
    sigterm_as_ctrl_c()
    with out.status("starting") as status:
        results = run_plan(planned, flavor=flavor, leave_at_base=keep,
                           say=lambda text: status.update(Text(text)), on_result=show,
                           collect=bundle_collector(evidence_dir) if collect_on_failure
                           else None, jobs=jobs, on=on)
    save_last_run(results, warnings)
    if as_json:
        sys.stdout.write(json.dumps(to_json(results, warnings), indent=2) + "\n")
    else:
        console.print(results_table(results))
        console.print(summary(results), highlight=False)
        for warning in warnings:  # again under the table, where the result is read
            console.print(styled(("warning:", "yellow"), f" {warning}"), highlight=False)
    if junit:
        try:
            write_junit(results, junit, warnings)
        except OSError as exc:  # after the results are shown: the run is not lost
            raise BadInput(f"cannot write the JUnit report {junit}: {exc.strerror}; choose "
                           "another --junit") from None
    if not all(r.ok for r in results):
        sys.exit(EXIT_FAILED)


def check_report_path(path: Path) -> None:
    """Refuse a --junit path that could not be written, before any lab boots: the report is
    written at the end, and a long run should not end in "cannot write".

    Write permission is tried, not read from the mode bits: root may "write" to /proc by
    the bits, and a read-only mount says yes too. A file is made and removed again in the
    nearest folder that exists (write_file makes the missing ones below it).
    """
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    problem = "" if folder.is_dir() else "is not a folder"
    if not problem:
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".lab-junit-check-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            problem = f"cannot be written to ({exc.strerror})"
    if problem:
        raise BadInput(f"cannot write the JUnit report {path}: {folder} {problem}; choose "
                       "another --junit")


def image_warnings(planned: list[PlanItem]) -> list[str]:
    """What every report of this run says: an omnibus lab's image is the sim."""
    from lab.engine.images import image_for
    from lab.lifecycle.lab_image import sim_posing

    bases = {item.labs.base.name: item.labs.base for item in planned if item.labs is not None}
    found = (sim_posing(base, image_for(base)) for base in bases.values()
             if base.flavor is Flavor.OMNIBUS)
    return list(dict.fromkeys(w for w in found if w))


def save_last_run(results: list[ScenarioResult], warnings: Sequence[str] = ()) -> None:
    """Leave each lab's results in its folder, where `lab collect` picks them up."""
    by_lab: dict[str, list[ScenarioResult]] = {}
    for r in results:
        if r.lab:
            by_lab.setdefault(r.lab, []).append(r)
    for name, mine in by_lab.items():
        folder = state.lab_dir(name)
        if (folder / STATE_DIR).is_dir():  # missing when the lab never booted
            write_file(folder / LAST_RUN_JSON,
                       json.dumps(to_json(mine, warnings), indent=2) + "\n", SECRET)
            write_junit(mine, folder / LAST_RUN_XML, warnings)


COMMANDS = [run]
