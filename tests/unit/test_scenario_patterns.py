"""Scenario patterns run on RE2: none can hang a run, and what RE2 cannot do is refused at
load time with the file, line, key and pattern named."""

from __future__ import annotations

import re

import pytest

from lab.errors import SpecError
from lab.scenario.load import parse_scenario
from lab.scenario.patterns import MAX_PATTERN_CHARS, PatternError, compile_pattern, search
from lab.scenario.runner import check_expectation


def scenario(output: str) -> str:
    return ("lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect:\n"
            f"      outcome: fail\n      output: {output}\n")


# pytest-timeout's limit turns a backtracking engine coming back into a failure, not an
# afternoon: Python's re takes hours on these (2**34 ways to split 34 "a"s).
@pytest.mark.timeout(60)
@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "(x+x+)+y"])
def test_a_catastrophic_pattern_is_answered_at_once(pattern: str) -> None:
    step = parse_scenario(scenario(f"'{pattern}'"), "sc.yaml").steps[0]
    output = "a" * 34 + "!" if "x" not in pattern else "x" * 5000
    problem = check_expectation(step, False, output, lambda node: "")
    assert problem is not None
    assert problem.startswith("the output does not match")
    log_step = parse_scenario("lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect:\n"
                              f"      log: {{node: gitlab, pattern: '{pattern}'}}\n",
                              "sc.yaml").steps[0]
    assert check_expectation(log_step, True, "", lambda node: output, settle=0) is not None


@pytest.mark.parametrize(("pattern", "says"), [
    (r"'a(?=b)'", "invalid perl operator: (?="),
    (r"'(?<!x)y'", "invalid perl operator: (?<"),
    (r"'(a)\1'", "invalid escape sequence: \\1"),
    (r"'a++'", "bad repetition operator: ++"),
    (r"'end\Z'", "invalid escape sequence: \\Z"),
    (r"'(['", "missing ]"),
    (r"'(\w+\s?){1000}'", "too big to match quickly"),
    ("'" + "a" * (MAX_PATTERN_CHARS + 1) + "'", f"more than {MAX_PATTERN_CHARS}"),
])
def test_what_re2_cannot_do_is_refused_naming_file_line_key_and_pattern(
        pattern: str, says: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_scenario(scenario(pattern), "sc.yaml")
    text = str(err.value)
    assert text.startswith("sc.yaml:6: steps.0.expect.output: ")
    assert "/" + pattern.strip("'")[:40] in text  # the pattern itself, as written
    assert says in text
    assert "RE2" in text or "quickly" in text or "characters long" in text


def test_matching_reads_like_python_re_multiline() -> None:
    text = "remote: GitLab: 401 Unauthorized\n ! [remote rejected] main -> main\nbye\n"
    for pattern in ("^bye$", r"(?s)401 Unauthorized.*\[remote rejected\]", "(?i)unauthorized",
                    r"^ ! \[remote", r"remote rejected\] \S+ -> main"):
        assert search(pattern, text) is bool(re.search(pattern, text, re.MULTILINE)) is True
    for pattern in ("^remote rejected", r"(?s)bye.*401", "Unauthorized!$"):
        assert search(pattern, text) is bool(re.search(pattern, text, re.MULTILINE)) is False
    assert search("é.*ß", "café und straße")
    assert search("x", "bad \udcff byte, then x")  # a lone surrogate is no crash


def test_compile_pattern_says_why_without_file_context() -> None:
    with pytest.raises(PatternError, match="no backreferences"):
        compile_pattern(r"(a)\1")
    assert compile_pattern("ok").text == "ok"


def test_the_refusal_quotes_the_pattern_as_written() -> None:
    # RE2 quotes what it compiled; the (?m) the toolkit adds is not the user's.
    with pytest.raises(PatternError) as err:
        compile_pattern("(unclosed")
    assert "missing ): (unclosed" in str(err.value)
    assert "(?m)" not in str(err.value)
