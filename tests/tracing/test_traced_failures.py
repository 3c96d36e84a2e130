"""A failing call: its exception reaches the caller unchanged and its span records it, capped.

Read back from the embedded store (a real SQLite file). The functions here
declare no result schema: a failed span's result is its error record, and
whether a store checks that record against a result schema is not what these
tests are about.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import Stored, type_of

from prefactor._tracing.decorator import traced
from prefactor._tracing.span_context import SpanContext


class Hostile(Exception):
    """An exception that cannot be printed: ``str()`` and ``repr()`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ breaks")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ breaks")


@traced
def fails(error: Exception):  # type: ignore[no-untyped-def]
    raise error


@traced
async def afails(error: Exception):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0)
    raise error


@traced
def gfails(error: Exception):  # type: ignore[no-untyped-def]
    yield 1
    raise error


@traced
async def agfails(error: Exception):  # type: ignore[no-untyped-def]
    yield 1
    raise error


async def _caught(fn: Any, error: Exception) -> Exception | None:
    # Caught inside the task: asyncio.run itself cannot repr a task that failed with a
    # Hostile (it formats the task when it restores its SIGINT handler).
    try:
        if fn is afails:
            await fn(error)
        else:
            [item async for item in fn(error)]
    except Exception as exc:
        return exc
    return None


def _call(fn: Any, error: Exception) -> None:
    if fn is fails:
        fn(error)
    elif fn is gfails:
        list(fn(error))
    else:
        caught = asyncio.run(_caught(fn, error))
        if caught is not None:
            raise caught


KINDS = [
    pytest.param(fails, id="function"),
    pytest.param(afails, id="coroutine"),
    pytest.param(gfails, id="generator"),
    pytest.param(agfails, id="async-generator"),
]


@pytest.mark.parametrize("fn", KINDS)
def test_an_exception_that_cannot_be_printed_reaches_the_caller_unchanged(
    stored: Stored, fn: Any
) -> None:
    error = Hostile()
    with pytest.raises(Hostile) as info:
        _call(fn, error)
    assert info.value is error
    span = stored.span(type_of(fn))
    assert span["status"] == "failed"
    assert span["result_payload"]["error"]["type"] == "Hostile"
    assert isinstance(span["result_payload"]["error"]["message"], str)


async def test_an_exception_that_cannot_be_printed_leaves_a_span_context_unchanged(
    stored: Stored,
) -> None:
    inst = stored.tracer.new_instance(agent_version={"name": "explicit"}, use_registry=False)
    error = Hostile()
    with pytest.raises(Hostile) as info:
        async with SpanContext(inst, "explicit:step") as span:
            await span.start({"step": 1})
            raise error
    assert info.value is error
    stored_span = stored.span("explicit:step")
    assert stored_span["status"] == "failed"
    assert stored_span["result_payload"]["error"]["type"] == "Hostile"


@pytest.mark.parametrize("fn", KINDS)
def test_a_long_error_message_is_stored_under_the_string_cap(stored: Stored, fn: Any) -> None:
    with pytest.raises(ValueError):
        _call(fn, ValueError("x" * 50_000))
    message = stored.span(type_of(fn))["result_payload"]["error"]["message"]
    cap = stored.tracer.capturer.max_string_length
    assert message.startswith("x" * cap)
    assert cap < len(message) < cap + 40  # the text up to the cap, then the marker
    assert re.search(r"40,?000", message[cap:])  # the marker counts what was cut


async def test_a_long_error_message_of_a_span_context_is_stored_under_the_string_cap(
    stored: Stored,
) -> None:
    inst = stored.tracer.new_instance(agent_version={"name": "explicit"}, use_registry=False)
    with pytest.raises(ValueError):
        async with SpanContext(inst, "explicit:long"):
            raise ValueError("y" * 50_000)
    message = stored.span("explicit:long")["result_payload"]["error"]["message"]
    assert len(message) < 50_000
    assert message.startswith("y" * stored.tracer.capturer.max_string_length)


def test_a_failed_root_call_finishes_its_instance_failed(stored: Stored) -> None:
    with pytest.raises(KeyError):
        fails(KeyError("gone"))
    (inst,) = stored.instances()
    assert inst["status"] == "failed"
    assert stored.span(type_of(fails))["result_payload"] == {
        "error": {"type": "KeyError", "message": "'gone'"}
    }


def _streams(text: bool) -> Any:
    if text:

        @traced(name="failures.stream_text")
        def stream(n: int, size: int) -> Iterator[str]:
            for _ in range(n):
                yield "z" * size

        return stream

    @traced(name="failures.stream_items")
    def items(n: int, size: int) -> Iterator[Any]:
        yield from range(n)

    return items


def test_a_generators_joined_text_is_stored_under_the_string_cap(stored_small: Stored) -> None:
    stream = _streams(text=True)
    assert sum(len(piece) for piece in stream(1000, 50)) == 50_000
    value = stored_small.span(type_of(stream))["result_payload"]["value"]
    assert value.startswith("z" * 64)
    assert value[64:] == "…[truncated 49936 chars]"


def test_a_generators_items_are_stored_under_the_item_cap(stored_small: Stored) -> None:
    items = _streams(text=False)
    assert list(items(10, 0)) == list(range(10))
    value = stored_small.span(type_of(items))["result_payload"]["value"]
    assert value == [0, 1, 2, "…[7 more items]"]


def test_a_generator_keeps_no_more_than_its_caps_in_memory(stored_small: Stored) -> None:
    import tracemalloc

    stream = _streams(text=True)
    tracemalloc.start()
    try:
        for _ in stream(20_000, 1_000):  # 20 MB streamed, one 1 kB piece alive at a time
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert len(stored_small.span(type_of(stream))["result_payload"]["value"]) < 100


@pytest.fixture
def stored_small(tmp_path: Path) -> Iterator[Stored]:
    """The embedded store, with a capturer whose caps are small."""
    from prefactor import _runtime as runtime
    from prefactor._config import PrefactorCoreConfig
    from prefactor._tracing.capture import Capturer

    config = PrefactorCoreConfig(db_path=tmp_path / "traces.db")
    tracer = runtime.build_tracer(config, capturer=Capturer(max_string_length=64, max_items=3))
    previous = runtime.swap(tracer)
    try:
        yield Stored(tracer, tmp_path / "traces.db")
    finally:
        runtime.swap(previous)
        tracer.close(10)
