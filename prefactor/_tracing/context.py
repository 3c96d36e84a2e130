"""Where the current span lives: one ``ContextVar`` with immutable values.

Parent and child links follow ``await``, ``asyncio.gather`` and
``create_task`` for free, because asyncio copies the context into every task.
Threads do not inherit it: :func:`in_context` and :class:`ContextThreadPoolExecutor`
carry the caller's context into a thread or an executor, so a tool run in a
pool still nests under the span that submitted it.

Every activation is ``token = var.set(...)`` then ``var.reset(token)``.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from prefactor._tracing.state import InstanceState, SpanState

__all__ = [
    "ContextThreadPoolExecutor",
    "current_instance",
    "current_span",
    "in_context",
]

P = ParamSpec("P")
R = TypeVar("R")

# The innermost open span of this context (its instance is ``span.instance``).
CURRENT_SPAN: contextvars.ContextVar[SpanState | None] = contextvars.ContextVar(
    "prefactor_current_span", default=None
)


def current_span() -> SpanState | None:
    """The innermost open span in this context, if any."""
    return CURRENT_SPAN.get()


def current_instance() -> InstanceState | None:
    """The agent instance that new spans in this context belong to, if any."""
    span = CURRENT_SPAN.get()
    return span.instance if span is not None else None


def in_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to a copy of the caller's context, for running in another thread.

    ``executor.submit(in_context(tool), arg)`` or
    ``threading.Thread(target=in_context(work))``: spans opened by ``fn``
    become children of the span that was open where ``in_context`` was called.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(fn, *args, **kwargs)

    return run


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context.

    A drop-in replacement: ``submit`` and ``map`` copy the caller's context
    into each task, so ``@traced`` calls inside nest under the submitting span.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)
