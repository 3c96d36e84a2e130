"""What counts as a secret: the one set of rules for captured values and for schemas.

Two rules, used wherever a value could leave the process:

* **Secret-looking names.** A mapping key, or a parameter name, whose
  normalised form matches one of :data:`DEFAULT_REDACT_KEYS`: its value is
  recorded as ``"[REDACTED]"``, and a derived schema leaves out its default.
* **Credentials inside URLs.** In any string, the password of a URL or DSN
  (``scheme://user:PASSWORD@host``) is replaced by ``[REDACTED]``; the scheme,
  user, host and the rest stay.

Names are normalised before matching: ``camelCase`` is split, ``-``, ``.`` and
spaces become ``_``, and the result is lower case, so ``apiKey``, ``API-KEY``
and ``api_key`` are one name. The patterns are regular expressions searched in
that form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "REDACTED",
    "KeyRules",
    "default_key_rules",
    "redact_credentials",
]

REDACTED = "[REDACTED]"

# A word that is also a counter ("token", "auth", "session") only matches at the
# end of the name, so "access_token" is a secret while "token_count" and
# "max_tokens" are not. Short forms ("pwd", "pin", "otp") match as whole words
# only, so "pin_memory", "ping" and "photo" are not secrets.
DEFAULT_REDACT_KEYS: frozenset[str] = frozenset(
    {
        r"pass(word|wd|phrase|code)",
        r"(^|_)pass$",
        r"(^|_)pwd$",
        r"(^|_)pin(_?code|_?number)?$",
        r"(^|_)[th]?otp(_?code|_?secret)?$",
        r"(^|_)(mfa|2fa|verification|security)_?code$",
        r"(^|_)cv[cv]2?$",
        r"secret",
        r"api_?key",
        r"(private|ssh|signing|encryption|master)_?key",
        r"credential",
        r"authori[sz]ation",
        r"cookie",
        r"token$",
        r"(access|refresh|bearer|auth|id|session|csrf)_?token",
        r"auth$",
        r"session$",
        r"session_?(key|token|secret)",
        r"connection_?string",
        r"jwt",
        r"bearer",
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[-.\s]+")
_MEMO_LIMIT = 4096

# The scheme starts a word (the look-behind keeps the scan linear); the user
# part holds no ":", "/", "@"; the password runs to the last "@" before the
# host (greedy), never past whitespace or the start of the path.
_USERINFO = re.compile(r"(?<![\w+.\-])([A-Za-z][\w+.\-]*://[^\s/?#@:]*):([^\s/?#]*)@")
# A URL whose password was cut off by truncation: what is left of it is dropped.
_DANGLING = re.compile(r"(?<![\w+.\-])([A-Za-z][\w+.\-]*://[^\s/?#@:]*):([^\s/?#@]+)\Z")


def _normalise(name: str) -> str:
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name)).lower()


class KeyRules:
    """Which names are secret: the patterns, compiled once, with a bounded memo.

    Args:
        patterns: regular expressions searched (case-insensitively) in the
            normalised name; none means nothing is secret.
    """

    __slots__ = ("_regex", "memo", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = frozenset(patterns)
        joined = "|".join(f"(?:{p})" for p in sorted(self.patterns))
        self._regex = re.compile(joined, re.IGNORECASE) if self.patterns else None
        # Verdicts so far; hot loops may peek here before calling :meth:`matches`.
        self.memo: dict[str, bool] = {}

    def matches(self, name: str) -> bool:
        """Whether values under ``name`` are secret."""
        found = self.memo.get(name)
        if found is None:
            found = self._regex is not None and self._regex.search(_normalise(name)) is not None
            if len(self.memo) > _MEMO_LIMIT:  # names repeat; a bounded memo keeps this cheap
                self.memo.clear()
            self.memo[name] = found
        return found


_DEFAULT_RULES = KeyRules(DEFAULT_REDACT_KEYS)


def default_key_rules() -> KeyRules:
    """The built-in rules (shared: their memo serves every caller)."""
    return _DEFAULT_RULES


def _drop_password(match: re.Match[str]) -> str:
    return f"{match.group(1)}:{REDACTED}@"


def redact_credentials(text: str, *, cut: bool = False) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` replaced.

    Args:
        text: any string.
        cut: ``text`` is the head of a longer string; a URL at its very end whose
            ``@`` was cut off loses what is left of its password too.
    """
    if "@" in text:
        text = _USERINFO.sub(_drop_password, text)
    if cut and "://" in text:
        text = _DANGLING.sub(lambda m: f"{m.group(1)}:{REDACTED}", text)
    return text
