"""Spans that cover a generator's whole iteration.

The span opens when the generator function is called and closes exactly once:
on exhaustion (``complete``), on an exception (``failed``), or when the
consumer stops early through ``break``, ``close()`` or garbage collection
(``cancelled``).

The result records what was yielded, in the form the result schema says,
decided when the function was decorated: a generator annotated to yield
``str`` (``Iterator[str]``, ``AsyncIterator[str]``, ...) records
``{"value": "<the items joined>"}`` (``""`` when it yielded nothing), any other
``{"value": [<the items>]}``. Both stay under the capturer's caps as they
grow: the joined text under its string length, the list under its item count
and size budget, with the same markers as any capture; nothing beyond the
caps is kept in memory.

The wrappers are real generators (``inspect.isgenerator`` and
``inspect.isasyncgen`` hold), forwarding ``send``, ``throw`` and ``close``.
Each step of the inner generator runs with the generator's span current, so
spans opened inside its body nest under it.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from prefactor._schemas.markers import more_items, truncated
from prefactor._tracing.call import CallSpan, begin
from prefactor._tracing.capture import ATOMIC
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.guard import contain
from prefactor._tracing.plan import Spec

__all__ = ["agen_body", "gen_body"]

_set_span = CURRENT_SPAN.set
_reset_span = CURRENT_SPAN.reset


class _Collected:
    """What one traced generator yielded, kept within the capturer's caps, and its progress."""

    __slots__ = ("dropped", "finished", "items", "room", "span", "started", "text")

    def __init__(self, span: CallSpan) -> None:
        capturer = span.plan.capturer
        self.span = span
        self.text = span.plan.spec.text
        # Characters (text) or approximate JSON size (list) that may still be kept.
        self.room = (
            min(capturer.max_string_length, capturer.max_total_size)
            if self.text
            else capturer.max_total_size
        )
        self.items: list[Any] = []
        self.dropped = 0  # characters (text) or items (list) left out
        self.started = False
        self.finished = False

    def add(self, item: Any) -> None:
        """Keep ``item`` (captured now: the consumer may change it later), caps permitting."""
        try:
            if self.text:
                self._add_text(item)
            else:
                self._add_item(item)
        except Exception as exc:
            contain(exc, "record a generator's item", self.span.span_type)

    def _add_text(self, item: Any) -> None:
        capture = self.span.plan.capturer.capture
        piece = item if type(item) is str else str(capture(item))
        room = self.room
        if len(piece) <= room:
            self.items.append(piece)
            self.room = room - len(piece)
            return
        if room > 0:
            self.items.append(piece[:room])
            self.room = 0
        self.dropped += len(piece) - room

    def _add_item(self, item: Any) -> None:
        capturer = self.span.plan.capturer
        if self.dropped or len(self.items) >= capturer.max_items:
            self.dropped += 1
            return
        kept = capturer.capture(item)
        if isinstance(kept, str):
            size = len(kept) + 4
        else:
            size = 8 if type(kept) in ATOMIC else len(repr(kept))
        if size > self.room:  # the size budget is spent: this and every later item go
            self.dropped += 1
            return
        self.room -= size
        self.items.append(kept)

    def value(self) -> Any:
        """The collected value, with the cap's marker when anything was left out."""
        if self.text:  # captured whole: the rules for strings (credentials, surrogates) apply
            joined = self.span.plan.capturer.capture("".join(self.items))
            return f"{joined}{truncated(self.dropped)}" if self.dropped else joined
        return [*self.items, more_items(self.dropped)] if self.dropped else list(self.items)

    def cancel(self) -> None:
        """Finish the span ``cancelled`` with what was yielded so far, if it is still open."""
        if not self.finished:
            self.finished = True
            self.span.finish("cancelled", {"value": self.value()})

    def cancel_unstarted(self) -> None:
        """The finalizer of a generator dropped before it ever ran (its ``finally`` never runs)."""
        if not self.started:
            self.cancel()


def _start(
    spec: Spec,
    wrapped: Any,
    instance: Any,
    args: Any,
    kwargs: Any,
    *,
    drive: Callable[[Any, CallSpan, _Collected], Any],
) -> Any:
    """Call a generator function in its span and return the generator that drives it."""
    span = begin(spec, instance is not None, args, kwargs)
    if span is None:
        return wrapped(*args, **kwargs)
    token = _set_span(span)
    try:
        inner = wrapped(*args, **kwargs)
    except BaseException as exc:
        _reset_span(token)
        span.fail(exc)
        raise
    _reset_span(token)
    collected = _Collected(span)
    outer = drive(inner, span, collected)
    weakref.finalize(outer, collected.cancel_unstarted)
    return outer


def gen_body(spec: Spec, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """A generator function's call: its span lasts until iteration ends."""
    return _start(spec, wrapped, instance, args, kwargs, drive=_drive)


def agen_body(spec: Spec, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """An async generator function's call: its span lasts until iteration ends."""
    return _start(spec, wrapped, instance, args, kwargs, drive=_adrive)


def _drive(
    inner: Generator[Any, Any, Any], span: CallSpan, collected: _Collected
) -> Generator[Any, Any, Any]:
    """Run ``inner`` step by step with ``span`` current, and close the span once."""
    to_send: Any = None
    to_throw: BaseException | None = None
    collected.started = True
    try:
        while True:
            token = _set_span(span)
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = inner.throw(exc)
                else:
                    item = inner.send(to_send)
            except StopIteration as stop:
                collected.finished = True
                span.complete(collected.value(), collected=True)
                return stop.value
            except BaseException as exc:
                collected.finished = True
                span.fail(exc)
                raise
            finally:
                _reset_span(token)
            collected.add(item)
            try:
                to_send = yield item
            except GeneratorExit:
                raise
            except BaseException as exc:  # the consumer's throw(): forward it
                to_throw, to_send = exc, None
    finally:
        if not collected.finished:  # break, close() or garbage collection
            collected.cancel()
            inner.close()


async def _adrive(
    inner: AsyncGenerator[Any, Any], span: CallSpan, collected: _Collected
) -> AsyncGenerator[Any, Any]:
    """Run ``inner`` step by step with ``span`` current, and close the span once."""
    to_send: Any = None
    to_throw: BaseException | None = None
    collected.started = True
    try:
        while True:
            token = _set_span(span)
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await inner.athrow(exc)
                else:
                    item = await inner.asend(to_send)
            except StopAsyncIteration:
                collected.finished = True
                span.complete(collected.value(), collected=True)
                return
            except BaseException as exc:
                collected.finished = True
                span.fail(exc)
                raise
            finally:
                _reset_span(token)
            collected.add(item)
            try:
                to_send = yield item
            except GeneratorExit:
                raise
            except BaseException as exc:  # the consumer's athrow(): forward it
                to_throw, to_send = exc, None
    finally:
        if not collected.finished:
            collected.cancel()
            await inner.aclose()
