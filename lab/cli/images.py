"""`lab images build|list|load|save`: the offline sim image and local GitLab images."""

from __future__ import annotations

import time
from dataclasses import asdict

import click
from rich.table import Table
from rich.text import Text

from lab.cli.common import console as stdout_console
from lab.cli.common import echo_json, err_console, json_option, styled
from lab.engine import images as engine_images


def format_images_table(rows: list[engine_images.ImageInfo]) -> Table:
    table = Table(title="gitlab-testlab images")
    table.add_column("image", no_wrap=True)
    for column in ("kind", "current", "id", "size", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.ref, row.kind, "yes" if row.current else "", row.image_id, row.size,
                      row.created)
    return table


@click.group()
def images() -> None:
    """Build, list, save and load the images labs run on."""


@images.command()
@click.option("--force", is_flag=True, help="Rebuild the base and sim images even if present.")
def build(force: bool) -> None:
    """Build the offline sim image (Debian bookworm via mmdebstrap; no registry needed)."""
    console = err_console
    started = time.monotonic()
    with console.status("checking images ...") as status:
        def progress(message: str) -> None:
            status.update(Text(message + " ..."))
            # A line of its own, with the time: not console.log, which adds its source path.
            console.print(styled((time.strftime("%H:%M:%S"), "dim"), f" {message}"),
                          highlight=False)

        ref = engine_images.build_images(force=force, progress=progress)
    console.print(styled(("ready", "green"), f" {ref} ({time.monotonic() - started:.0f}s)"))
    click.echo(ref)


@images.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """List the sim/base images and local gitlab/gitlab-ce|ee images."""
    rows = engine_images.list_images()
    if as_json:
        echo_json({"images": [asdict(r) for r in rows]})
        return
    stdout_console.print(format_images_table(rows))


@images.command()
@click.argument("file", type=click.Path(dir_okay=False))
def load(file: str) -> None:
    """Load an image tarball (`docker save` output), e.g. gitlab-ce on an air-gapped host."""
    ref = engine_images.load_image(file)
    err_console.print(styled(("loaded", "green"), f" {ref}"))
    click.echo(ref)
@images.command()
@click.argument("refs", nargs=-1, metavar="[IMAGE]...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Tarball to write (replaced if it exists).")
def save(refs: tuple[str, ...], output: str) -> None:
    """Save images into one tarball for `lab images load` on a host without a registry.

    Without IMAGE, saves this installation's sim image.
    """
    saved = engine_images.save_images(list(refs), output)
    err_console.print(styled(("saved", "green"), f" {', '.join(saved)} to {output}"))
    click.echo(output)


COMMANDS = (images,)
