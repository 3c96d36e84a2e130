"""Spans that cover a generator's whole iteration.

The span opens when the generator function is called and closes exactly once:
on exhaustion (``complete``), on an exception (``failed``), or when the
consumer stops early through ``break``, ``close()`` or garbage collection
(``cancelled``). The result records what was yielded: ``{"value": "..."}``, the
items joined (``""`` for none), when the generator is annotated to yield ``str``
(:func:`prefactor._schemas.derive.yields_text`, decided when decorated), else
``{"value": [...]}``.

The wrappers are real generators (``inspect.isgenerator`` and
``inspect.isasyncgen`` hold), forwarding ``send``, ``throw`` and ``close``.
Each step of the inner generator runs with the generator's span current, so
spans opened inside its body nest under it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from prefactor._tracing.context import CURRENT_SPAN

if TYPE_CHECKING:
    from prefactor._tracing.decorator import OpenSpan

__all__ = ["traced_async_generator", "traced_generator"]

# Items kept for the result; the rest are counted so the marker says how many.
MAX_ITEMS = 1_000


class _Collected:
    __slots__ = ("all_str", "dropped", "items", "text")

    def __init__(self, text: bool) -> None:
        self.items: list[Any] = []
        self.all_str = True
        self.dropped = 0
        self.text = text

    def add(self, span: OpenSpan, item: Any) -> None:
        if len(self.items) >= MAX_ITEMS:
            self.dropped += 1
            return
        if type(item) is not str:
            self.all_str = False
            # Snapshot now: the consumer may mutate a yielded object later.
            item = span.inst.tracer.capturer.capture(item)
        self.items.append(item)

    def value(self, span: OpenSpan) -> Any:
        """The recorded result: the text joined, else the items (strings captured too)."""
        capture = span.inst.tracer.capturer.capture
        more = f"…[{self.dropped} more items]" if self.dropped else None
        if self.text and self.all_str:
            return capture("".join(self.items) + (more or ""))
        items = [capture(item) if type(item) is str else item for item in self.items]
        return [*items, more] if more else items


def traced_generator(inner: Generator[Any, Any, Any], span: OpenSpan) -> Generator[Any, Any, Any]:
    """Drive ``inner`` step by step inside ``span``."""
    collected = _Collected(span.spec.text)
    to_send: Any = None
    to_throw: BaseException | None = None
    span.iterating = True
    try:
        while True:
            token = CURRENT_SPAN.set(span.state)
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = inner.throw(exc)
                else:
                    item = inner.send(to_send)
            except StopIteration as stop:
                span.complete_payload({"value": collected.value(span)})
                return stop.value
            except BaseException as exc:
                span.fail(exc)
                raise
            finally:
                CURRENT_SPAN.reset(token)
            collected.add(span, item)
            try:
                to_send = yield item
            except GeneratorExit:
                raise
            except BaseException as exc:  # consumer's throw(): forward it
                to_throw, to_send = exc, None
    finally:
        if not span.done:  # break, close() or garbage collection
            inner.close()
            span.finish("cancelled", {"value": collected.value(span)})


async def traced_async_generator(
    inner: AsyncGenerator[Any, Any], span: OpenSpan
) -> AsyncGenerator[Any, Any]:
    """Drive ``inner`` step by step inside ``span``."""
    collected = _Collected(span.spec.text)
    to_send: Any = None
    to_throw: BaseException | None = None
    span.iterating = True
    try:
        while True:
            token = CURRENT_SPAN.set(span.state)
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await inner.athrow(exc)
                else:
                    item = await inner.asend(to_send)
            except StopAsyncIteration:
                span.complete_payload({"value": collected.value(span)})
                return
            except BaseException as exc:
                span.fail(exc)
                raise
            finally:
                CURRENT_SPAN.reset(token)
            collected.add(span, item)
            try:
                to_send = yield item
            except GeneratorExit:
                raise
            except BaseException as exc:
                to_throw, to_send = exc, None
    finally:
        if not span.done:
            span.finish("cancelled", {"value": collected.value(span)})
            await inner.aclose()
