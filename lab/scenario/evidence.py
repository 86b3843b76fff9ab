"""What a failed scenario shows: the step, its output, relevant log lines, per-node
config hashes, and (on request) a `lab collect` bundle of the lab in its failed state."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from lab.errors import LabError
from lab.lifecycle.contract import LabHandle
from lab.model.topology import Lab
from lab.scenario.definition import Scenario, ScenarioLabs, Step
from lab.scenario.results import ConfigRows, Evidence, StepResult
from lab.scenario.steps import Run

LOG_TAIL = 400
LOG_LINES_SHOWN = 25
# Lines worth showing from a node's log when a step failed.
INTERESTING = re.compile(r"error|denied|unauthori[sz]ed|fail|reject|refused|unreachable|"
                         r"certificate|x509|tls|panic|timeout", re.IGNORECASE)
CONFIG_KEYS = ("secrets_policy", "secrets_file_sha256", "shell_secret_sha256",
               "gitaly_token_sha256", "tls")

# Writes a `lab collect` bundle of a lab as it is now, named after ``stem``; returns its path.
CollectFn = Callable[[LabHandle, str], Path]


def bundle_collector(folder: Path) -> CollectFn:
    """A CollectFn writing ``folder/<stem>.tar.gz`` with `lab collect`'s bundle."""
    def collect_bundle(running: LabHandle, stem: str) -> Path:
        from lab.support.collect import collect  # imported late: only needed when something failed

        folder.mkdir(parents=True, exist_ok=True)
        return collect(running, folder / f"{stem}.tar.gz").resolve()

    return collect_bundle


def node_logs(run: Run, node: str) -> str:
    # Only what this scenario caused: earlier scenarios' lines must not satisfy a pattern.
    return run.redact(run.running.logs(node, tail=LOG_TAIL, since=str(int(run.started))))


def _relevant(text: str) -> str:
    lines = text.splitlines()
    hits = {i for i, ln in enumerate(lines) if INTERESTING.search(ln)}
    wanted = sorted(hits)[-LOG_LINES_SHOWN:] + list(range(max(0, len(lines) - 10), len(lines)))
    # In log order: the interesting lines, and the last few for context.
    return "\n".join(lines[i] for i in sorted(set(wanted)))


def config_diff(running: LabHandle, lab: Lab) -> ConfigRows:
    """Per-node settings that must agree, as hashes from manifest.json (never values)."""
    from lab.render.gitlab_rb import internal_api_url
    from lab.store.lab_folder import LabFolder

    manifest = LabFolder(running.path).manifest() or {}
    nodes = manifest.get("nodes", {})
    rows: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for key in CONFIG_KEYS:
        rows.append((key, tuple((n, str(d.get(key, "-"))) for n, d in sorted(nodes.items()))))
    gitaly = [n for n in lab.nodes if n.gitaly_only]
    if gitaly:
        rows.append(("internal_api_url", tuple(
            (n.name, internal_api_url(lab, n) or "(unset)") for n in gitaly)))
        rows.append(("trust_ca", tuple((n.name, str(n.trust_ca)) for n in lab.nodes)))
    return tuple(rows)


def evidence(run: Run, step: Step, result: StepResult) -> Evidence:
    logs: list[tuple[str, str]] = []
    for node in run.labs.target.nodes:
        try:
            logs.append((node.name, _relevant(node_logs(run, node.name))))
        except LabError as exc:
            logs.append((node.name, f"(no logs: {exc})"))
    try:
        config = config_diff(run.running, run.labs.target)
    except (LabError, OSError) as exc:
        config = (("manifest.json", (("-", f"unreadable: {exc}"),)),)
    return Evidence(step=result.label, line=result.line, expectation=step.expect.describe(),
                    problem=result.problem or "", output=result.output,
                    changes=run.labs.changes, logs=tuple(logs), config=config)


def bundle(collect: CollectFn | None, running: LabHandle | None, scenario: Scenario,
           labs: ScenarioLabs) -> tuple[str, str]:
    """(bundle path, "") or ("", why not): evidence of the lab in its failed state."""
    if collect is None or running is None:
        return "", ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{scenario.name}-{labs.base.version}-"
                  f"{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        return str(collect(running, stem)), ""
    except (LabError, OSError) as exc:
        return "", f"\n(could not write the evidence bundle: {exc})"
