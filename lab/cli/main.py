"""The `lab` command: registers the subcommands and translates user errors.

Exit codes (the README's table): 0 success; a user error exits with its class's
``exit_code`` (lab.errors: 1 a check or scenario failed, 2 bad input, 3 Docker,
Compose or an image is not usable, 4 the lab did not become ready, 5 a host tool
is missing); click's usage errors exit 2.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from typing import Any

import click

from lab import __version__
from lab.cli.common import err_console, styled
from lab.errors import EXIT_USAGE, LabError

# Each command's module is imported only when that command runs (or help lists
# them all): `lab up` then pays for the lifecycle stack alone, not for images,
# scenarios and support as well. Name -> "module:attribute".
COMMANDS = {
    "render": "lab.cli.render:render",
    "up": "lab.cli.lifecycle:up",
    "down": "lab.cli.lifecycle:down",
    "status": "lab.cli.lifecycle:status",
    "logs": "lab.cli.lifecycle:logs",
    "exec": "lab.cli.lifecycle:exec_",
    "list": "lab.cli.lifecycle:list_",
    "gc": "lab.cli.lifecycle:gc",
    "images": "lab.cli.images:images",
    "run": "lab.cli.scenario:run",
    "doctor": "lab.cli.support:doctor",
    "collect": "lab.cli.support:collect",
    "import": "lab.cli.support:import_",
}


class LazyGroup(click.Group):
    """A group whose commands are named up front and imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitlab-testlab")
@click.option("-v", "--verbose", is_flag=True, help="Log every Docker command (secrets redacted).")
def cli(verbose: bool) -> None:
    """gitlab-testlab: GitLab test labs on Docker Compose, proven by scenarios."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(name)s: %(message)s")


def main() -> None:
    """The `lab` command (console script, `python -m lab`): the last thing its process does."""
    try:
        _main()
    finally:
        # The process ends next. Python's shutdown runs the cycle collector over every object
        # left (the toolkit's modules, click, Rich, the Docker SDK, gRPC): ~50 ms, after
        # `lab up` has said the lab is ready. Frozen objects are not examined, and the
        # operating system frees the memory anyway. (Not in ``cli``, which tests and other
        # programs call in their own processes.)
        gc.freeze()


def _main() -> None:
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
        err_console.print(styled(("error:", "bold red")), end=" ")
        # soft_wrap: a path or file:line is never split; the terminal wraps long lines itself.
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
