"""Markers: how a captured value shows that the capturer cut or replaced something.

Where the capturer cannot record a value as it is (size caps, reference cycles,
secrets, values JSON cannot carry), it leaves a recognisable marker instead:

* a string that ends in ``…[<note>]``: a truncated string, the last item of a capped
  list (``…[N more items]``), an int beyond 64 bits, a string whose lone surrogates were
  escaped, the rest of a payload over its size budget;
* the key ``"…"`` of a capped mapping (its value is such a string);
* ``"[REDACTED]"``, alone or as the password of a URL;
* ``"<cycle>"``, ``"<max depth: T>"``, ``"<unrepresentable T>"``.

Markers are the record that a payload was cut or changed:
:func:`prefactor._schemas.validation.find_markers` lists them with their JSON paths, and
:meth:`~prefactor._schemas.validation.CompiledSchema.errors` does not count a violation
located at one. This module makes them and recognises them.
"""

from __future__ import annotations

import re
from typing import Any

from prefactor._redaction import REDACTED

__all__ = [
    "BUDGET_MARKER",
    "CYCLE",
    "ELLIPSIS",
    "ESCAPE_GROWTH",
    "is_marked",
    "is_more_items",
    "marked_head",
    "marker",
    "max_depth_marker",
    "more_items",
    "truncated",
    "unrepresentable",
]

ELLIPSIS = "…"
CYCLE = "<cycle>"


def marker(note: str) -> str:
    """The marker suffix ``…[note]``."""
    return f"{ELLIPSIS}[{note}]"


BUDGET_MARKER = marker("size budget exceeded")


def more_items(count: int, *, budget: bool = False) -> str:
    """The last item of a capped list, and the value of a capped mapping's ``"…"`` key."""
    return marker(f"{count} more items: size budget exceeded" if budget else f"{count} more items")


def truncated(dropped: int) -> str:
    """The suffix of a string cut at the length cap or the size budget."""
    return marker(f"truncated {dropped} chars")


def max_depth_marker(value: Any) -> str:
    """What a container nested deeper than the cap is recorded as."""
    return f"<max depth: {type(value).__qualname__}>"


def unrepresentable(value: Any) -> str:
    """What a value is recorded as when every way of recording it failed."""
    try:
        return f"<unrepresentable {type(value).__qualname__}>"
    except Exception:
        return "<unrepresentable>"


# A value replaced whole: a cycle, the depth cap, a failed conversion, a secret.
_WHOLE = re.compile(
    r"\A(?:<(?:cycle|max depth: [^<>]*|unrepresentable[^<>]*)>|" + re.escape(REDACTED) + r")\Z"
)
# A suffix marker at the end, or a secret anywhere (a URL's password).
_MARKED = re.compile(r"…\[[^\[\]]*\]\Z|" + re.escape(REDACTED))
_MORE = re.compile(r"…\[\d+ more items(?:: size budget exceeded)?\]\Z")
_RUN = re.compile(r"(?:…\[[^\[\]]*\])+\Z")
_RUN_REACH = 256  # a run of suffix markers is far shorter than this


def is_more_items(value: Any) -> bool:
    """Whether ``value`` is exactly the marker a capped list or mapping ends with."""
    return type(value) is str and value.startswith(ELLIPSIS) and _MORE.match(value) is not None


_ESCAPED = re.compile(r"…\[escaped (\d+) lone surrogates?\]")
ESCAPE_GROWTH = 5  # a lone surrogate becomes six characters ("\\udcff")


def marked_head(text: str) -> int | None:
    """How long the text before the markers that end ``text`` was (``None``: no markers).

    A string captured before is its head (within the caps, its lone surrogates
    escaped) followed by its markers; capturing it again must keep it as it is. The
    length counts each escaped surrogate as the one character it was.
    """
    if _WHOLE.match(text):
        return 0
    if not text.endswith("]"):
        return None
    found = _RUN.search(text, max(0, len(text) - _RUN_REACH))
    if found is None:
        return None
    escaped = _ESCAPED.search(found.group())
    return found.start() - (ESCAPE_GROWTH * int(escaped.group(1)) if escaped else 0)


def is_marked(value: Any) -> bool:
    """Whether ``value`` is a string the capturer changed (it carries or is a marker)."""
    return type(value) is str and (
        _MARKED.search(value) is not None or _WHOLE.match(value) is not None
    )
