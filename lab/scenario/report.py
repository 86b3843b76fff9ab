"""Scenario results as text, a rich table, JSON and JUnit XML (pure functions)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from lab import JSON_SCHEMA_VERSION
from lab.scenario.releases import release_name
from lab.scenario.results import Evidence, Outcome, ScenarioResult
from lab.spec.versions import Version

STYLE = {Outcome.PASSED: "green", Outcome.FAILED: "red", Outcome.ERROR: "red",
         Outcome.SKIPPED: "yellow"}


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in (text.rstrip() or "(empty)").splitlines())


def format_evidence(ev: Evidence, source: str = "") -> str:
    where = f"{source}:{ev.line}" if source and ev.line else source
    parts = [
        f"step:        {ev.step}" + (f"   ({where})" if where else ""),
        f"expected:    {ev.expectation}",
        f"problem:     {ev.problem}",
        "output:",
        _indent(ev.output),
    ]
    if ev.changes:
        parts += ["lab changes for this scenario (given.set):", _indent("\n".join(ev.changes))]
    if ev.config:
        parts.append("per-node config (hashes from manifest.json; * = differs between nodes):")
        for key, values in ev.config:
            distinct = {v for _, v in values if v not in ("-", "None")}
            mark = "*" if len(distinct) > 1 else " "
            shown = "  ".join(f"{n}={v}" for n, v in values)
            parts.append(f"  {mark} {key:<22} {shown}")
    for node, text in ev.logs:
        parts += [f"log of {node} (relevant lines since the scenario started):",
                  _indent(text or "(nothing)")]
    return "\n".join(parts)


BUNDLE_PROPERTY = "lab_collect_bundle"
#: A testsuite property: something said about the whole run (an omnibus lab on the sim image).
WARNING_PROPERTY = "lab_warning"


def is_matrix(results: Sequence[ScenarioResult]) -> bool:
    """Whether the results span several GitLab releases (then names carry the release)."""
    return len({r.release for r in results if r.release}) > 1


def case_name(result: ScenarioResult, matrix: bool) -> str:
    """The release name in a release matrix, else the plain name."""
    return release_name(result.name, result.release) if matrix and result.release \
        else result.name


def format_failure(result: ScenarioResult) -> str:
    """The text a user reads when a scenario did not pass."""
    head = f"scenario {result.name} ({result.source}) {result.outcome.value}"
    if result.lab:
        head += f" on lab {result.lab}"
    if result.release:
        head += f" (GitLab {result.release})"
    lines = [head]
    for step in result.steps:
        mark = "ok  " if step.ok else "FAIL"
        lines.append(f"  {mark} {step.label} ({step.seconds:.1f}s)")
    if result.evidence is not None:
        lines += ["", format_evidence(result.evidence, result.source)]
    elif result.message:
        lines += ["", result.message]
    if result.bundle:
        lines += ["", f"evidence bundle of the failed lab (lab collect): {result.bundle}"]
    return "\n".join(lines)


def matrix_table(results: Sequence[ScenarioResult]) -> Table:
    """Release x scenario: one row per scenario, one column per release."""
    releases = sorted({r.release for r in results if r.release}, key=Version.parse)
    cells: dict[str, dict[str, ScenarioResult]] = {}
    for r in results:
        cells.setdefault(r.name, {})[r.release] = r
    table = Table(title="scenarios x GitLab release", show_lines=False)
    table.add_column("scenario", overflow="fold")
    for release in releases:
        table.add_column(release)
    for name, row in cells.items():
        shown: list[str | Text] = []
        for release in releases:
            # A skipped scenario was never resolved: it has no release, but applies to all.
            cell = row.get(release) or row.get("")
            if cell is None:  # pinned to another release: it ran once, there
                shown.append("(pinned)" if len(row) == 1 else "-")
                continue
            shown.append(Text.assemble((cell.outcome.value, STYLE[cell.outcome]),
                                       f" {cell.seconds:.1f}s"))
        table.add_row(name, *shown)
    return table


def results_table(results: Sequence[ScenarioResult]) -> Table:
    if is_matrix(results):
        return matrix_table(results)
    table = Table(title="scenarios", show_lines=False)
    for col in ("scenario", "result", "steps", "time", "lab", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        passed = sum(1 for s in r.steps if s.ok)
        table.add_row(r.name, Text(r.outcome.value, style=STYLE[r.outcome]),
                      f"{passed}/{len(r.steps)}" if r.steps else "-", f"{r.seconds:.1f}s",
                      # Text, not markup: the message quotes outputs and patterns ("[/a-z]").
                      r.lab or "-", Text(r.message.splitlines()[0] if r.message else ""))
    return table


def summary(results: Sequence[ScenarioResult]) -> str:
    counts = {o: sum(1 for r in results if r.outcome is o) for o in Outcome}
    total = sum(r.seconds for r in results)
    return ", ".join(f"{n} {o.value}" for o, n in counts.items() if n) + f" in {total:.1f}s"


def to_json(results: Sequence[ScenarioResult], warnings: Sequence[str] = ()) -> dict[str, Any]:
    """``warnings``: said about the whole run (an omnibus lab on the sim image)."""
    def ev(e: Evidence | None) -> Any:
        if e is None:
            return None
        return {"step": e.step, "line": e.line, "expectation": e.expectation,
                "problem": e.problem, "output": e.output, "changes": list(e.changes),
                "logs": dict(e.logs), "config": {k: dict(v) for k, v in e.config}}

    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "ok": all(r.ok for r in results),
        "summary": summary(results),
        "warnings": list(warnings),
        "scenarios": [{
            # "status": the key scripts already read, kept though the field is the outcome.
            "name": r.name, "source": r.source, "status": r.outcome.value,
            "seconds": round(r.seconds, 3), "lab": r.lab, "flavor": r.flavor,
            "release": r.release, "bundle": r.bundle or None, "message": r.message,
            "steps": [{"step": s.label, "line": s.line, "succeeded": s.succeeded,
                       "ok": s.ok, "seconds": round(s.seconds, 3), "output": s.output,
                       "problem": s.problem} for s in r.steps],
            "evidence": ev(r.evidence),
        } for r in results],
    }


def junit_classname(source: str, cwd: Path | None = None) -> str:
    """A scenario file's JUnit classname, the same on every install: the built-in library's
    files as ``scenarios/NAME`` (not the site-packages path), others relative to ``cwd``
    (else the file's name), without the suffix, and no dots (tools split classnames on
    them: ``scenarios.tls-push.yaml`` would become a package ``scenarios.tls-push``)."""
    from lab.resources import data_dir

    path = Path(source).resolve()
    rel: Path | None = None
    for root in (data_dir("scenarios").resolve().parent, (cwd or Path.cwd()).resolve()):
        if path.is_relative_to(root):
            rel = path.relative_to(root)
            break
    name = (rel or Path(path.name)).with_suffix("").as_posix()
    return name.replace(".", "_")


def junit_xml(results: Sequence[ScenarioResult], suite: str = "gitlab-testlab",
              warnings: Sequence[str] = ()) -> str:
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(results)),
        "failures": str(sum(r.outcome is Outcome.FAILED for r in results)),
        "errors": str(sum(r.outcome is Outcome.ERROR for r in results)),
        "skipped": str(sum(r.outcome is Outcome.SKIPPED for r in results)),
        "time": f"{sum(r.seconds for r in results):.3f}"})
    if warnings:
        props = ET.SubElement(ts, "properties")
        for warning in warnings:
            ET.SubElement(props, "property", {"name": WARNING_PROPERTY, "value": warning})
    matrix = is_matrix(results)
    for r in results:
        case = ET.SubElement(ts, "testcase", {"classname": junit_classname(r.source),
                                              "name": case_name(r, matrix),
                                              "time": f"{r.seconds:.3f}"})
        if r.bundle:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", {"name": BUNDLE_PROPERTY, "value": r.bundle})
        if r.outcome is Outcome.SKIPPED:
            ET.SubElement(case, "skipped", {"message": r.message})
        elif r.outcome in (Outcome.FAILED, Outcome.ERROR):
            tag = "failure" if r.outcome is Outcome.FAILED else "error"
            el = ET.SubElement(case, tag, {"message": r.message.splitlines()[0]
                                           if r.message else r.outcome.value})
            el.text = format_failure(r)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"


def write_junit(results: Sequence[ScenarioResult], path: Path,
                warnings: Sequence[str] = ()) -> None:
    """Written 0600: a report carries log lines from the lab."""
    from lab.store.layout import SECRET, write_file

    write_file(path, junit_xml(results, warnings=warnings), SECRET)
