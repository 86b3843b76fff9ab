"""The Mermaid picture: it parses (a grammar check of the subset we emit), it shows the
addresses and storages, and a secret mismatch is a red edge naming the setting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.model.topology import Lab
from lab.render.diagram import Hashes, markdown, mermaid, mismatches, rendered_hashes
from lab.render.secrets import LabSecrets, ensure_secrets, secret_values
from lab.spec.labspec import SpecRequest, resolve
from lab.support.collect import summary
from lab.support.doctor import Report

# Mermaid flowchart, the subset a diagram may use.
HEADER = re.compile(r"^flowchart (LR|RL|TB|TD|BT)$")
ID = r"[A-Za-z_][A-Za-z0-9_]*"
LABEL = r'"(?P<label>[^"]*)"'
NODE = re.compile(rf"^(?P<id>{ID})(\[{LABEL}\]|\[\({LABEL.replace('label', 'label2')}\)\])$")
EDGE = re.compile(rf"^(?P<a>{ID}) (?P<arrow>-->|-\.->|---|<-->)\|{LABEL}\| (?P<b>{ID})$")
SUBGRAPH = re.compile(rf"^subgraph (?P<id>{ID})( \[{LABEL}\])?$")
LINKSTYLE = re.compile(r"^linkStyle (?P<idx>\d+(,\d+)*) (?P<style>[a-z-]+:[^;,\s]+"
                       r"(,[a-z-]+:[^;,\s]+)*)$")
RESERVED = {"end", "graph", "flowchart", "subgraph", "style", "linkStyle", "classDef", "class",
            "click", "default"}
# In labels: entities for quotes/brackets; only these tags.
TAGS = re.compile(r"<(b|/b|br/)>")


class MermaidError(ValueError):
    pass


@dataclass
class Flowchart:
    nodes: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # a, arrow, label, b
    styles: dict[int, str] = field(default_factory=dict)
    subgraphs: list[str] = field(default_factory=list)


def _label(text: str, line_no: int) -> str:
    if "<" in TAGS.sub("", text) or ">" in TAGS.sub("", text):
        raise MermaidError(f"line {line_no}: raw angle bracket in label {text!r}")
    return TAGS.sub(" ", text).replace("#quot;", '"').replace("#lt;", "<").replace(
        "#gt;", ">").replace("#amp;", "&")


def parse(source: str) -> Flowchart:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    if not lines or not HEADER.match(lines[0]):
        raise MermaidError("line 1: expected `flowchart LR|TB|…`")
    chart = Flowchart()
    depth = 0
    for no, line in enumerate(lines[1:], start=2):
        if line == "end":
            depth -= 1
            if depth < 0:
                raise MermaidError(f"line {no}: `end` without `subgraph`")
        elif m := SUBGRAPH.match(line):
            depth += 1
            chart.subgraphs.append(m["id"])
            if m["label"] is not None:
                _label(m["label"], no)
        elif m := EDGE.match(line):
            for end in (m["a"], m["b"]):
                if end not in chart.nodes:
                    raise MermaidError(f"line {no}: edge to undefined node {end}")
            chart.edges.append((m["a"], m["arrow"], _label(m["label"], no), m["b"]))
        elif m := LINKSTYLE.match(line):
            for idx in map(int, m["idx"].split(",")):
                if idx >= len(chart.edges):
                    raise MermaidError(f"line {no}: linkStyle {idx} before that edge exists")
                chart.styles[idx] = m["style"]
        elif m := NODE.match(line):
            if m["id"] in RESERVED:
                raise MermaidError(f"line {no}: reserved word {m['id']!r} as a node id")
            chart.nodes[m["id"]] = _label(m["label"] or m["label2"], no)
        else:
            raise MermaidError(f"line {no}: not flowchart syntax: {line!r}")
    if depth:
        raise MermaidError("unclosed subgraph")
    return chart


def lab_and_secrets(topology: str = "scaled", *sets: str) -> tuple[Lab, LabSecrets]:
    lab = resolve(SpecRequest(topology=topology, sets=sets))
    return lab, ensure_secrets(lab, None)


def red(chart: Flowchart) -> list[str]:
    return [chart.edges[i][2] for i, style in chart.styles.items() if "#d1242f" in style]


def test_grammar_check_can_fail() -> None:
    good = 'flowchart LR\n    a["x"]\n    b["y"]\n    a -->|"l"| b\n    linkStyle 0 stroke:red\n'
    assert parse(good).edges == [("a", "-->", "l", "b")]
    for bad in ('graph XY\n', 'flowchart LR\na -->|"l"| b\n',
                'flowchart LR\na["x"]\nlinkStyle 0 stroke:red\n',
                'flowchart LR\na["say "hi""]\n', 'flowchart LR\nsubgraph s\na["x"]\n',
                'flowchart LR\nend["x"]\n', 'flowchart LR\na["<script>"]\n'):
        with pytest.raises(MermaidError):
            parse(bad)


@pytest.mark.parametrize(("topology", "sets"), [
    ("single", ()), ("scaled", ()), ("sharded", ()), ("scaled", ("tls=true",)),
    ("sharded", ("nodes.gitaly2.secrets=none", "nodes.gitaly1.gitaly_token=t0k3n-of-its-own")),
])
def test_every_topology_parses(topology: str, sets: tuple[str, ...]) -> None:
    lab, sec = lab_and_secrets(topology, *sets)
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert {f"n_{n.name}" for n in lab.nodes} == set(chart.nodes)
    text = markdown(lab, rendered_hashes(lab, sec))
    assert text.startswith("```mermaid\nflowchart LR\n")
    assert text.endswith("```\n")
    # Never a value: not the secrets file's, not the token.
    for value in [*secret_values(sec.shared), sec.gitaly_token, "t0k3n-of-its-own"]:
        assert value not in text


def test_scaled_shows_addresses_storages_and_agreement() -> None:
    lab, sec = lab_and_secrets("scaled")
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert "storage storage1: /var/opt/gitlab/git-data-storage1/repositories" in \
        chart.nodes["n_gitaly1"]
    assert ("n_gitlab", "-->", "gRPC tcp://gitaly1:8075 (default, storage1)", "n_gitaly1") in \
        chart.edges
    assert ("n_gitaly1", "-.->", "internal API http://gitlab", "n_gitlab") in chart.edges
    assert red(chart) == []
    agree = [label for _, arrow, label, _ in chart.edges if arrow == "---"]
    assert [a.split(" agrees ")[0] for a in agree] == ["gitlab_shell.secret_token",
                                                       "gitaly auth token"]
    assert mismatches(lab, rendered_hashes(lab, sec)) == []


def test_tls_address() -> None:
    lab, sec = lab_and_secrets("scaled", "tls=true")
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert any(label.startswith("gRPC tls://gitaly1:9999") for _, _, label, _ in chart.edges)


def test_own_secrets_is_a_red_edge_naming_the_setting() -> None:
    lab, sec = lab_and_secrets("scaled", "nodes.gitaly1.secrets=own")
    hashes = rendered_hashes(lab, sec)
    chart = parse(mermaid(lab, hashes))
    assert red(chart) == ["MISMATCH gitlab_shell.secret_token differs"]
    assert mismatches(lab, hashes) == ["gitlab_shell.secret_token: gitlab vs gitaly1: differs"]


def test_missing_file_and_token_mismatch() -> None:
    lab, sec = lab_and_secrets("sharded", "nodes.gitaly2.secrets=none",
                               "nodes.gitaly1.gitaly_token=t0k3n-of-its-own")
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert sorted(red(chart)) == ["MISMATCH gitaly auth token differs",
                                  "MISMATCH gitlab_shell.secret_token missing on gitaly2"]


def test_internal_api_unset_is_drawn() -> None:
    lab, sec = lab_and_secrets("scaled", "nodes.gitaly1.internal_api_url=")
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert ("n_gitaly1", "-.->", "internal API: not set", "n_gitlab") in chart.edges


def test_odd_text_is_escaped() -> None:
    lab, sec = lab_and_secrets("scaled", 'nodes.gitaly1.internal_api_url=http://a"b<c>')
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert ("n_gitaly1", "-.->", 'internal API http://a"b<c>', "n_gitlab") in chart.edges


def test_collect_summary_draws_the_mismatch() -> None:
    lab, sec = lab_and_secrets("scaled", "nodes.gitaly1.secrets=own")
    hashes = rendered_hashes(lab, sec)
    # What the node really holds (read in its container) wins over the rendered file.
    seen = Hashes({**hashes.shell_secret, "gitaly1": hashes.shell_secret["gitlab"]},
                  hashes.gitaly_token)
    text = summary(lab, Report(None, ()), [], [], False, [], picture=hashes)
    block = text.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert red(parse(block)) == ["MISMATCH gitlab_shell.secret_token differs"]
    assert "- **mismatch** gitlab_shell.secret_token: gitlab vs gitaly1: differs" in text
    fixed = summary(lab, Report(None, ()), [], [], False, [], picture=seen)
    assert "MISMATCH" not in fixed
    assert "**mismatch**" not in fixed


def test_lab_render_diagram_prints_the_block(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lab.cli.main import cli

    result = CliRunner().invoke(cli, ["render", "scaled", "--set", "nodes.gitaly1.secrets=own",
                                      "-o", str(tmp_path / "lab"), "--diagram"])
    assert result.exit_code == 0, result.output
    block = result.output.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert red(parse(block)) == ["MISMATCH gitlab_shell.secret_token differs"]


@pytest.mark.parametrize(("sets", "problem"), [
    (("nodes.gitlab.trust_ca=false",), "gitlab does not trust the lab CA (trust_ca: false)"),
    (("nodes.gitaly1.trust_ca=false",), "gitaly1 does not trust the lab CA (trust_ca: false)"),
    (("nodes.gitaly1.tls_san=[not-gitaly1.example]",),
     "certificate SAN not-gitaly1.example does not name gitaly1"),
])
def test_tls_trust_and_san_problems_are_red_edges(sets: tuple[str, ...], problem: str) -> None:
    lab, sec = lab_and_secrets("scaled", "nodes.gitaly1.tls=true", *sets)
    hashes = rendered_hashes(lab, sec)
    chart = parse(mermaid(lab, hashes))
    assert red(chart) == [f"TLS FAILS: {problem}"]
    assert mismatches(lab, hashes) == [f"TLS: gitlab -> gitaly1: {problem}"]


def test_sound_tls_is_a_green_edge() -> None:
    lab, sec = lab_and_secrets("scaled", "nodes.gitaly1.tls=true")
    chart = parse(mermaid(lab, rendered_hashes(lab, sec)))
    assert red(chart) == []
    assert any(label == "TLS: CA trusted, certificate names gitaly1"
               for _, arrow, label, _ in chart.edges if arrow == "---")
