"""The one guard around SDK code that runs inside a user's call.

Opening a span, capturing a payload, closing a span: each of these runs on the
caller's path, and none of them may break the call. Every place where they
could fail catches ``Exception`` and hands it to :func:`contain`, which logs it,
counts it and, when internal errors are set to surface (the SDK's own test
suite: :func:`prefactor._export._internal.set_raise_internal_errors`, the same
switch the exporter's worker obeys), raises it again so that a test sees the
bug a user would never have seen.

The two errors the SDK raises into user code on purpose,
:class:`~prefactor.SchemaValidationError` (strict mode) and
:class:`~prefactor.PrefactorTerminatedError`, are never handed to it.

Logging is bounded: the first failure of each kind at each place is logged
with its traceback at ERROR, later ones only at DEBUG; every one is counted
(``stats()["tracing_errors"]``).
"""

from __future__ import annotations

import logging
import sys

from prefactor._errors import PrefactorTerminatedError, SchemaValidationError
from prefactor._export._internal import raise_internal_errors
from prefactor._forksafe import renewed_lock

__all__ = ["DELIBERATE", "contain", "contained_count"]

logger = logging.getLogger("prefactor.tracing")

DELIBERATE = (SchemaValidationError, PrefactorTerminatedError)
"""The errors the SDK raises into user code on purpose: never contained."""

_count = 0
_logged: set[tuple[str, type[BaseException]]] = set()
_lock = renewed_lock(sys.modules[__name__])


def contain(exc: Exception, doing: str, span_type: str | None = None) -> None:
    """Log and count an SDK failure inside a user's call; re-raise it when errors surface.

    Call it from an ``except Exception`` block, then carry on as if the SDK
    were not there (run the call untraced, or leave the span as it is).

    Args:
        exc: the failure.
        doing: what the SDK was doing, as in "could not <doing>".
        span_type: the span type concerned, when there is one.

    Raises:
        Exception: ``exc`` itself, only when internal errors are set to surface.
    """
    global _count  # noqa: PLW0603 (a process-wide counter, read by Tracer.stats)
    where = f"{doing} ({span_type})" if span_type else doing
    key = (doing, type(exc))
    with _lock:
        _count += 1
        first = key not in _logged
        _logged.add(key)
    level = logging.ERROR if first else logging.DEBUG
    logger.log(
        level,
        "prefactor could not %s; the call goes on unaffected%s",
        where,
        "" if not first else " (later failures of this kind are logged at DEBUG)",
        exc_info=exc,
    )
    if raise_internal_errors():
        raise exc


def contained_count() -> int:
    """How many SDK failures inside users' calls were contained in this process."""
    return _count
