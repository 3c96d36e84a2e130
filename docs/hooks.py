"""MkDocs hook: render the package's Sphinx-style roles as plain code.

Docstrings in ``prefactor`` use roles such as ``:class:`Exporter```, which
Markdown renders as the role's name followed by code. The role name is noise
on this site, so it is dropped and the code kept.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?=<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Drop ``:role:`` prefixes in front of inline code."""
    return _ROLE.sub("", html)
