"""Which setting names hold secrets: the one list of words that make a key secret.

A key is secret when its name carries one of ``SECRET_WORDS``: gitlab.rb settings
(``gitlab_rails['db_password']``, ``gitaly['auth_token']``, ``gitlab_kas['api_secret_key']``),
gitlab-secrets.json keys (``secret_token``, ``db_key_base``, ``openid_connect_signing_key``)
and the YAML inside them (an LDAP server's ``password:``). ``lab import`` keeps the value
of such a key out of its notes (``is_secret_key``: the word anywhere in the name, erring
on hiding); redaction (``lab.engine.redaction``) removes the value after such a key in any
text, where the name must *end* in the word (``secrets_policy``, ``token_expiry`` and
their values stay readable; ``ends_in_secret_word``); a ``--set`` of such a key, or
its value of the wrong type in a spec, is not repeated in messages.

Standard library only, as the rest of lab.omnibus.
"""

from __future__ import annotations

import re

SECRET_WORDS = ("token", "secret", "password", "passwd", "key_base", "private_key",
                "signing_key", "secret_key", "access_key", "encryption_key", "secretkey")
# A regular-expression group matching any of the words (for patterns built around it).
SECRET_WORD = "(?:" + "|".join(re.escape(w) for w in SECRET_WORDS) + ")"

_ANYWHERE = re.compile(SECRET_WORD, re.IGNORECASE)
_AT_THE_END = re.compile(SECRET_WORD + r"\Z", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    """Whether a key named ``name`` (the last part of a key path) may hold a secret: a
    secret word anywhere in it (``lab import`` errs on hiding)."""
    return bool(_ANYWHERE.search(name))


def ends_in_secret_word(name: str) -> bool:
    """Whether ``name`` ends in a secret word, as the keys redaction looks for do
    (``gitaly_token``, not ``secrets``, the policy, or ``token_expiry``)."""
    return bool(_AT_THE_END.search(name))
