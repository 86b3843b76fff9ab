"""`lab images build|list|load|save`: the offline sim image and local GitLab images."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from datetime import datetime

import click
from rich.table import Table
from rich.text import Text

from lab.cli.common import console as stdout_console
from lab.cli.common import echo_json, err_console, json_option, styled
from lab.engine import image_catalogue
from lab.engine.images import base_image_ref, build_images, sim_image_ref


def short_id(image_id: str) -> str:
    """The 12 hex digits `docker image ls` shows."""
    return image_id.removeprefix("sha256:")[:12]


def human_size(size: int) -> str:
    """Bytes as `docker image ls` shows them (decimal units, three digits: 183MB)."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}GB" if value < 1000 else f"{value:.0f}GB"


def ago(created: str, now: float) -> str:
    """'3 hours ago' for an RFC 3339 time (the engine's), or "" if it is unreadable."""
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return ""
    seconds = max(0, int(now - then))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            n = seconds // length
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "less than a minute ago"


def format_image(row: image_catalogue.ImageInfo, now: float) -> dict[str, object]:
    """An image as `lab images list` shows it (and its --json): id, size and age as
    `docker image ls` shows them."""
    return asdict(replace(row, image_id=short_id(row.image_id))) | {
        "size": human_size(row.size), "created": ago(row.created, now)}


def format_images_table(rows: list[dict[str, object]]) -> Table:
    table = Table(title="gitlab-testlab images")
    table.add_column("image", no_wrap=True)
    for column in ("kind", "current", "id", "size", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["ref"]), str(row["kind"]), "yes" if row["current"] else "",
                      str(row["image_id"]), str(row["size"]), str(row["created"]))
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

        ref = build_images(force=force, progress=progress)
    console.print(styled(("ready", "green"), f" {ref} ({time.monotonic() - started:.0f}s)"))
    click.echo(ref)


@images.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """List the sim/base images and local gitlab/gitlab-ce|ee images."""
    now = time.time()
    rows = [format_image(row, now) for row in image_catalogue.list_images(
        {sim_image_ref(), base_image_ref()})]
    if as_json:
        echo_json({"images": rows})
        return
    stdout_console.print(format_images_table(rows))


@images.command()
@click.argument("file", type=click.Path(dir_okay=False))
def load(file: str) -> None:
    """Load an image tarball (`docker save` output), e.g. gitlab-ce on an air-gapped host."""
    ref = image_catalogue.load_image(file)
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
    saved = image_catalogue.save_images(list(refs) or [sim_image_ref()], output)
    err_console.print(styled(("saved", "green"), f" {', '.join(saved)} to {output}"))
    click.echo(output)


COMMANDS = (images,)
