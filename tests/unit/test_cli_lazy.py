"""The `lab` group imports a command's module only when that command runs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from lab.cli.main import COMMANDS, cli

MODULES = ("lab.cli.images", "lab.cli.lifecycle", "lab.cli.render", "lab.cli.scenario",
           "lab.cli.support")


def test_every_command_of_every_module_is_listed() -> None:
    listed = {(spec.partition(":")[0], name) for name, spec in COMMANDS.items()}
    for module in MODULES:
        mod = importlib.import_module(module)
        commands = getattr(mod, "COMMANDS", None) or [mod.render]
        for command in commands:
            assert isinstance(command, click.Command)
            assert (module, command.name) in listed, f"{module}:{command.name} not in COMMANDS"
    for name, spec in COMMANDS.items():
        module, _, attr = spec.partition(":")
        assert getattr(importlib.import_module(module), attr).name == name


def test_help_lists_every_command() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert f"  {name} " in out


def test_a_command_imports_only_its_own_module() -> None:
    code = ("import sys\nfrom lab.cli.main import cli\n"
            "cli.main(['up', '--help'], standalone_mode=False)\n"
            "print(sorted(m for m in sys.modules if m.startswith('lab.cli.')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = res.stdout.strip().splitlines()[-1]
    assert "lab.cli.lifecycle" in loaded
    for other in ("lab.cli.scenario", "lab.cli.support", "lab.cli.images", "lab.cli.render"):
        assert other not in loaded


def test_shell_completion_names_lazy_commands() -> None:
    res = subprocess.run(
        [sys.executable, "-c", "from lab.cli.main import cli; cli(prog_name='lab')"],
        env={**os.environ, "_LAB_COMPLETE": "bash_complete",
             "COMP_WORDS": "lab d", "COMP_CWORD": "1"},
        capture_output=True, text=True, check=False)
    assert "plain,doctor" in res.stdout
    assert "plain,down" in res.stdout


ROOT = str(Path(__file__).resolve().parents[2])


def test_python_dash_m_lab_is_the_lab_command() -> None:
    # Where the console script is not on PATH (a checkout on PYTHONPATH).
    proc = subprocess.run([sys.executable, "-m", "lab", "--version"], capture_output=True,
                          text=True, check=False, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gitlab-testlab")


# What `lab up` must not load before Compose starts: the readiness probes and the gRPC
# stack (loaded in a thread while Compose runs), Rich's progress bar and tables, and what
# only other commands use. Every module here once added its import time to `lab up`.
NOT_BEFORE_COMPOSE = ("grpc", "google.protobuf", "lab.client.gitaly", "lab.lifecycle.layers",
                      "lab.lifecycle.probes", "lab.lifecycle.status", "lab.lifecycle.faults",
                      "lab.lifecycle.node_actions", "lab.render.diagram", "lab.render.stack",
                      "lab.support.collect", "lab.cli.support", "rich.progress", "rich.table")


def test_up_imports_only_what_it_needs_before_compose() -> None:
    code = ("import sys\nimport lab.cli.main, lab.cli.lifecycle\n"
            f"print([m for m in {NOT_BEFORE_COMPOSE!r} if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_a_failed_up_prints_what_an_empty_progress_bar_prints() -> None:
    # The bar starts at the first readiness layer; one that never started still ends with
    # the newline an empty bar's stop prints, as when the bar started before Compose.
    code = ("import sys\nfrom lab.cli.lifecycle import RichProgress\n"
            "with RichProgress():\n    pass\n"
            "print('rich.progress' in sys.modules, file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert res.stderr == "\nTrue\n"
