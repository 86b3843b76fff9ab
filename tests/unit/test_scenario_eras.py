"""Expectations keyed by release range: each release runs with its own exact text."""

from __future__ import annotations

import re
import string
import textwrap

import pytest

from lab.errors import SpecError
from lab.omnibus import eras
from lab.omnibus.release import Version
from lab.resources import data_dir
from lab.scenario.load import parse_scenario
from lab.scenario.plan import expand

V = Version.parse

KEYED = textwrap.dedent("""\
    lab: {topology: scaled}
    steps:
      - create_project: {project: p1}
      - push: p1
        expect:
          outcome: fail
          output:
            "11.11-13.1": 'ruby era'
            "13.2+": 'go era'
          log:
            node: gitlab
            pattern: {"11.11-14.3": 'old log', "14.4+": 'new log'}
    """)


def test_each_release_gets_the_pattern_of_its_range() -> None:
    sc = parse_scenario(KEYED, "sc.yaml")
    push = sc.steps[1]
    assert push.expect.output == "go era"  # the newest until a release is chosen
    for release, output, log in [("11.11.8", "ruby era", "old log"),
                                 ("13.1.9", "ruby era", "old log"),
                                 ("13.2.0", "go era", "old log"),
                                 ("14.4.0", "go era", "new log"),
                                 ("19.3.0", "go era", "new log")]:
        expect = sc.at(V(release)).steps[1].expect
        assert (expect.output, expect.log.pattern if expect.log else None) == (output, log)


def test_the_plan_runs_each_release_with_its_own_text() -> None:
    sc = parse_scenario(KEYED, "sc.yaml")
    items = expand(sc, flavor="sim", releases=["12.10.14", "17.11.7"])
    assert [i.scenario.steps[1].expect.output for i in items] == ["ruby era", "go era"]


@pytest.mark.parametrize(("ranges", "message"), [
    ('{"12.0+": a}', "must start at 11.11 or before"),
    ('{"11.11-12.9": a, "13.2+": b}', "without gap or overlap (one ends, the next starts at 13.2)"),
    ('{"11.11-13.5": a, "13.2+": b}', "without gap or overlap"),
    ('{"11.11-13.1": a}', "the last release range must be open"),
    ('{"13.x": a}', "'13.x' is not a release range"),
    ('{"13.2-12.0": a}', "the range ends before it starts"),
])
def test_bad_ranges_name_file_line_and_key(ranges: str, message: str) -> None:
    text = ("lab: {topology: scaled}\nsteps:\n  - create_project: {project: p1}\n"
            f"  - push: p1\n    expect:\n      outcome: fail\n      output: {ranges}\n")
    with pytest.raises(SpecError) as err:
        parse_scenario(text, "sc.yaml")
    assert str(err.value).startswith("sc.yaml:")
    assert "steps.1.expect.output" in str(err.value)
    assert message in str(err.value)


def _probes(template: str) -> set[str]:
    """Pieces of a row's text a pattern quotes: the head and tail of each fixed chunk
    (between its {fields}, with {{ and }} undone) of 12 characters or more."""
    out = set()
    for literal, *_ in string.Formatter().parse(template):
        chunk = re.sub(r"^[0-9]{3} ", "", literal)
        if len(chunk) >= 12:
            out |= {chunk[:40], chunk[-40:]}
    return out


def eras_in(plain: str, rows: list[set[str]]) -> int:
    """How many of one behaviour's eras ``plain`` quotes. A piece that several eras share
    tells none apart; a piece found only inside another era's longer piece (the new text
    extends the old) does not count for its own era."""
    shared = {p for p in set().union(*rows) if sum(p in r for r in rows) > 1}
    pieces = sorted(((p, i) for i, r in enumerate(rows) for p in r - shared),
                    key=lambda pi: len(pi[0]), reverse=True)
    taken: list[tuple[int, int, int]] = []
    hit = set()
    for piece, i in pieces:
        for m in re.finditer(re.escape(piece), plain):
            lo, hi = m.start(), m.start() + len(piece)
            if not any(a <= lo and hi <= b and j != i for a, b, j in taken):
                hit.add(i)
            taken.append((lo, hi, i))
    return len(hit)


