"""The `lab` command: registers the subcommands and translates user errors.

Exit codes (the README's table): 0 success; a user error exits with its class's
``exit_code`` (lab.errors: 1 a check or scenario failed, 2 bad input, 3 Docker,
Compose or an image is not usable, 4 the lab did not become ready, 5 a host tool
is missing); click's usage errors exit 2.
"""

from __future__ import annotations

import logging
import sys

import click

from lab import __version__
from lab.cli.common import err_console
from lab.errors import EXIT_USAGE, LabError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitlab-testlab")
@click.option("-v", "--verbose", is_flag=True, help="Log every Docker command (secrets redacted).")
def cli(verbose: bool) -> None:
    """gitlab-testlab: GitLab test labs on Docker Compose, proven by scenarios."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(name)s: %(message)s")


def _register() -> None:
    from lab.cli import images, lifecycle, render, scenario, support

    cli.add_command(render.render)
    for module in (images, lifecycle, scenario, support):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except LabError as exc:
        err_console.print("[bold red]error:[/]", end=" ")
        err_console.print(str(exc), markup=False, highlight=False)
        sys.exit(exc.exit_code)
