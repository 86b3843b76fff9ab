"""`lab doctor`, `lab collect`, `lab import`: the support engineer's commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.text import Text

from lab.cli.common import (
    EXIT_FAILED,
    complete_lab,
    console,
    echo_json,
    err_console,
    json_option,
    styled,
)
from lab.cli.lifecycle import pick_lab
from lab.errors import BadInput
from lab.lifecycle.handle import RunningLab, attach
from lab.spec.importer import check_importable, import_files, node_inputs
from lab.store import state
from lab.store.labdir import check_output_file
from lab.store.layout import PUBLIC, write_file
from lab.support.collect import collect as run_collect
from lab.support.doctor import doctor as run_doctor
from lab.support.doctor.format import format_table


def _handle(name: str | None) -> RunningLab | None:
    """The named lab, the only lab, or None when there is none (doctor checks just the host)."""
    if name is None and not state.lab_names():
        return None
    return attach(pick_lab(name))


@click.command()
@click.argument("name", required=False, shell_complete=complete_lab)
@json_option
def doctor(name: str | None, as_json: bool) -> None:
    """Check the host and a running lab the way the Gitaly guide wires it.

    Host: Docker, Compose, memory, disk, ports, images. Lab: gitlab.rb evaluates,
    gitlab-secrets.json present and equal where it must be, each Gitaly reachable
    with the app's token, TLS certificates, the internal API from each Gitaly node.
    Exit 1 if any check FAILs.
    """
    handle = _handle(name)
    report, _ = run_doctor(handle)
    if as_json:
        echo_json(report.to_json())
    else:
        console.print(format_table(report))
        console.print(styled(("FAIL", "bold red")) if report.failed
                      else styled(("all checks passed", "green")))
    if report.failed:
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("name", required=False, shell_complete=complete_lab)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="The bundle to write (default: lab-NAME-support.tar.gz here).")
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
@json_option
def collect(name: str | None, output: Path | None, force: bool, as_json: bool) -> None:
    """Bundle a lab's evidence (logs, configs, doctor, hashes) with every secret redacted."""
    if output is not None:
        check_output_file(output, force=force)  # before anything is gathered
    handle = attach(pick_lab(name))
    out = output or Path(f"lab-{handle.name}-support.tar.gz")
    check_output_file(out, force=force or output is None)
    with console.status(Text(f"collecting lab {handle.name}")):
        run_collect(handle, out)
    if as_json:
        echo_json({"lab": handle.name, "bundle": str(out)})
        return
    console.print(f"Wrote {out} (see SUMMARY.md inside); secret values are redacted.",
                  highlight=False)


@click.command(name="import")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--node", "named", multiple=True, metavar="NAME=FILE",
              help="A gitlab.rb (or a source node's config.toml, gitlab.yml, gitlab-shell "
                   "config.yml) with its node name (else taken from the file name).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the spec here (default: stdout).")
@click.option("--version", "gitlab_version", metavar="X.Y.Z",
              help="GitLab version (default: picked from the keys the files use).")
@click.option("--name", default="imported", show_default=True, help="The lab's name.")
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
def import_(files: tuple[Path, ...], named: tuple[str, ...], output: Path | None,
            gitlab_version: str | None, name: str, force: bool) -> None:
    """Turn a customer's gitlab.rb files (one per node) into a lab spec.

    Node names come from the file names (gitaly1.rb, gitlab-gitaly1.rb,
    nodes/gitaly1/gitlab.rb, gitaly1/config.toml) or from --node NAME=FILE. A
    node installed from source gives Gitaly's config.toml (with gitlab-shell's
    config.yml before 13.0) or GitLab's gitlab.yml, read as data. Settings the spec cannot
    express are listed, and kept as comments in the YAML. Then: lab up -f SPEC.
    """
    if output is not None:
        check_output_file(output, force=force)
    inputs = node_inputs(files, named)
    if output is not None and not output.is_symlink() and output.exists() \
            and any(output.resolve() == path.resolve() for _, path in inputs):
        raise BadInput(f"{output} is one of the gitlab.rb files being imported; --force would "
                       "replace the customer's file with the spec. Choose another -o")
    result = import_files(inputs, version=gitlab_version, name=name)
    check_importable(result)
    text = result.to_yaml()
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            write_file(output, text, PUBLIC)  # replaces a link at -o, never writes through it
        except OSError as exc:
            raise BadInput(f"cannot write {output}: {exc.strerror}; choose another -o") \
                from None
        console.print(f"Wrote {output}: GitLab {result.spec['version']}, nodes "
                      f"{', '.join(result.spec['nodes'])}. Start it: lab up -f {output}",
                      highlight=False)
    # Keys and values of the customer's file: text, never Rich markup ("[/x]" would raise).
    for line in result.unknown:
        # What the customer's Omnibus of that release refuses or ignores (removed settings
        # with Omnibus' own message and the release that removed them, unknown keys).
        err_console.print(styled((f"GitLab {result.spec['version']}:", "red"), f" {line}"),
                          highlight=False)
    for line in result.unmapped:
        err_console.print(styled(("not reproduced:", "yellow"), f" {line}"), highlight=False)
    for line in result.notes:
        err_console.print(styled(("note:", "dim"), f" {line}"), highlight=False)


COMMANDS = [doctor, collect, import_]