def test_eras_in_counts_an_alternation_but_not_an_extension() -> None:
    rows = [_probes("failed to connect to all addresses"),
            _probes("failed to connect to all addresses; last error: {reason}")]
    assert eras_in("Error: 14:failed to connect to all addresses; last error: x", rows) == 1
    assert eras_in("14:failed to connect to all addresses. debug", rows) == 1
    assert eras_in("(failed to connect to all addresses.|failed to connect to all addresses;"
                   " last error: )", rows) == 2


def test_the_library_has_no_alternation_across_eras() -> None:
    """The texts that changed between releases appear in the library keyed by release, never
    as (old|new) alternatives in one pattern: output and log patterns alike."""
    pairs = {}
    for behaviour in {e.behaviour for e in eras.ERAS}:
        pairs[behaviour] = [_probes(r.text) for r in eras.ERAS if r.behaviour == behaviour]
    checked = 0
    for path in sorted(data_dir("scenarios").glob("*.yaml")):
        sc = parse_scenario(path.read_text(), str(path))
        for release in ("11.11.0", "12.10.0", "13.2.0", "14.4.0", "15.10.0", "16.1.0", "19.3.0"):
            for step in sc.at(V(release)).steps:
                for pattern in filter(None, [step.expect.output,
                                             step.expect.log.pattern if step.expect.log
                                             else None]):
                    plain = pattern.replace("\\", "")
                    checked += 1
                    for texts in pairs.values():
                        assert eras_in(plain, texts) <= 1, (path.name, pattern)
    assert checked


@pytest.mark.parametrize(("release", "text"), [
    ("12.10.14", "Failed to authorize your Git request: internal API unreachable"),
    ("17.11.7", "Internal API unreachable"),
])
def test_library_expects_the_hook_text_of_the_release(release: str, text: str) -> None:
    path = data_dir("scenarios") / "internal-api-url-wrong.yaml"
    sc = parse_scenario(path.read_text(), str(path)).at(V(release))
    output = sc.steps[1].expect.output or ""
    assert text in output.replace("\\", "")
    assert eras.internal_api_unreachable(V(release)) == text


def test_a_scenario_for_another_flavour_is_skipped_across_an_era_matrix() -> None:
    """The seven-era matrix starts at 11.11, before any Gitaly Cluster: a cluster scenario
    for omnibus only is skipped on the sim, not an error."""
    text = textwrap.dedent("""\
        flavors: [omnibus]
        lab: {topology: cluster}
        steps:
          - api: {path: /api/v4/user}
        """)
    sc = parse_scenario(text, "sc.yaml")
    [item] = expand(sc, flavor="sim", releases=["11.11.8", "19.3.0"])
    assert item.labs is None
    [alone] = expand(sc, flavor="sim", releases=["11.11.8"])
    assert alone.labs is None


def test_a_cluster_scenario_is_skipped_at_releases_without_a_cluster() -> None:
    """The library at the guide's 11.11 goes on past the cluster scenarios: each release
    before 13.3 is a skipped case saying why (a collection error stopped the whole run)."""
    sc = parse_scenario(textwrap.dedent("""\
        lab: {topology: cluster}
        steps:
          - api: {path: /api/v4/user}
        """), "sc.yaml")
    old, new = expand(sc, flavor="sim", releases=["11.11.8", "19.3.0"])
    assert old.labs is None
    assert "13.3.0" in old.why_skipped
    assert old.name.endswith("[11.11.8]")
    assert new.labs is not None
    [alone] = expand(sc, flavor="sim", releases=["12.10.14"])
    assert alone.labs is None
    assert "13.3.0" in alone.why_skipped


def test_a_cluster_scenario_pinned_to_an_old_release_is_its_own_mistake() -> None:
    sc = parse_scenario(textwrap.dedent("""\
        lab: {topology: cluster, version: 12.10.14}
        steps:
          - api: {path: /api/v4/user}
        """), "sc.yaml")
    with pytest.raises(SpecError, match=r"13\.3\.0"):
        expand(sc, flavor="sim", releases=["19.3.0"])
