"""Redaction for anything a support room writes: known secret values first, then
the shapes of unknown ones (tokens, JWTs, private keys, ``secret = '…'`` lines).

``Redaction`` extends the engine's ``Redactor`` (known values, longest first)
with those shapes and a leak check; ``collect`` runs every text of a bundle
through it, and anything else that shows a lab's text to a user may too.
Certificates are public and stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from lab.engine.run import REDACTED, Redactor
from lab.render.secrets import LabSecrets, fingerprint, secret_values

MARK = REDACTED

# Shapes of secrets we may not know the value of (a node that generated its own file,
# a customer value in GITLAB_OMNIBUS_CONFIG, a token in a log line).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                re.DOTALL), "-----[REDACTED PRIVATE KEY]-----"),
    # token = 'x', token: 'x', "secret_token": "x", 'password' => 'x' (Ruby, YAML, JSON)
    # (the key must *end* in a secret word: `secrets_policy` or `*_sha256` are not secrets)
    (re.compile(r"""(?ix)
        (\b[\w-]*(?:token|secret|password|passwd|key_base|private_key|signing_key)
         ['"]?\]?\s*(?:=>|=|:)\s*)
        (['"])(?!\[REDACTED|sha256:)([^'"\n]+)\2"""), rf"\1\2{MARK}\2"),
    (re.compile(r"(?i)(PRIVATE-TOKEN:\s*|Bearer\s+|Gitlab-Shell-Api-Request:\s*)(\S+)"),
     rf"\1{MARK}"),
    (re.compile(r"\bgl[a-z]{2,4}-[A-Za-z0-9_-]{20,}"), MARK),  # glpat-, gldt-, glrt- ...
    (re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"), MARK),  # a JWT
    (re.compile(r"\bv2\.[0-9a-f]{64}\.\d+"), MARK),  # a Gitaly v2 token
    (re.compile(r"\b[0-9a-fA-F]{64,}\b"), MARK),  # 40-char commit ids stay readable
)


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
        return text

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
