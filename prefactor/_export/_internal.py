"""Swallow the SDK's own bugs for users; surface them in the SDK's test suite.

In an agent, a bug in telemetry must never raise: the exporter logs it, counts
it and moves on. The project's tests want the opposite, so
``set_raise_internal_errors(True)`` (or ``PREFACTOR_RAISE_INTERNAL_ERRORS=1``
in the environment) makes :meth:`Exporter.flush` and :meth:`Exporter.close`
re-raise the first internal error the worker caught, and makes the caller's
side re-raise at once what its guard caught
(:func:`prefactor._tracing.guard.contain`).
"""

from __future__ import annotations

import os

__all__ = ["raise_internal_errors", "set_raise_internal_errors"]

_override: bool | None = None


def set_raise_internal_errors(flag: bool | None) -> None:
    """Re-raise swallowed internal errors from ``flush``/``close`` (``None``: use the env)."""
    global _override  # noqa: PLW0603 - a process-wide switch, like sentry-python's
    _override = flag


def raise_internal_errors() -> bool:
    """Whether internal errors should surface instead of being swallowed."""
    if _override is not None:
        return _override
    # Asked only on an error path; the config module needs pydantic, which tracing defers.
    from prefactor._config import env_flag

    try:
        return bool(env_flag("PREFACTOR_RAISE_INTERNAL_ERRORS", os.environ))
    except ValueError:
        return False
