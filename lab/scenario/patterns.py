"""A scenario's `output` and `log.pattern` regexes: run by RE2, so no pattern can hang.

Patterns come from scenario files that users exchange. Python's ``re`` backtracks:
``^(a+)+$`` against 34 ``a``s and a ``!`` runs for hours. RE2 (Google's engine, the
``google-re2`` package) matches in time linear in the text, and it refuses what it
cannot do that way (backreferences, lookaround). Its programs are capped here too:
a counted repetition (``(\\w+\\s?){1000}``) is linear with a constant of 10,000 steps
a character, so a pattern is refused past ``MAX_PROGRAM`` instructions (the built-in
library's largest is under 200) or ``MAX_PATTERN_CHARS`` characters.

Syntax: Python's for everything scenarios use (``(?s)``, ``(?i)``, groups,
alternation, classes, ``\\S``, ``{m,n}``). Not in RE2: ``\\1`` backreferences,
``(?=`` ``(?!`` ``(?<=`` ``(?<!`` lookaround, possessive ``a++``, ``\\Z`` (write
``\\z``), ``(?x)`` and ``(?#...)``; ``\\d``, ``\\w`` and ``\\s`` are ASCII only. Every
pattern is searched with ``^``/``$`` matching at each line, as ``re.MULTILINE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2

MAX_PATTERN_CHARS = 1000
MAX_PROGRAM = 1000  # RE2 instructions; time per character grows with it
RE2_LACKS = ("backreferences (\\1), lookahead and lookbehind ((?= (?! (?<= (?<!), "
             "possessive quantifiers (a++), \\Z (write \\z), (?x) and (?#...)")


class PatternError(ValueError):
    """Why a pattern cannot be used, worded to follow the pattern (the loader adds the file,
    line and key)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own copy of the error on stderr
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled scenario pattern; ``text`` is what the file says."""

    text: str
    compiled: Any  # re2's own pattern object (the package has no types)

    def search(self, text: str) -> bool:
        """Whether the pattern occurs in ``text`` (``^``/``$`` at every line)."""
        data = text.encode("utf-8", errors="replace")
        return self.compiled.search(data) is not None


def compile_pattern(text: str) -> Pattern:
    """``text`` compiled by RE2, or a PatternError saying why not."""
    if len(text) > MAX_PATTERN_CHARS:
        raise PatternError(f"is {len(text)} characters long, more than {MAX_PATTERN_CHARS}; "
                           "match a shorter, specific part of the output")
    try:
        compiled = re2.compile(b"(?m)" + text.encode("utf-8", errors="replace"), _options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        # RE2 quotes the pattern it compiled, with the (?m) added above: show the user's.
        reason = reason.replace(f": (?m){text}", f": {text}", 1)
        raise PatternError(f"is not a valid regular expression here: {reason} (patterns run "
                           f"on RE2, which has no {RE2_LACKS})") from None
    size = compiled._regexp.ProgramSize()
    if size > MAX_PROGRAM:
        raise PatternError(f"is too big to match quickly ({size} RE2 instructions, at most "
                           f"{MAX_PROGRAM}); use smaller repetition counts")
    return Pattern(text, compiled)


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` (checked by the loader) occurs in ``text``."""
    return compile_pattern(pattern).search(text)
