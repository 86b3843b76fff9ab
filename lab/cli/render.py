"""`lab render`: write a lab directory without starting anything."""

from __future__ import annotations

from pathlib import Path

import click

from lab.cli.common import console, spec_options, spec_request, styled, warn_if_forced
from lab.engine.images import image_for
from lab.render.diagram import markdown, rendered_hashes
from lab.spec.labspec import resolve
from lab.store.labdir import write_lab


@click.command()
@spec_options
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The lab directory to write.")
@click.option("--regenerate", is_flag=True, help="Make new secrets instead of keeping the lab's.")
@click.option("--diagram", is_flag=True,
              help="Also print the lab as a Mermaid graph (paste it into a GitLab issue).")
@click.option("--force", is_flag=True,
              help="Write into a non-empty folder that is not a lab (same-named files replaced).")
def render(topology: str | None, spec_file: Path | None, gitlab_version: str | None,
           force_version: bool, flavor: str | None, sets: tuple[str, ...], output: Path,
           regenerate: bool, diagram: bool, force: bool) -> None:
    """Render a lab directory: gitlab.rb and gitlab-secrets.json per node, TLS, compose file.

    -o must be a new or empty folder, or one an earlier render wrote (--force: any
    folder). A render replaces or removes only files it writes, never through a
    symbolic link.
    """
    lab = resolve(spec_request(topology, spec_file, gitlab_version, flavor, sets,
                               force_version=force_version))
    warn_if_forced(lab)
    rendered = write_lab(lab, output, regenerate=regenerate, image=image_for(lab), force=force)
    console.print(styled("Rendered lab ", (lab.name, "bold"),
                         f" (GitLab {lab.version}, {lab.flavor.value}, {lab.dialect.name}) "
                         f"into {rendered.path}"))
    for path in sorted(rendered.files):
        console.print(f"  {path}", highlight=False)
    console.print(f"Start it by hand: cd {rendered.path} && docker compose up -d   "
                  f"(or: lab up -f … / lab up {lab.topology or '-f SPEC'})", highlight=False)
    if diagram:
        click.echo(markdown(lab, rendered_hashes(lab, rendered.secrets)), nl=False)
