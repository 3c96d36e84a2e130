"""One body per kind of callable: what a traced call does around the user's function.

Every body has wrapt's wrapper shape, ``(spec, wrapped, instance, args, kwargs)``
with ``instance`` the bound ``self``/``cls`` or ``None``, and does the same
three things: open the call's span (:func:`~prefactor._tracing.call.begin`; on
an SDK failure the call runs untraced), run the function with the span
current, and close the span with its result or its exception, which then
propagates unchanged. What differs per kind is only how the function runs:
called, awaited, or iterated (:mod:`prefactor._tracing.generators`).
"""

from __future__ import annotations

from typing import Any

from prefactor._tracing.call import begin
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.generators import agen_body, gen_body
from prefactor._tracing.plan import Kind, Spec

__all__ = ["BODIES", "async_body", "sync_body"]

_set_span = CURRENT_SPAN.set
_reset_span = CURRENT_SPAN.reset


def sync_body(spec: Spec, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """A function or method call in its span."""
    span = begin(spec, instance is not None, args, kwargs)
    if span is None:
        return wrapped(*args, **kwargs)
    token = _set_span(span)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _reset_span(token)
        span.fail(exc)
        raise
    _reset_span(token)
    span.complete(result)
    return result


async def async_body(spec: Spec, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """A coroutine function's call in its span, opened when the coroutine starts running."""
    span = begin(spec, instance is not None, args, kwargs)
    if span is None:
        return await wrapped(*args, **kwargs)
    token = _set_span(span)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _reset_span(token)
        span.fail(exc)
        raise
    _reset_span(token)
    span.complete(result)
    return result


BODIES: dict[Kind, Any] = {
    "sync": sync_body,
    "async": async_body,
    "gen": gen_body,
    "agen": agen_body,
}
"""The body of each kind of callable."""
