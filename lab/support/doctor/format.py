"""`lab doctor`'s output: a table for people, plain text for bundles and logs, JSON facts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table
from rich.text import Text

from lab.support.doctor.checks import Level, Report
from lab.support.doctor.facts import Gathered

STYLE = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "bold red", Level.SKIP: "dim"}


def format_table(report: Report) -> Any:
    title = f"lab doctor: {report.lab}" if report.lab else "lab doctor: host"
    table = Table(title=title, title_justify="left")
    for col in ("status", "where", "check", "detail", "hint"):
        table.add_column(col, overflow="fold")
    for c in report.checks:
        table.add_row(Text(c.level.value, style=STYLE[c.level]), c.scope, c.name, c.detail,
                      c.hint)
    return table


def format_text(report: Report) -> str:
    """Plain text (for bundles and logs): one line per check, hint indented below."""
    lines = [f"lab doctor: {report.lab or 'host'}"]
    for c in report.checks:
        lines.append(f"{c.level.value:<4}  {c.scope:<10} {c.name:<18} {c.detail}")
        if c.hint:
            lines.append(f"{'':<17}hint: {c.hint}")
    lines.append("result: " + ("FAIL" if report.failed else "OK"))
    return "\n".join(lines) + "\n"


def gathered_json(g: Gathered) -> dict[str, Any]:
    """The facts (no secret values: ``secrets`` is left out) for a bundle."""
    data = asdict(g)
    data.pop("secrets", None)
    return data
