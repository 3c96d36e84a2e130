"""Span types of decorated callables: how they are named, and that no two callables share one.

A span type whose schemas are derived from a callable's type hints describes
that callable and no other. So when a decorator derives a span type that
another callable already holds (two ``@tool def search`` in two modules, two
lambdas), it refuses, naming both; the fix is a ``name=`` of its own for one of
them. The same callable decorated again (a module reloaded, a notebook cell run
twice, a test that defines its helper on every run) is not another callable:
it takes its span type over, newest definition first.

A callable is known by its module and qualified name, a lambda also by the
line it starts on (every lambda of a module shares the name ``<lambda>``).

Span types named explicitly and not registered from hints (``@traced("agent:llm")``
on several functions) are shared on purpose: their schemas come from the
registry, not from any one callable.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from prefactor._errors import PrefactorConfigError
from prefactor._forksafe import renewed_lock

__all__ = ["claim", "identity", "refuse_class"]

_claims: dict[str, str] = {}
_lock = renewed_lock(sys.modules[__name__])


def identity(func: Any) -> str:
    """The callable's name for humans and for claims: ``module.qualname``, plus a lambda's line."""
    target = func if inspect.isroutine(func) else type(func)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or repr(target)
    name = f"{module}.{qualname}"
    if qualname.endswith("<lambda>"):
        code = getattr(target, "__code__", None)
        if code is not None:
            name += f" (line {code.co_firstlineno})"
    return name


def claim(span_type: str, func: Any) -> bool:
    """Make ``func`` the one callable behind the derived span type ``span_type``.

    Returns:
        whether ``func`` already held it (decorated again: its new definition
        replaces the old one).

    Raises:
        PrefactorConfigError: another callable holds ``span_type``.
    """
    who = identity(func)
    with _lock:
        holder = _claims.get(span_type)
        if holder is None:
            _claims[span_type] = who
            return False
    if holder == who:
        return True
    raise PrefactorConfigError(
        f"span type {span_type!r} is already the span type of {holder}; {who} cannot "
        "share it (its schemas are derived from its own signature). Give one of them "
        "a name of its own, e.g. @tool(name=...), @agent(name=...) or @traced(name=...)"
    )


def refuse_class(func: Any, decorator: str) -> None:
    """Refuse to decorate a class: it would trace only the constructor call.

    Raises:
        TypeError: ``func`` is a class.
    """
    if inspect.isclass(func):
        raise TypeError(
            f"@{decorator} cannot decorate a class ({func.__qualname__}): it would record "
            "only the constructor call. Decorate the methods to trace, or record the "
            f"public methods as tools with prefactor.instrument_tools({func.__qualname__})"
        )
