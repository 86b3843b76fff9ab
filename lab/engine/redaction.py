"""Redaction of everything a lab's nodes say: known secret values first, then the
shapes of unknown ones (tokens, JWTs, private keys, ``secret = '…'`` lines).

``Redaction`` extends ``Redactor`` (known values, longest first) with those shapes
and a leak check. It is each running lab's redactor (``RunningLab.redactor``), so
every text that quotes a node's files or logs passes it before it is shown: readiness
log tails (a reconfigure that fails on a line of ``omnibus_config`` quotes that line),
``lab logs``, scenario evidence, errors from commands in the lab; ``collect`` runs every
text of a bundle through it. Certificates are public and stay readable, and so do hashes
that name things rather than hide them: digests (``sha256:<hex>``), a repository's hashed
path (``@hashed/6b/86/6b86b27….git``) and git object ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lab.engine.run import REDACTED, Redactor
from lab.model.topology import Lab
from lab.omnibus.secret_keys import SECRET_WORD
from lab.render.secrets import LabSecrets, fingerprint, secret_values

MARK = REDACTED

_WORDS = SECRET_WORD
# The key, its closing quote(s) (plain, JSON-escaped \" or YAML-doubled '') and the operator.
_KEY = r"(\b[\w-]*" + _WORDS + r"""(?:\\?['"]){0,2}\]?\s*(?:=>|=|:)\s*)"""
_FRESH = r"(?!\[REDACTED|sha256:)"
# Each value form as (?P<open>)value(?P<close>); the value becomes the mark.
_VALUES = (
    r'(?P<open>\\")' + _FRESH + r'(?:[^"\\\n]|\\[^"\n])+?(?P<close>\\")',  # in a JSON string
    r"(?P<open>'')" + _FRESH + r"[^'\n]+?(?P<close>'')",  # in a YAML single-quoted string
    r'(?P<open>")' + _FRESH + r'(?:[^"\\\n]|\\.)+(?P<close>")',
    r"(?P<open>')" + _FRESH + r"(?:[^'\\\n]|\\.)+(?P<close>')",
    r"(?P<open>%[qQ]?\()" + _FRESH + r"[^)\n]*(?P<close>\))",
    r"(?P<open>%[qQ]?\{)" + _FRESH + r"[^}\n]*(?P<close>\})",
    r"(?P<open>%[qQ]?\[)" + _FRESH + r"[^]\n]*(?P<close>\])",
    r"(?P<open>%[qQ]?<)" + _FRESH + r"[^>\n]*(?P<close>>)",
    r"(?P<open>%[qQ]?(?P<q>[|!/^]))" + _FRESH + r"[^\n]*?(?P<close>(?P=q))",
    r"(?P<open><<[~-]?(?P<hq>['\"`]?)(?P<id>\w+)(?P=hq)[^\n]*\n)" + _FRESH
    # Bounded: an opener with no end line must not scan the rest of a long log (n²).
    + r"(?s:.{0,8192}?)(?P<close>\n[ \t]*(?P=id)\b)",
)


def _numbered(value: str, i: int) -> str:
    """``value`` with its group names made unique (``open`` -> ``open3``), so that all the
    forms fit in one pattern: the key is then looked for once, not once per form."""
    return re.sub(r"\(\?P([<=])(\w+)([>)])", rf"(?P\1\g<2>{i}\3", value)


# token = 'x', token: 'x', "secret_token": "x", 'password' => 'x' (Ruby, YAML, JSON),
# also as Ruby's %q(x) or a heredoc, and inside a JSON string (\\"x\\") or a YAML
# single-quoted one (''x''), where omnibus_config lands in manifest.json and the
# compose file (the key must *end* in a secret word: `secrets_policy` is no secret).
# The key, then the first value form that matches there.
_KEY_VALUE = re.compile(_KEY + "(?:" + "|".join(
    f"(?P<form{i}>{_numbered(v, i)})" for i, v in enumerate(_VALUES)) + ")", re.IGNORECASE)


def _form(m: re.Match[str]) -> int:
    return next(i for i in range(len(_VALUES)) if m[f"form{i}"] is not None)


def _mark_value(m: re.Match[str]) -> str:
    i = _form(m)
    return m[1] + m[f"open{i}"] + MARK + m[f"close{i}"]


def values_after_secret_keys(text: str) -> list[str]:
    """The values written after secret keys in ``text`` (Ruby, YAML, JSON), as they are
    written: a user's ``omnibus_config`` holds secrets the lab did not make, which a node
    may print without their key (an error naming the value)."""
    out = []
    for m in _KEY_VALUE.finditer(text):
        i = _form(m)
        out.append(text[m.end(f"open{i}"):m.start(f"close{i}")])
    return out


# After a redacted literal, the literals joined to it ("a" "b", "a" + "b", "a" \ "b").
_JOINED = re.compile(r"""((?:\\?['"])\[REDACTED\](?:\\?['"]))(\s*(?:\+|\\\n)?\s*)(\\?['"])"""
                     + _FRESH + r"""((?:(?!\3)[^\\\n]|\\.)+?)\3""")

# Shapes of secrets we may not know the value of (a node that generated its own file,
# a customer value in GITLAB_OMNIBUS_CONFIG, a token in a log line).
_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                re.DOTALL), "-----[REDACTED PRIVATE KEY]-----"),
    (_KEY_VALUE, _mark_value),
    # unquoted YAML (an LDAP `password: x` in a heredoc, a log line)
    (re.compile(r"""(?im)^([ \t]*[\w-]*""" + _WORDS + r"""[ \t]*:[ \t]+)
        (?![\['"{|>&*!]|sha256:)(\S[^\n#]*)""", re.VERBOSE), rf"\1{MARK}"),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)(?!\[REDACTED)([^\s@/'\"]+)(@)"),
     rf"\1{MARK}\3"),
    (re.compile(r"(?i)(PRIVATE-TOKEN:\s*|Bearer\s+|Gitlab-Shell-Api-Request:\s*)(\S+)"),
     rf"\1{MARK}"),
    (re.compile(r"\bgl[a-z]{2,4}-[A-Za-z0-9_-]{20,}"), MARK),  # glpat-, gldt-, glrt- ...
    (re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"), MARK),  # a JWT
    (re.compile(r"\bv2\.[0-9a-f]{64}\.\d+"), MARK),  # a Gitaly v2 token
    # 64 hex digits or more is a secret's shape (tokens, secret_key_base), unless it names
    # something (_names_a_thing); 40-hex (SHA-1) commit ids are too short to match.
    (re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{64,}(?![0-9A-Za-z])"),
     lambda m: m[0] if _names_a_thing(m) else MARK),
)


# What stands right before a 64-hex hash that names a thing: a digest's algorithm (an
# image id or reference @sha256:, a content digest), or a key holding a git object id
# (a SHA-256 repository's commit ids are 64 hex: the API's "parent_ids", Gitaly's and the
# hooks' revisions), as a key with its operator (JSON, YAML, key=value), or `git log`'s
# "commit <id>" line. A word without its operator ("after <hex>") is no key.
_DIGEST = re.compile(r"sha256:\Z")
_OBJECT_ID_KEYS = ("commit_id", "last_commit_id", "parent_ids", "sha", "checkout_sha",
                   "oldrev", "newrev", "revision", "before", "after", "head_commit_id",
                   "oid", "object_id", "merge_commit_sha", "squash_commit_sha", "start_sha",
                   "base_sha", "head_sha")
_OBJECT_ID = re.compile(
    r"""(?:(?:^|[\s{,"'])(?:""" + "|".join(_OBJECT_ID_KEYS) + r""")["']?\s*[:=]\s*"""
    r"""(?:\[\s*(?:["']?[0-9a-f]{64}["']?\s*,\s*)*)?["']?|(?:^|\n)commit )\Z""")
# A commit in GitLab's API: {"id":"<hex>","short_id":...}
_COMMIT_JSON_ID = (re.compile(r""""id"\s*:\s*"\Z"""), re.compile(r"""",\s*"short_id"\s*:"""))


def _names_a_thing(m: re.Match[str]) -> bool:
    """Whether the hex of ``m`` is a hash that names something (kept) rather than a secret:
    exactly 64 digits (SHA-256), lower-case, where a digest, a hashed repository path or a
    git object id stands. A hashed path is checked against itself: GitLab's folders are the
    hash's first two and next two digits (@hashed/6b/86/6b86…)."""
    value = m[0]
    if len(value) != 64 or value != value.lower():
        return False
    text, start = m.string, max(0, m.start() - 400)  # a commit's parent_ids fit
    if _DIGEST.search(text, start, m.start()) or _OBJECT_ID.search(text, start, m.start()):
        return True
    if text.endswith((f"@hashed/{value[:2]}/{value[2:4]}/", f"@pools/{value[:2]}/{value[2:4]}/"),
                     start, m.start()):
        return True
    return bool(_COMMIT_JSON_ID[0].search(text, start, m.start())
                and _COMMIT_JSON_ID[1].match(text, m.end()))


class Redaction(Redactor):
    """Known values first (longest first), then the shapes of unknown ones."""

    def add(self, values: Iterable[str]) -> None:
        for v in values:
            v = v.strip()
            # A PEM or multi-line value may appear line by line in a file; its armour
            # lines ("-----BEGIN CERTIFICATE-----") are in every PEM and stay readable.
            lines = (ln.strip() for ln in v.splitlines())
            super().add([v, *(ln for ln in lines if len(ln) >= 16 and not ln.startswith("-----"))])

    def __call__(self, text: str) -> str:
        text = super().__call__(text)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        while True:  # each pass takes one more literal of a joined string
            joined = _JOINED.sub(rf"\1\2\3{MARK}\3", text)
            if joined == text:
                return text
            text = joined

    def learn(self, sec: LabSecrets, lab: Lab) -> None:
        """Know a lab's secrets: the ones it made, a node's own Gitaly token, and the values
        after secret keys in each node's ``omnibus_config`` (a user's Ruby, which a failing
        reconfigure quotes, maybe without its key)."""
        self.add(sec.values())
        for node in lab.nodes:
            self.add([node.gitaly_token or "", *values_after_secret_keys(node.omnibus_config)])

    def leaks(self, text: str) -> list[str]:
        return [fingerprint(v) for v in self.secrets if v in text]


def lab_redaction(sec: LabSecrets | None, extra: Iterable[Mapping[str, Any]] = ()) -> Redaction:
    """Tokens, secrets files and private keys; certificates are public and stay readable."""
    r = Redaction()
    if sec is not None:
        r.add(sec.values())
    for data in extra:
        r.add(secret_values(data))
    return r


def redacted_secrets_json(data: Mapping[str, Any]) -> Any:
    """The same structure with every value replaced by its fingerprint."""
    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return f"{MARK} {fingerprint(str(v))}" if isinstance(v, str) else v
    return walk(dict(data))
